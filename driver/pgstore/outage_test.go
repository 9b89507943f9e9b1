package pgstore_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver/pgstore"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/internal/pgtest"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// TestDatabaseOutage: the database stops (pg_ctl stop -m fast) while a
// replica runs. Requests with a valid access token keep working, since
// they never touch the store; store operations fail with
// *pgstore.UnavailableError; a refresh cannot take the lease, so it is not
// sent (no token request goes out unguarded) and the request that needed
// it fails; once the database is back the next request refreshes and
// succeeds.
func TestDatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	const (
		accessTTL = 3 * time.Second
		margin    = time.Second
	)
	cluster := pgtest.StartCluster(t)
	w := startWorld(t, testworld.Options{DCR: true, RotateRefresh: true, AccessTTL: accessTTL})
	s := openStore(t, cluster.DSN(), pgstore.Config{LeaseTTL: 5 * time.Second, OpTimeout: 2 * time.Second})
	ctx := context.Background()
	tr, base, err := newTransport(ctx, worldConfig(w.MCPURL(), margin), s, nil)
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	t.Cleanup(base.CloseIdleConnections)
	t.Cleanup(tr.Close)
	client := &http.Client{Transport: tr}
	post := func(id int) (int, error) {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return postMCP(rctx, client, w.MCPURL(), id)
	}
	if code, err := post(1); err != nil || code != http.StatusOK {
		t.Fatalf("sign in: %d, %v", code, err)
	}
	key := "tokens:" + w.MCPURL()
	expiry := storedExpiry(t, s, w.MCPURL())

	cluster.Stop()
	stopped := time.Now()

	// A valid credential needs no database.
	for i := 0; time.Until(expiry.Add(-margin)) > 200*time.Millisecond; i++ {
		if code, err := post(100 + i); err != nil || code != http.StatusOK {
			t.Fatalf("request %d with a valid token while the database is down: %d, %v", i, code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The store reports the outage as a typed error.
	var ue *pgstore.UnavailableError
	if _, err := s.Get(ctx, key); !errors.As(err, &ue) {
		t.Errorf("Get while down = %v, want *pgstore.UnavailableError", err)
	}
	if unlock, err := s.Lock(ctx, key); !errors.As(err, &ue) {
		if unlock != nil {
			unlock()
		}
		t.Errorf("Lock while down = %v, want *pgstore.UnavailableError", err)
	} else {
		t.Logf("Lock while down: %v", err)
	}

	// Past the expiry a request needs a refresh, which needs the lease.
	time.Sleep(time.Until(expiry) + 100*time.Millisecond)
	_, err = post(200)
	if err == nil {
		t.Fatal("a request that needs a refresh succeeded while the database is down")
	}
	t.Logf("request needing a refresh while down: %v", err)
	// The session reports a lease it cannot take as the refresh request
	// failing to go out (a transient failure: the credential is kept).
	var te *machine.TransportError
	if !errors.As(err, &te) || te.Purpose != string(effects.PurposeRefresh) {
		t.Errorf("request error %v (%T), want a *machine.TransportError for the refresh", err, err)
	}
	if st := w.Stats(); st.TokenRequests["refresh_token"] != 0 {
		t.Errorf("refresh grants while the database is down = %d, want 0: a refresh must not go out without the lease", st.TokenRequests["refresh_token"])
	}

	cluster.Restart()
	t.Logf("database down for %v", time.Since(stopped).Round(time.Millisecond))
	if code, err := post(300); err != nil || code != http.StatusOK {
		t.Fatalf("request after the database came back: %d, %v", code, err)
	}
	st := w.Stats()
	if st.TokenRequests["refresh_token"] != 1 || st.InvalidGrants != 0 || st.Authorizations != 1 {
		t.Errorf("after recovery: refresh grants %d, invalid_grant %d, authorizations %d; want 1, 0, 1",
			st.TokenRequests["refresh_token"], st.InvalidGrants, st.Authorizations)
	}
	if v := tokenVersion(t, s, w.MCPURL()); v != 2 {
		t.Errorf("stored credential version %d after the refresh, want 2", v)
	}
}
