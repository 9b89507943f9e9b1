package httpdriver_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/manualclock"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// refreshWorld is a world and an authenticated transport sharing one fake
// clock, with rotating refresh tokens and a ten-minute access lifetime.
type refreshWorld struct {
	w      *testworld.World
	clock  *manualclock.Clock
	store  *driver.MemoryStore
	tr     *httpdriver.Transport
	client *http.Client
	tracer *effectTracer
}

const refreshAccessTTL = 10 * time.Minute

func startRefreshWorld(t *testing.T) *refreshWorld {
	t.Helper()
	clock := newFakeClock()
	w := startWorld(t, testworld.Options{DCR: true, RotateRefresh: true, AccessTTL: refreshAccessTTL, Now: clock.Now})
	rw := &refreshWorld{w: w, clock: clock, store: driver.NewMemoryStore(), tracer: newEffectTracer()}
	rw.tr = newTransport(t, worldConfig(w), httpdriver.Options{Store: rw.store, Clock: clock, Tracer: rw.tracer})
	rw.client = &http.Client{Transport: rw.tr}
	mustPost(t, rw.client, w.MCPURL(), rpcBody(1))
	if st := w.Stats(); st.Authorizations != 1 || st.TokenRequests["authorization_code"] != 1 {
		t.Fatalf("setup: stats %+v", st)
	}
	rw.tracer.waitSaved(t) // drain the first save
	return rw
}

// TestRefreshAfterExpiry: a 401 for an expired access token costs exactly
// one refresh grant; the rotated refresh token is stored before use.
func TestRefreshAfterExpiry(t *testing.T) {
	rw := startRefreshWorld(t)
	old := storedTokens(t, rw.store, rw.w.MCPURL())
	rw.w.ExpireAccessTokens()

	mustPost(t, rw.client, rw.w.MCPURL(), rpcBody(2))
	st := rw.w.Stats()
	if got := st.TokenRequests["refresh_token"]; got != 1 {
		t.Errorf("refresh grants = %d, want 1", got)
	}
	if st.Authorizations != 1 || st.Registrations != 1 || st.TokenRequests["authorization_code"] != 1 {
		t.Errorf("a refresh must not authorize or register again: %+v", st)
	}
	now := storedTokens(t, rw.store, rw.w.MCPURL())
	switch {
	case now == nil:
		t.Fatal("no credential stored after refresh")
	case now.RefreshToken == "" || now.RefreshToken == old.RefreshToken:
		t.Errorf("rotated refresh token not stored")
	case now.AccessToken == old.AccessToken:
		t.Errorf("new access token not stored")
	case now.AccessToken != rw.tr.Session().Snapshot().Credential.AccessToken:
		t.Errorf("stored credential differs from the one in use")
	}
	// The rotated token works: a second expiry refreshes with it.
	rw.w.ExpireAccessTokens()
	mustPost(t, rw.client, rw.w.MCPURL(), rpcBody(3))
	st = rw.w.Stats()
	if st.TokenRequests["refresh_token"] != 2 || st.InvalidGrants != 0 || st.FamiliesRevoked != 0 {
		t.Errorf("second refresh: %+v", st)
	}
}

// TestRefreshAheadOfExpiry: once the clock enters the refresh margin, the
// next request is sent only after a refresh, and never meets a 401.
func TestRefreshAheadOfExpiry(t *testing.T) {
	rw := startRefreshWorld(t)
	before := rw.w.Stats()
	rw.clock.Advance(refreshAccessTTL - 30*time.Second) // inside the one-minute margin; the timer fires too
	mustPost(t, rw.client, rw.w.MCPURL(), rpcBody(2))
	st := rw.w.Stats()
	if got := st.TokenRequests["refresh_token"]; got != 1 {
		t.Errorf("refresh grants = %d, want 1", got)
	}
	if st.Unauthorized != before.Unauthorized {
		t.Errorf("a request met a 401 although the credential was refreshed ahead of expiry")
	}
}

// TestRefreshTimer: the WakeAt timer alone refreshes the credential, with
// no request in flight.
func TestRefreshTimer(t *testing.T) {
	rw := startRefreshWorld(t)
	exp := storedTokens(t, rw.store, rw.w.MCPURL()).ExpiresAt
	armed := rw.clock.Armed()
	if len(armed) != 1 || !armed[0].Equal(exp.Add(-time.Minute)) {
		t.Fatalf("armed timers %v, want one at expiry %v minus the one-minute margin", armed, exp)
	}
	if n := rw.clock.Advance(refreshAccessTTL - time.Minute - time.Second); n != 0 {
		t.Fatalf("%d timers fired before the margin", n)
	}
	if n := rw.clock.Advance(time.Second); n != 1 {
		t.Fatalf("%d timers fired at the margin, want 1", n)
	}
	saved := rw.tracer.waitSaved(t)
	// The step that saved also arms the next timer, under the session's
	// lock: taking a snapshot waits for that step to end.
	_ = rw.tr.Session().Snapshot()
	if got := rw.w.Stats().TokenRequests["refresh_token"]; got != 1 {
		t.Errorf("refresh grants = %d, want 1", got)
	}
	if saved.IfVersion != 1 {
		t.Errorf("refresh saved with IfVersion %d, want 1", saved.IfVersion)
	}
	// A new timer is armed for the new credential.
	armed = rw.clock.Armed()
	if len(armed) != 1 || !armed[0].Equal(saved.Tokens.ExpiresAt.Add(-time.Minute)) {
		t.Errorf("armed timers after refresh %v, want one for the new expiry %v", armed, saved.Tokens.ExpiresAt)
	}
	before := rw.w.Stats()
	mustPost(t, rw.client, rw.w.MCPURL(), rpcBody(2))
	if st := rw.w.Stats(); st.Unauthorized != before.Unauthorized || st.TokenRequests["refresh_token"] != 1 {
		t.Errorf("request after a timer refresh: %+v", st)
	}
}

