package hostile_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// §4.3 PRM discovery: E-18 … E-26.

func TestE18_NoBearerChallenge(t *testing.T) {
	for name, challenge := range map[string]string{
		"no WWW-Authenticate":  "",
		"Basic only":           `Basic realm="mcp"`,
		"Negotiate only":       `Negotiate`,
		"unparsable challenge": `Bearer resource_metadata="unterminated`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.rs.setChallenge(challenge)
			w.c.mustCall() // well-known discovery (RFC 9728 §3.1)
			if n := w.rs.Hits(prmPath); n != 1 {
				t.Errorf("path-inserted well-known PRM fetched %d times, want 1", n)
			}
		})
	}
	t.Run("a later Basic challenge keeps what was learned", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.login(t)
		w.rs.setChallenge(`Basic realm="mcp"`)
		w.as.expire()
		w.c.mustCall() // refreshed with the stored discovery
		if n := w.as.Hits("/authorize"); n != 1 {
			t.Errorf("authorizations %d, want 1: a non-Bearer 401 must not wipe the credential", n)
		}
	})
}

func TestE19_UnusableResourceMetadataURL(t *testing.T) {
	cases := map[string]func(w *world) string{
		"relative":   func(*world) string { return "/.well-known/oauth-protected-resource/mcp" },
		"javascript": func(*world) string { return "javascript:alert(1)" },
		"file":       func(*world) string { return "file:///etc/passwd" },
		"data":       func(*world) string { return "data:application/json,{}" },
		"http on a foreign host": func(*world) string {
			return "http://prm.example.test/.well-known/oauth-protected-resource"
		},
		"cloud metadata over http": func(*world) string { return "http://169.254.169.254/latest/meta-data/" },
		"userinfo":                 func(w *world) string { return strings.Replace(w.rs.prmURL, "http://", "http://user:pass@", 1) },
		"fragment":                 func(w *world) string { return w.rs.prmURL + "#frag" },
		"not a url":                func(*world) string { return "::not a url::" },
	}
	for name, u := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.rs.setChallenge(`Bearer resource_metadata="` + u(w) + `"`)
			_, _, err := w.c.call(defaultBudget)
			want[*machine.InsecureURLError](t, err)
			// Rejected before any fetch: nothing was asked of anyone.
			if n := len(w.c.spy.Requests()); n != 1 {
				t.Errorf("%d requests, want only the protected one", n)
			}
			w.c.wantNoDNS()
			w.as.wantUntouched(t)
		})
	}
}

func TestE20_ResourceMetadataOnAnotherOrigin(t *testing.T) {
	t.Run("names the server: used", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.evil.route("GET /prm", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, map[string]any{"resource": w.rs.mcpURL, "authorization_servers": []string{w.as.issuer}})
		})
		w.rs.setChallenge(`Bearer resource_metadata="` + w.evil.URL + `/prm"`)
		w.c.mustCall()
		w.evil.wantNoCredentials(t)
	})
	t.Run("names itself: refused", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.evil.route("GET /prm", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, map[string]any{"resource": w.evil.URL + "/mcp", "authorization_servers": []string{w.evil.URL}})
		})
		w.rs.setChallenge(`Bearer resource_metadata="` + w.evil.URL + `/prm"`)
		_, _, err := w.c.call(defaultBudget)
		want[*machine.ResourceMismatchError](t, err)
		if n := len(w.evil.Got()); n != 1 {
			t.Errorf("attacker got %d requests, want only the PRM fetch", n)
		}
	})
}

func TestE21_ResourceMismatch(t *testing.T) {
	cases := map[string]func(w *world) string{
		"another origin": func(w *world) string { return w.evil.URL + "/mcp" },
		"another path":   func(w *world) string { return w.rs.URL + "/other" },
		"parent path":    func(w *world) string { return w.rs.URL + "/" },
		"trailing slash": func(w *world) string { return w.rs.mcpURL + "/" },
		"query":          func(w *world) string { return w.rs.mcpURL + "?tenant=evil" },
		"fragment":       func(w *world) string { return w.rs.mcpURL + "#x" },
		"another port": func(w *world) string {
			return strings.Replace(w.rs.mcpURL, w.rs.Listener.Addr().String(), "127.0.0.1:1", 1)
		},
		"localhost alias": func(w *world) string { return strings.Replace(w.rs.mcpURL, "127.0.0.1", "localhost", 1) },
		"https":           func(w *world) string { return strings.Replace(w.rs.mcpURL, "http://", "https://", 1) },
		"dot segment":     func(w *world) string { return w.rs.URL + "/mcp/../admin" },
		"userinfo":        func(w *world) string { return strings.Replace(w.rs.mcpURL, "http://", "http://u@", 1) },
	}
	for name, res := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.rs.setPRM("resource", res(w))
			_, _, err := w.c.call(defaultBudget)
			var me *machine.ResourceMismatchError
			var mal *machine.MalformedError
			switch {
			case asErr(err, &me):
				if !strings.Contains(me.Server, "/mcp") || me.Resource == "" {
					t.Errorf("error %+v must name both URLs", me)
				}
			case asErr(err, &mal) && (name == "fragment"):
				// A resource with a fragment is not even a resource (RFC 8707 §2).
			default:
				t.Fatalf("error %v (%T), want *machine.ResourceMismatchError", err, err)
			}
			w.as.wantUntouched(t)
			w.evil.wantUntouched(t)
		})
	}
	t.Run("case of scheme and host: same resource (canonical comparison)", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.setPRM("resource", strings.Replace(w.rs.mcpURL, "http://", "HTTP://", 1))
		w.c.mustCall()
	})
	t.Run("test world PRMResource fault", func(t *testing.T) {
		t.Parallel()
		tw, err := testworld.Start(testworld.Options{DCR: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tw.Close)
		tw.SetFault(testworld.Fault{PRMResource: "https://evil.example.test/mcp"})
		c := newClient(t, tw.MCPURL(), tw.Issuer()+"/token")
		_, _, err = c.call(defaultBudget)
		want[*machine.ResourceMismatchError](t, err)
		if st := tw.Stats(); st.MetadataRequests != 0 || st.Authorizations != 0 {
			t.Errorf("the flow went on: %+v", st)
		}
		c.wantNoDNS()
	})
}

