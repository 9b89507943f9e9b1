package hostile_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// §4.5 AS metadata: E-32 … E-39.

// wantRefusedServer requires the call to end with *machine.DiscoveryError
// whose Tried mentions every word, with no authorization and nothing sent
// to the attacker.
func wantRefusedServer(t *testing.T, w *world, err error, words ...string) {
	t.Helper()
	d := want[*machine.DiscoveryError](t, err)
	tried := strings.ToLower(strings.Join(d.Tried, "; "))
	for _, word := range words {
		if !strings.Contains(tried, strings.ToLower(word)) {
			t.Errorf("DiscoveryError.Tried %q does not mention %q", d.Tried, word)
		}
	}
	if n := w.as.Hits("/authorize") + w.as.Hits("/register") + w.as.Hits("/token"); n != 0 {
		t.Errorf("the flow went on with a refused server (%d requests)", n)
	}
	w.evil.wantUntouched(t)
	w.c.wantNoDNS()
}

func TestE32_IssuerMismatch(t *testing.T) {
	cases := map[string]func(w *world) string{
		"another host":   func(w *world) string { return w.evil.URL },
		"another path":   func(w *world) string { return w.as.issuer + "/tenant2" },
		"trailing slash": func(w *world) string { return w.as.issuer + "/" },
		"case":           func(w *world) string { return strings.ToUpper(w.as.issuer[:4]) + w.as.issuer[4:] },
		"https":          func(w *world) string { return strings.Replace(w.as.issuer, "http://", "https://", 1) },
		"localhost":      func(w *world) string { return strings.Replace(w.as.issuer, "127.0.0.1", "localhost", 1) },
		"query":          func(w *world) string { return w.as.issuer + "?x=1" },
		"fragment":       func(w *world) string { return w.as.issuer + "#x" },
	}
	for name, iss := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.set("issuer", iss(w))
			// The document's endpoints point at the attacker: never used.
			w.as.set("authorization_endpoint", w.evil.URL+"/authorize")
			w.as.set("token_endpoint", w.evil.URL+"/token")
			w.as.set("registration_endpoint", w.evil.URL+"/register")
			_, _, err := w.c.call(defaultBudget)
			wantRefusedServer(t, w, err)
		})
	}
	t.Run("test world MetadataIssuer fault", func(t *testing.T) {
		t.Parallel()
		tw, err := testworld.Start(testworld.Options{DCR: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tw.Close)
		tw.SetFault(testworld.Fault{MetadataIssuer: "https://honest.example.test", Sticky: true})
		c := newClient(t, tw.MCPURL(), tw.Issuer()+"/token")
		_, _, err = c.call(defaultBudget)
		d := want[*machine.DiscoveryError](t, err)
		if !strings.Contains(strings.Join(d.Tried, " "), "honest.example.test") {
			t.Errorf("Tried %q does not name the mismatching issuer", d.Tried)
		}
		if st := tw.Stats(); st.Registrations+st.Authorizations != 0 {
			t.Errorf("a mismatching document was used: %+v", st)
		}
		c.wantNoDNS()
	})
}

func TestE33_ConflictingDocuments(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// An OIDC document on the same issuer names the attacker's endpoints:
	// the RFC 8414 document comes first and is valid, so the OIDC one is
	// never fetched, let alone merged.
	w.as.route("GET /.well-known/openid-configuration", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, 200, map[string]any{"issuer": w.as.issuer, "authorization_endpoint": w.evil.URL + "/authorize",
			"token_endpoint": w.evil.URL + "/token", "response_types_supported": []string{"code"},
			"code_challenge_methods_supported": []string{"S256"}})
	})
	w.c.mustCall()
	if n := w.as.Hits("/.well-known/openid-configuration"); n != 0 {
		t.Errorf("OIDC document fetched %d times after a valid RFC 8414 one", n)
	}
	w.evil.wantUntouched(t)
}