// TestRefreshInvalidGrant: a refused refresh token is forgotten and the
// user is asked again; the request still succeeds.
func TestRefreshInvalidGrant(t *testing.T) {
	rw := startRefreshWorld(t)
	old := storedTokens(t, rw.store, rw.w.MCPURL())
	rw.w.SetFault(testworld.Fault{InvalidGrantOnRefresh: true})
	rw.w.ExpireAccessTokens()

	mustPost(t, rw.client, rw.w.MCPURL(), rpcBody(2))
	st := rw.w.Stats()
	if st.TokenRequests["refresh_token"] != 1 || st.InvalidGrants != 1 {
		t.Errorf("refresh grants = %d, invalid grants = %d, want 1 and 1", st.TokenRequests["refresh_token"], st.InvalidGrants)
	}
	if st.Authorizations != 2 || st.TokenRequests["authorization_code"] != 2 {
		t.Errorf("authorizations = %d, code grants = %d, want 2 and 2", st.Authorizations, st.TokenRequests["authorization_code"])
	}
	if st.Registrations != 1 {
		t.Errorf("registrations = %d: the registration must be reused", st.Registrations)
	}
	now := storedTokens(t, rw.store, rw.w.MCPURL())
	if now == nil || now.RefreshToken == old.RefreshToken || now.AccessToken == old.AccessToken {
		t.Errorf("the refused credential is still stored")
	}
}

// TestRefreshServerError: a 500 from the token endpoint fails the request
// with a retryable error and keeps the refresh token.
func TestRefreshServerError(t *testing.T) {
	rw := startRefreshWorld(t)
	old := storedTokens(t, rw.store, rw.w.MCPURL())
	rw.w.SetFault(testworld.Fault{TokenStatus: http.StatusInternalServerError})
	rw.w.ExpireAccessTokens()

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, _, err := postMCP(ctx, rw.client, rw.w.MCPURL(), rpcBody(2))
	if err == nil {
		t.Fatal("request succeeded although the refresh failed")
	}
	if !machine.IsRetryable(err) {
		t.Errorf("error %v is not retryable", err)
	}
	var te *machine.TokenError
	if !errors.As(err, &te) || te.Grant != "refresh_token" {
		t.Errorf("error %v (%T), want a refresh_token *machine.TokenError", err, err)
	}
	st := rw.w.Stats()
	if st.TokenRequests["refresh_token"] != 1 || st.Authorizations != 1 {
		t.Errorf("stats %+v: want one refresh and no new authorization", st)
	}
	now := storedTokens(t, rw.store, rw.w.MCPURL())
	if now == nil || now.RefreshToken != old.RefreshToken {
		t.Fatalf("refresh token lost after a transient failure: %v", now)
	}
	if rw.tr.Session().Snapshot().Credential.RefreshToken != old.RefreshToken {
		t.Errorf("the session forgot its refresh token after a transient failure")
	}
}

// TestRefreshRetryAfterServerError: once the token endpoint recovers, the
// next request refreshes again; a transient failure is no reason to send
// the user through the browser.
func TestRefreshRetryAfterServerError(t *testing.T) {
	rw := startRefreshWorld(t)
	rw.w.SetFault(testworld.Fault{TokenStatus: http.StatusInternalServerError})
	rw.w.ExpireAccessTokens()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, _, err := postMCP(ctx, rw.client, rw.w.MCPURL(), rpcBody(2)); err == nil {
		t.Fatal("request succeeded although the refresh failed")
	}
	mustPost(t, rw.client, rw.w.MCPURL(), rpcBody(3))
	st := rw.w.Stats()
	if st.TokenRequests["refresh_token"] != 2 || st.Authorizations != 1 || st.PRMRequests != 1 {
		t.Errorf("retry after a transient refresh failure: refresh grants %d (want 2), authorizations %d (want 1), PRM requests %d (want 1)",
			st.TokenRequests["refresh_token"], st.Authorizations, st.PRMRequests)
	}
}
