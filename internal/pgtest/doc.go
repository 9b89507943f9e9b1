// Package pgtest starts a throwaway PostgreSQL cluster for a test: initdb
// into a temporary folder, a server that listens only on a unix socket in
// that folder (no TCP), stopped and removed when the test ends.
//
// # Contract
//
// [Start] (or [StartCluster], which also lets a test stop and restart the
// server) finds initdb and pg_ctl on PATH or under
// /usr/lib/postgresql/<version>/bin (where Debian's postgresql package puts
// them; the newest version wins), creates the cluster with trust
// authentication and a superuser named "postgres", starts it and waits until
// it accepts connections. The DSN it returns is in key=value form:
//
//	host=<socket folder> port=5432 user=postgres dbname=postgres sslmode=disable
//
// When the binaries are missing the test is skipped, unless the
// environment variable MCPAUTH_REQUIRE_POSTGRES is set (to anything): then
// it fails. CI sets it (see .ci/run), so PostgreSQL tests never skip there
// silently.
//
// # Running as root
//
// initdb and postgres refuse to run as root. When the test runs as root
// (containers, CI), the cluster's folder is handed to another user and
// initdb and pg_ctl run as that user (setuid through
// syscall.SysProcAttr.Credential; no su or sudo needed): the user named by
// MCPAUTH_PGTEST_USER, else "postgres" (created by Debian's postgresql
// package), else "nobody". The folder's parent is made traversable (0711)
// for that user. Root connects over the socket like anyone else.
//
// The server runs with fsync, full_page_writes and synchronous_commit off:
// it is fast and loses data on a machine crash, which is what a throwaway
// cluster is for. A test binary that is killed (a go test timeout) leaves
// its server running; `pg_ctl -D <folder> stop` or killing the postgres
// process ends it.
package pgtest
