package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/driver/internal/storetest"
	"github.com/mcpauth/mcpauth/driver/pgstore"
	"github.com/mcpauth/mcpauth/internal/pgtest"
)

// openStore opens a store on dsn and closes it when the test ends.
func openStore(t testing.TB, dsn string, cfg pgstore.Config) *pgstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := pgstore.OpenConfig(ctx, dsn, cfg)
	if err != nil {
		t.Fatalf("pgstore.OpenConfig: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// execSQL runs statements on a connection of its own.
func execSQL(t testing.TB, dsn string, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestConformance runs the store conformance suite. Each open empties the
// tables; the stores of one test (the rapid model test opens one per
// check) share a schema but never run at once.
func TestConformance(t *testing.T) {
	t.Parallel() // with TestStore, after the timing-sensitive fleet tests
	dsn := pgtest.Start(t)
	ctx := context.Background()
	var clean *pgx.Conn // empties the tables between opens
	t.Cleanup(func() {
		if clean != nil {
			clean.Close(ctx)
		}
	})
	var (
		mu     sync.Mutex
		stores = map[testing.TB]*pgstore.Store{}
	)
	storetest.Run(t, func(t *testing.T) driver.Store {
		mu.Lock()
		defer mu.Unlock()
		// A rapid check opens a store per run, all on the same t: reuse
		// one store per t, emptied, rather than a pool per run.
		s, ok := stores[t]
		if !ok {
			s = openStore(t, dsn, pgstore.Config{})
			stores[t] = s
			t.Cleanup(func() { mu.Lock(); delete(stores, t); mu.Unlock() })
		}
		if clean == nil {
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			clean = c
		}
		if _, err := clean.Exec(ctx, `DELETE FROM mcpauth_records; DELETE FROM mcpauth_leases`); err != nil {
			t.Fatalf("emptying the tables: %v", err)
		}
		return s
	})
}

// TestStore covers what the conformance suite does not: the schema, the
// lease's expiry, heartbeat and wake-up, Close, and Watch. Each subtest
// has a schema of its own in one cluster.
func TestStore(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Start(t)
	open := func(t *testing.T, cfg pgstore.Config) *pgstore.Store {
		if cfg.Schema == "" {
			cfg.Schema = "t_" + strings.ToLower(strings.ReplaceAll(t.Name()[len("TestStore/"):], "/", "_"))
		}
		return openStore(t, dsn, cfg)
	}
	t.Run("ConcurrentFirstOpen", func(t *testing.T) {
		const n = 8
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := pgstore.OpenConfig(context.Background(), dsn, pgstore.Config{Schema: "t_concurrent"})
				if err != nil {
					errs <- err
					return
				}
				s.Close()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent Open: %v", err)
		}
		var rows, version int
		queryRow(t, dsn, `SELECT count(*), max(version) FROM t_concurrent.mcpauth_schema_version`, &rows, &version)
		if rows != 1 || version != pgstore.SchemaVersion {
			t.Errorf("schema_version has %d rows up to %d, want 1 row at %d", rows, version, pgstore.SchemaVersion)
		}
		// Opening again changes nothing and keeps the data.
		s := open(t, pgstore.Config{Schema: "t_concurrent"})
		if _, err := s.Put(context.Background(), "k", []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		s2 := open(t, pgstore.Config{Schema: "t_concurrent"})
		if r, err := s2.Get(context.Background(), "k"); err != nil || string(r.Value) != "v" {
			t.Errorf("Get after reopening = %v, %v", r, err)
		}
	})
	t.Run("NewerSchemaRefused", func(t *testing.T) {
		open(t, pgstore.Config{Schema: "t_newer"})
		execSQL(t, dsn, `INSERT INTO t_newer.mcpauth_schema_version (version) VALUES (99)`)
		_, err := pgstore.OpenConfig(context.Background(), dsn, pgstore.Config{Schema: "t_newer"})
		var se *pgstore.SchemaError
		if !errors.As(err, &se) || se.Have != 99 {
			t.Fatalf("Open on a newer schema = %v, want *pgstore.SchemaError", err)
		}
	})
	t.Run("DefaultSchema", func(t *testing.T) {
		s := openStore(t, dsn, pgstore.Config{})
		if s.Schema() != "public" {
			t.Errorf("Schema() = %q, want public", s.Schema())
		}
	})
	t.Run("Keys", func(t *testing.T) {
		s := open(t, pgstore.Config{})
		ctx := context.Background()
		for _, k := range []string{"tokens:b", "client:x", "tokens:a", "tokens_", "t%"} {
			if _, err := s.Put(ctx, k, []byte("v"), 0); err != nil {
				t.Fatal(err)
			}
		}
		for prefix, want := range map[string]string{
			"":        "client:x,t%,tokens:a,tokens:b,tokens_",
			"tokens:": "tokens:a,tokens:b",
			"t%":      "t%",
			"none":    "",
		} {
			got, err := s.Keys(ctx, prefix)
			if err != nil || strings.Join(got, ",") != want {
				t.Errorf("Keys(%q) = %q, %v; want %q", prefix, got, err, want)
			}
		}
	})
	t.Run("LapsedLeaseTakenOver", func(t *testing.T) {
		s := open(t, pgstore.Config{LeaseTTL: time.Second})
		// A holder that died: its row stays until it expires.
		execSQL(t, dsn, `INSERT INTO t_lapsedleasetakenover.mcpauth_leases (key, holder, acquired_at, expires_at)
			VALUES ('k', 'dead:1:x', clock_timestamp(), clock_timestamp() + interval '800 milliseconds')`)
		start := time.Now()
		unlock, err := s.Lock(context.Background(), "k")
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		if d := time.Since(start); d < 700*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("took over a lapsed lease after %v, want about 800ms", d)
		}
	})
	t.Run("HeartbeatKeepsLease", func(t *testing.T) {
		a := open(t, pgstore.Config{LeaseTTL: time.Second})
		b := open(t, pgstore.Config{LeaseTTL: time.Second})
		unlock, err := a.Lock(context.Background(), "k")
		if err != nil {
			t.Fatal(err)
		}
		// Three lease times: only renewals keep it.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if u, err := b.Lock(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
			if u != nil {
				u()
			}
			t.Fatalf("second store's Lock while the first holds and renews = %v, want context.DeadlineExceeded", err)
		}
		unlock()
	})
	t.Run("ReleaseWakesWaiter", func(t *testing.T) {
		a := open(t, pgstore.Config{})
		b := open(t, pgstore.Config{LeasePoll: 30 * time.Second})
		unlock, err := a.Lock(context.Background(), "k")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan time.Duration, 1)
		go func() {
			u, err := b.Lock(context.Background(), "k")
			if err != nil {
				t.Error(err)
				got <- 0
				return
			}
			u()
			got <- 0
		}()
		time.Sleep(300 * time.Millisecond) // b is waiting, with a 30 s poll
		released := time.Now()
		unlock()
		select {
		case <-got:
			t.Logf("waiter in another store took the lease %v after the release", time.Since(released).Round(time.Millisecond))
		case <-time.After(5 * time.Second):
			t.Fatal("the waiter was not woken by the release notification")
		}
	})
	t.Run("CloseReleases", func(t *testing.T) {
		a := open(t, pgstore.Config{})
		b := open(t, pgstore.Config{})
		if _, err := a.Lock(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
		a.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		u, err := b.Lock(ctx, "k")
		if err != nil {
			t.Fatalf("Lock after the holder closed its store: %v", err)
		}
		u()
		if _, err := a.Get(context.Background(), "k"); !errors.Is(err, pgstore.ErrClosed) {
			t.Errorf("Get after Close = %v, want ErrClosed", err)
		}
	})
	t.Run("Watch", func(t *testing.T) {
		a := open(t, pgstore.Config{})
		b := open(t, pgstore.Config{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch, err := a.Watch(ctx, "tokens:x")
		if err != nil {
			t.Fatal(err)
		}
		want := func(version uint64, value string) {
			t.Helper()
			deadline := time.After(5 * time.Second)
			for {
				select {
				case r, ok := <-ch:
					if !ok {
						t.Fatal("watch channel closed")
					}
					if r.Version == version && string(r.Value) == value {
						return
					}
				case <-deadline:
					t.Fatalf("no version %d (%q) from Watch", version, value)
				}
			}
		}
		// Written by another store (another process, as far as a is concerned).
		if _, err := b.Put(ctx, "tokens:x", []byte("one"), 0); err != nil {
			t.Fatal(err)
		}
		want(1, "one")
		// Other keys do not wake it; plain SQL does (the trigger notifies).
		if _, err := b.Put(ctx, "tokens:y", []byte("other"), 0); err != nil {
			t.Fatal(err)
		}
		execSQL(t, dsn, `UPDATE t_watch.mcpauth_records SET value = 'two', version = 2 WHERE key = 'tokens:x'`)
		want(2, "two")
		// The listener's connection is cut: it reconnects and reads again.
		var cut int
		queryRow(t, dsn, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`, &cut)
		if cut != 1 {
			t.Fatalf("cut %d listener connections, want 1", cut)
		}
		if _, err := b.Put(ctx, "tokens:x", []byte("three"), 2); err != nil {
			t.Fatal(err)
		}
		want(3, "three")
		cancel()
		select {
		case _, ok := <-ch:
			for ok {
				_, ok = <-ch
			}
		case <-time.After(5 * time.Second):
			t.Fatal("watch channel not closed after its context ended")
		}
	})
}

// queryRow scans one row of sql into dest.
func queryRow(t testing.TB, dsn, sql string, dest ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
