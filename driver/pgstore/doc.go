// Package pgstore is a driver.Store on PostgreSQL for a fleet of replicas
// that share one set of credentials: it is also a driver.Locker (a lease
// per record, so one refresh or authorization runs cluster-wide) and a
// driver.Watcher (LISTEN/NOTIFY, so every replica adopts new tokens as soon
// as one of them stores them). docs/scale-out.md explains the design.
//
// # Contract
//
// Open (or OpenConfig) connects with pgx's pool to the database named by a
// DSN, creates the schema on first use and upgrades it when an older
// mcpauth created it (a versioned, idempotent migration taken under an
// advisory lock, so replicas starting together do not race), and returns
// a Store. Close it when done: Close gives back the leases it holds and
// closes its connections.
//
// Records live in mcpauth_records(key text primary key, value bytea,
// version bigint, updated_at timestamptz). Every write is a
// compare-and-swap on version (UPDATE … WHERE key = $1 AND version = $2,
// or INSERT … ON CONFLICT DO NOTHING for a new record); a write that loses
// returns *driver.ConflictError with the record that won, so the caller
// re-reads instead of overwriting newer tokens.
//
// Lock(ctx, key) takes a lease: a row in mcpauth_leases with an expiry on
// the database's clock, renewed by a heartbeat every LeaseTTL/3 while held
// and deleted by the unlock func. Waiters wake on the release notification,
// on the lease's expiry, or every LeasePoll at the latest. A replica that
// dies holding a lease loses it within LeaseTTL.
//
// Watch(ctx, key) sends the record after each change, from a dedicated
// listener connection that reconnects with backoff.
//
// Keys(ctx, prefix) lists stored keys, which driver.Store cannot (the
// mcpauth command lists sign-ins with it).
//
// Errors: a database that cannot be reached gives *UnavailableError (Lock
// included: it does not wait for the database to come back); a statement
// the server refuses otherwise gives *QueryError. Values are secrets: they
// never appear in errors, and nothing in this package logs.
package pgstore