func TestE34_NoS256(t *testing.T) {
	cases := map[string]any{
		"absent":     nil,
		"empty":      []string{},
		"plain only": []string{"plain"},
		"lower case": []string{"s256"},
		"bogus":      []string{"RS256"},
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.set("code_challenge_methods_supported", v)
			_, _, err := w.c.call(defaultBudget)
			wantRefusedServer(t, w, err, "S256")
			if _, plain := w.as.counts(); plain != 0 {
				t.Errorf("an authorization request without S256 was made")
			}
		})
	}
	t.Run("test world DropS256 fault", func(t *testing.T) {
		t.Parallel()
		tw, err := testworld.Start(testworld.Options{DCR: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tw.Close)
		tw.SetFault(testworld.Fault{DropS256: true, Sticky: true})
		c := newClient(t, tw.MCPURL(), tw.Issuer()+"/token")
		_, _, err = c.call(defaultBudget)
		d := want[*machine.DiscoveryError](t, err)
		if !strings.Contains(strings.Join(d.Tried, " "), "S256") {
			t.Errorf("Tried %q does not say why", d.Tried)
		}
		if st := tw.Stats(); st.Authorizations != 0 {
			t.Errorf("authorized without S256: %+v", st)
		}
	})
}

func TestE35_CapabilitiesMissing(t *testing.T) {
	t.Run("response_types_supported lacks code", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.set("response_types_supported", []string{"token"})
		_, _, err := w.c.call(defaultBudget)
		wantRefusedServer(t, w, err, "response_types_supported")
	})
	t.Run("grant_types_supported lacks authorization_code", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.set("grant_types_supported", []string{"client_credentials"})
		_, _, err := w.c.call(defaultBudget)
		want[*machine.UnsupportedGrantError](t, err)
		if n := w.as.Hits("/authorize") + w.as.Hits("/register"); n != 0 {
			t.Errorf("the flow went on (%d requests)", n)
		}
	})
	t.Run("grant_types_supported lacks refresh_token", func(t *testing.T) {
		// Refresh is skipped: an expired credential means a new
		// authorization, and no refresh grant is ever sent.
		t.Parallel()
		w := newWorld(t)
		w.as.set("grant_types_supported", []string{"authorization_code"})
		w.c.mustCall()
		w.as.expire()
		w.c.mustCall()
		for _, r := range w.as.Got() {
			if strings.Contains(string(r.Body), "grant_type=refresh_token") {
				t.Fatal("regression: the client sends a refresh_token grant to an authorization server whose " +
					"grant_types_supported omits refresh_token (spec-checklist E-35: skip refresh). " +
					"machine/refresh.go startRefresh / Snapshot.canRefresh do not look at " +
					"Discovery.Authorization.GrantTypesSupported. Fix: canRefresh is false when the list is " +
					"present and lacks refresh_token (RFC 8414 §2: absent means [authorization_code, implicit], " +
					"so arguably also when absent), and registration should not ask for refresh_token then")
			}
		}
	})
}