func TestE22_BadIssuerInPRM(t *testing.T) {
	cases := map[string]func(w *world) []string{
		"query":                  func(w *world) []string { return []string{w.as.issuer + "?tenant=x"} },
		"fragment":               func(w *world) []string { return []string{w.as.issuer + "#x"} },
		"http on a foreign host": func(w *world) []string { return []string{"http://as.example.test"} },
		"not a url":              func(w *world) []string { return []string{"as.example.test"} },
		"javascript":             func(w *world) []string { return []string{"javascript:alert(1)"} },
	}
	for name, servers := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.rs.setPRM("authorization_servers", servers(w))
			_, _, err := w.c.call(defaultBudget)
			var mal *machine.MalformedError
			var disc *machine.DiscoveryError
			if !asErr(err, &mal) && !asErr(err, &disc) {
				t.Fatalf("error %v (%T), want *machine.MalformedError or *machine.DiscoveryError", err, err)
			}
			w.as.wantUntouched(t)
			w.c.wantNoDNS()
		})
	}
	t.Run("the MCP server itself with a path", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.setPRM("authorization_servers", []string{w.rs.URL + "/mcp"})
		_, _, err := w.c.call(defaultBudget)
		want[*machine.DiscoveryError](t, err)
		w.as.wantUntouched(t)
	})
}

func TestE23_NoPRMRecursion(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// Every PRM URL answers 401 pointing at another PRM document.
	w.evil.route("GET /prm2", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, 200, map[string]any{"resource": w.rs.mcpURL, "authorization_servers": []string{w.evil.URL}})
	})
	recurse := func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+w.evil.URL+`/prm2"`)
		writeJSON(rw, 401, map[string]string{"error": "unauthorized"})
	}
	w.rs.route("GET "+prmPath, recurse)
	w.rs.route("GET /.well-known/oauth-protected-resource", recurse)
	_, _, err := w.c.call(defaultBudget)
	// With no PRM the server's origin is taken as a 2025-03-26 server,
	// whose default registration endpoint does not exist.
	want[*machine.RegistrationError](t, err)
	w.evil.wantUntouched(t)
	if n := w.c.spy.Sent(w.rs.prmURL); n != 1 {
		t.Errorf("PRM fetched %d times, want 1 (one hop, no recursion)", n)
	}
}

func TestE24_AuthorizationServerMigration(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	as2 := newAuthServer(t, "second authorization server")
	w.c.tokenEndpoints = append(w.c.tokenEndpoints, as2.tokenURL())
	w.login(t)
	oldRefresh := w.c.storedRefresh()

	// The server moves to another authorization server and trusts only it.
	w.rs.mu.Lock()
	w.rs.trust = as2
	w.rs.mu.Unlock()
	w.rs.setPRM("authorization_servers", []string{as2.issuer})

	w.c.mustCall()
	tok := w.c.stored().Tokens
	if tok == nil || tok.Issuer != as2.issuer {
		t.Fatalf("stored credential %+v, want one from %s", tok, as2.issuer)
	}
	if tok.RefreshToken == oldRefresh {
		t.Errorf("the old server's refresh token was kept")
	}
	if n := as2.Hits("/register"); n != 1 {
		t.Errorf("registrations at the new server: %d, want 1", n)
	}
	// The leak check (same-origin rule) proves the old server's refresh
	// token and client never went to the new one.
}

func TestE25_RootPRMForAnotherPath(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.rs.setChallenge("")
	w.rs.route("GET "+prmPath, status(404))
	w.rs.route("GET /.well-known/oauth-protected-resource", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, 200, map[string]any{"resource": w.rs.URL + "/other", "authorization_servers": []string{w.as.issuer}})
	})
	_, _, err := w.c.call(defaultBudget)
	want[*machine.ResourceMismatchError](t, err)
	w.as.wantUntouched(t)
}

func TestE26_DuplicateChallengeParams(t *testing.T) {
	for name, challenge := range map[string]func(w *world) string{
		"two resource_metadata": func(w *world) string {
			return `Bearer resource_metadata="` + w.evil.URL + `/a", resource_metadata="` + w.evil.URL + `/b"`
		},
		"two scopes": func(w *world) string {
			return `Bearer resource_metadata="` + w.evil.URL + `/a", scope="read", scope="admin"`
		},
		"case-variant duplicate": func(w *world) string {
			return `Bearer resource_metadata="` + w.evil.URL + `/a", RESOURCE_METADATA="` + w.evil.URL + `/b"`
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.rs.setChallenge(challenge(w))
			w.c.mustCall() // malformed challenge: well-known discovery
			w.evil.wantUntouched(t)
			for _, r := range w.as.Got() {
				if strings.Contains(r.URL, "admin") {
					t.Errorf("a scope from a malformed challenge was used: %s", r.URL)
				}
			}
		})
	}
}

// asErr is errors.As with a typed target.
func asErr[T error](err error, target *T) bool {
	return err != nil && errors.As(err, target)
}
