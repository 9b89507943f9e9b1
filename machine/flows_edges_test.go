package machine_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// A-PRM-03, A-ASM-03/04: 404, 410 and other 4xx answers move discovery on
// to the next candidate (only 5xx, 429 and transport failures stop it).
func TestFlowClientErrorsMoveOn(t *testing.T) {
	cases := []struct {
		name, url string
		status    int
		setup     func(w *fakeWorld)
		next      string
	}{
		{"AS metadata 410 → OIDC", wASMOAuth, 410, func(w *fakeWorld) { w.AS[0].Meta = metaOIDC }, wASMOIDC},
		{"AS metadata 400 → OIDC", wASMOAuth, 400, func(w *fakeWorld) { w.AS[0].Meta = metaOIDC }, wASMOIDC},
		{"PRM path 403 → root", wPRMPath, 403, func(w *fakeWorld) { w.PRM = prmRootOnly }, wPRMRoot},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newFakeWorld()
			c.setup(w)
			w.Status[c.url] = c.status
			w.run(t, w.boot(t), w.req(1))
			requireDelivered(t, w, 1)
			fetched := map[string]bool{}
			for _, f := range w.Fetches {
				fetched[f.URL] = true
			}
			if !fetched[c.url] || !fetched[c.next] {
				t.Errorf("fetched %v: want %s (answered %d) and then %s", w.Fetches, c.url, c.status, c.next)
			}
		})
	}
}

// A configured refresh margin moves the renewal (issue 2 item 7): with 10
// minutes before a one-hour token, the wake-up is at 50 minutes, a
// request at 48 minutes goes out with the token, one at 51 refreshes.
func TestFlowRefreshMarginConfigurable(t *testing.T) {
	w := newFakeWorld()
	w.Config.RefreshMargin = 10 * time.Minute
	s := w.run(t, w.boot(t), w.req(1))
	if want := t0.Add(50 * time.Minute); !w.WakeAt.Equal(want) {
		t.Fatalf("WakeAt %v, want %v", w.WakeAt, want)
	}
	refreshes := func() int { return len(w.fetchURLs(effects.PurposeRefresh)) }
	w.Now = t0.Add(48 * time.Minute)
	s = w.run(t, s, w.req(2))
	if refreshes() != 0 {
		t.Fatalf("refreshed at 48 minutes with a 10-minute margin")
	}
	w.Now = t0.Add(51 * time.Minute)
	w.run(t, s, w.req(3))
	requireDelivered(t, w, 1, 2, 3)
	if refreshes() != 1 {
		t.Errorf("%d refreshes at 51 minutes, want 1", refreshes())
	}
}

// Q-01, A-ASM-06: an issuer that differs from the identifier only by one
// "/" on an empty path is refused by default and accepted only with
// Config.TolerateIssuerSlash; a path issuer's slash is never tolerated.
func TestFlowIssuerSlashTolerance(t *testing.T) {
	for _, tolerate := range []bool{false, true} {
		w := newFakeWorld()
		w.AS[0].MetadataIssuer = wIssuer + "/"
		w.Config.TolerateIssuerSlash = tolerate
		w.AllowRefused = true
		w.run(t, w.boot(t), w.req(1))
		if tolerate {
			requireDelivered(t, w, 1)
		} else {
			requireFailed[*machine.DiscoveryError](t, w, 1)
		}
	}
	if machine.IssuerMatches("https://auth.example.com/tenant1/", "https://auth.example.com/tenant1", true) {
		t.Error("a path issuer's trailing slash was tolerated")
	}
}

// RFC 7591 client_secret_expires_at (issue 2 item 4): a stored
// registration whose secret has expired is not used: the client registers
// again before any token request, and the expired secret is never sent.
func TestFlowExpiredClientSecretRegistersAgain(t *testing.T) {
	w := newFakeWorld()
	w.Config.TokenEndpointAuthMethod = "client_secret_basic"
	w.run(t, w.boot(t), w.req(1))
	old, ok := w.Store.Clients[wIssuer]
	if !ok || old.ClientSecret == "" {
		t.Fatalf("no confidential registration stored: %+v", w.Store.Clients)
	}
	old.SecretExpiresAt = t0.Add(time.Hour)
	w.Store.Clients[wIssuer] = old
	delete(w.Store.Tokens, wServer)
	delete(w.Store.TokenVersions, wServer)
	w.Now = t0.Add(2 * time.Hour)
	tokenRequests := len(w.TokenRequests)
	w.run(t, restart(t, w), w.req(2))
	requireDelivered(t, w, 1, 2)
	if len(w.Registrations) != 2 {
		t.Fatalf("%d registrations, want a second one for the expired secret", len(w.Registrations))
	}
	for _, r := range w.TokenRequests[tokenRequests:] {
		if got := r.Header["Authorization"]; len(got) > 0 && got[0] == "Basic "+basic(old.ClientID+":"+old.ClientSecret) {
			t.Errorf("the expired secret was sent to the token endpoint")
		}
	}
	if c := w.Store.Clients[wIssuer]; c.ClientID == old.ClientID && c.ClientSecret == old.ClientSecret {
		t.Errorf("the expired registration is still the stored one")
	}
}

// Design §4.5, RFC 6749 §10.12: the state is compared in constant time.
// Timing cannot be measured reliably in a test; the source is read instead.
func TestStateComparedInConstantTime(t *testing.T) {
	src, err := os.ReadFile("authorize.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "subtle.ConstantTimeCompare([]byte(p.State), []byte(a.StateParam))") {
		t.Error("authorize.go no longer compares the callback's state with subtle.ConstantTimeCompare")
	}
}