func TestE36_BadEndpoints(t *testing.T) {
	cases := map[string]struct {
		member string
		value  func(w *world) string
	}{
		"javascript authorization endpoint": {"authorization_endpoint", func(*world) string { return "javascript:alert(1)" }},
		"data authorization endpoint":       {"authorization_endpoint", func(*world) string { return "data:text/html,<script>x</script>" }},
		"file token endpoint":               {"token_endpoint", func(*world) string { return "file:///etc/passwd" }},
		"http token endpoint, foreign host": {"token_endpoint", func(*world) string { return "http://as.example.test/token" }},
		"http authorization endpoint, cloud metadata": {"authorization_endpoint", func(*world) string {
			return "http://169.254.169.254/authorize"
		}},
		"fragment":          {"authorization_endpoint", func(w *world) string { return w.as.issuer + "/authorize#x" }},
		"userinfo":          {"token_endpoint", func(w *world) string { return strings.Replace(w.as.tokenURL(), "http://", "http://u:p@", 1) }},
		"relative":          {"token_endpoint", func(*world) string { return "/token" }},
		"http registration": {"registration_endpoint", func(*world) string { return "http://as.example.test/register" }},
		"scheme-relative":   {"token_endpoint", func(*world) string { return "//as.example.test/token" }},
		"not a url":         {"authorization_endpoint", func(*world) string { return "::" }},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.set(c.member, c.value(w))
			_, _, err := w.c.call(defaultBudget)
			wantRefusedServer(t, w, err)
		})
	}
	t.Run("query of the authorization endpoint is kept", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.set("authorization_endpoint", w.as.issuer+"/authorize?tenant=a%20b")
		w.c.mustCall()
		for _, r := range w.as.Got() {
			if strings.HasPrefix(r.URL, "/authorize") {
				u, _ := url.Parse(r.URL)
				if u.Query().Get("tenant") != "a b" {
					t.Errorf("authorization request %s lost the endpoint's query (RFC 6749 §3.1)", r.URL)
				}
			}
		}
	})
	t.Run("token endpoint on another origin is legal", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.c.tokenEndpoints = append(w.c.tokenEndpoints, w.evil.URL+"/token")
		w.c.crossOriginToken = true
		w.evil.route("POST /token", w.as.handleToken)
		w.as.set("token_endpoint", w.evil.URL+"/token")
		w.c.mustCall()
		if n := w.evil.Hits("/token"); n != 1 {
			t.Errorf("token endpoint on another origin used %d times, want 1", n)
		}
	})
}

func TestE37_NoUsableClientAuthMethod(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.as.set("token_endpoint_auth_methods_supported", []string{"private_key_jwt"})
	w.as.set("registration_endpoint", nil)
	w.as.mu.Lock()
	w.as.clients["pre-registered"] = true
	w.as.mu.Unlock()
	w.c.cfg.Clients = []effects.Client{{ClientID: "pre-registered", ClientSecret: "pre-registered-secret"}}
	_, _, err := w.c.call(defaultBudget)
	if err == nil || w.as.Hits("/token") > 0 {
		t.Fatal("regression: a client holding only a secret is used with an authorization server that lists only " +
			"private_key_jwt: machine/client.go chooseAuthMethod falls back to client_secret_basic and the flow " +
			"runs (the secret is sent to the token endpoint). spec-checklist E-37 asks for a clear " +
			"NoUsableClientAuthMethod. Fix: when token_endpoint_auth_methods_supported is present and lists none " +
			"of the methods the client can do, fail with a typed error (e.g. *machine.NoClientAuthMethodError" +
			"{Issuer, Supported}) before the authorization request")
	}
	t.Logf("ends with %T: %v", err, err)
}

func TestE38_RegistrationEndpoint(t *testing.T) {
	t.Run("404", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("POST /register", status(404))
		_, _, err := w.c.call(defaultBudget)
		want[*machine.RegistrationError](t, err)
	})
	t.Run("405", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("POST /register", status(405))
		_, _, err := w.c.call(defaultBudget)
		want[*machine.RegistrationError](t, err)
	})
	t.Run("200 instead of 201 is accepted", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("POST /register", func(rw http.ResponseWriter, r *http.Request) {
			rec := &capture{header: http.Header{}}
			w.as.handleRegister(rec, r)
			writeRaw(rw, 200, "application/json", rec.body)
		})
		w.c.mustCall()
	})
}

func TestE39_NonBooleanFlags(t *testing.T) {
	for _, member := range []string{"client_id_metadata_document_supported", "authorization_response_iss_parameter_supported"} {
		for _, v := range []any{"true", 1, []bool{true}} {
			t.Run(member, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t)
				w.as.set(member, v)
				_, _, err := w.c.call(defaultBudget)
				wantRefusedServer(t, w, err, member)
			})
		}
	}
}
