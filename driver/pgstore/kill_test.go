package pgstore_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/mcpauth/driver/pgstore"
	"github.com/mcpauth/mcpauth/internal/pgtest"
	"github.com/mcpauth/mcpauth/internal/testworld"
)

// TestFleetKillLeaseHolder: the replica holding the lease is killed (-9)
// in the middle of its refresh; another replica takes the lease over once
// it lapses and completes the refresh within the lease time plus one
// second, with no invalid_grant.
//
// The victim's refresh hangs inside the replica, before the request
// leaves it (replicaSpec.hangFile), rather than at the authorization
// server with Fault.Delay: testworld's delay runs before the handler reads
// the request body, so net/http does not notice the client going away and
// the world would redeem the dead replica's refresh token a minute later.
// That is the one failure a lease cannot cover — a holder that dies after
// the server redeemed its refresh token but before it stored the answer —
// and docs/scale-out.md discusses it.
func TestFleetKillLeaseHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster and processes")
	}
	const (
		replicas   = 3
		goroutines = 4
		leaseTTL   = 2 * time.Second
		accessTTL  = 2 * time.Second
		margin     = 500 * time.Millisecond
	)
	dsn := pgtest.Start(t)
	w := startWorld(t, testworld.Options{DCR: true, RotateRefresh: true, AccessTTL: accessTTL})
	preauthorize(t, dsn, w, margin)
	obs := openStore(t, dsn, pgstore.Config{})
	key := "tokens:" + w.MCPURL()
	spec := replicaSpec{dsn: dsn, mcpURL: w.MCPURL(), duration: time.Minute, goroutines: goroutines, leaseTTL: leaseTTL, margin: margin,
		hangFile: filepath.Join(t.TempDir(), "hang")}
	rs := make([]*replica, replicas)
	marks := make(chan *replica, replicas)
	for i := range rs {
		r := startReplica(t, spec)
		rs[i] = r
		go func() {
			select {
			case <-r.hangs:
				marks <- r
			case <-r.done:
			}
		}()
	}
	waitReady(t, rs, 60*time.Second)
	for _, r := range rs {
		r.send("go")
	}

	var victim *replica
	select {
	case victim = <-marks:
	case <-time.After(20 * time.Second):
		t.Fatal("no replica started a refresh")
	}
	// The lease row names the process that holds it.
	holder := leaseHolder(t, dsn, key)
	if pid := holderPID(holder); pid != victim.pid {
		t.Fatalf("the lease is held by %q, but the refresh came from pid %d", holder, victim.pid)
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill: %v", err)
	}
	killed := time.Now()
	_ = victim.cmd.Wait()

	// Another replica completes the refresh: version 2 is stored.
	var tookOver time.Time
	for limit := killed.Add(leaseTTL + 10*time.Second); ; time.Sleep(5 * time.Millisecond) {
		if tokenVersion(t, obs, w.MCPURL()) >= 2 {
			tookOver = time.Now()
			break
		}
		if time.Now().After(limit) {
			t.Fatalf("no refresh stored %v after the lease holder was killed", time.Since(killed))
		}
	}
	took := tookOver.Sub(killed)
	newHolder := leaseHolder(t, dsn, key)
	t.Logf("killed pid %d holding the lease mid-refresh; a refresh was stored %v later (lease time %v); lease now %q",
		victim.pid, took.Round(time.Millisecond), leaseTTL, newHolder)
	if took > leaseTTL+time.Second {
		t.Errorf("the refresh completed %v after the kill, want at most the lease time plus one second (%v)", took, leaseTTL+time.Second)
	}

	// The survivors go on through another expiry, then stop.
	time.Sleep(accessTTL)
	var total replicaResult
	for _, r := range rs {
		if r == victim {
			continue
		}
		r.send("stop")
		res := r.collect(t, 60*time.Second)
		total.Requests += res.Requests
		total.OK += res.OK
		total.Errors += res.Errors
		if total.FirstError == "" {
			total.FirstError = res.FirstError
		}
	}
	st := w.Stats()
	last := tokenVersion(t, obs, w.MCPURL())
	for _, r := range rs {
		r.stdin.Close()
	}
	t.Logf("survivors: %d requests, %d answered 200; refresh grants %d, stored versions 1..%d, invalid_grant %d",
		total.Requests, total.OK, st.TokenRequests["refresh_token"], last, st.InvalidGrants)
	if st.InvalidGrants != 0 || st.FamiliesRevoked != 0 {
		t.Errorf("invalid_grant %d, families revoked %d: want 0", st.InvalidGrants, st.FamiliesRevoked)
	}
	if total.Errors != 0 || total.OK != total.Requests || total.Requests == 0 {
		t.Errorf("survivors' requests %d: 200 %d, unanswered %d (first error: %s): want every request answered 200",
			total.Requests, total.OK, total.Errors, total.FirstError)
	}
	if st.Authorizations != 1 {
		t.Errorf("authorizations %d, want 1: the takeover must refresh, not sign in again", st.Authorizations)
	}
}

// leaseHolder reads the holder of key's lease ("" when there is none).
func leaseHolder(t testing.TB, dsn, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var holder string
	err = conn.QueryRow(ctx, `SELECT holder FROM mcpauth_leases WHERE key = $1 AND expires_at > clock_timestamp()`, key).Scan(&holder)
	if err != nil && err != pgx.ErrNoRows {
		t.Fatalf("reading the lease: %v", err)
	}
	return holder
}

// holderPID is the pid in a holder id "<host>:<pid>:<random>".
func holderPID(holder string) int {
	parts := strings.Split(holder, ":")
	if len(parts) < 3 {
		return 0
	}
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	return pid
}
