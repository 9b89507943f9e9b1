package hostile_test

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/machine"
)

// §4.10 Attacks the checks exist for (E-61 … E-65) and §4.11 the loopback
// exemption (E-66).

func TestE61_TokenTheftByMaliciousServer(t *testing.T) {
	t.Run("advertises the honest resource", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.login(t) // the user also holds a credential for the honest server
		evil := newClient(t, w.evil.URL+"/mcp", w.as.tokenURL())
		evil.store = w.c.store // same store: the honest credential is right there
		w.evil.route("POST /mcp", func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+w.evil.URL+`/prm"`)
			writeJSON(rw, 401, map[string]string{"error": "unauthorized"})
		})
		w.evil.route("GET /prm", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, map[string]any{"resource": w.rs.mcpURL, "authorization_servers": []string{w.as.issuer}})
		})
		before := len(w.as.Got())
		_, _, err := evil.call(defaultBudget)
		want[*machine.ResourceMismatchError](t, err)
		if len(w.as.Got()) != before {
			t.Errorf("the honest authorization server was contacted for the malicious server")
		}
		w.evil.wantNoCredentials(t)
	})
	t.Run("names itself: the token is bound to it", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		evil := newClient(t, w.evil.URL+"/mcp", w.as.tokenURL())
		w.evil.route("POST /mcp", func(rw http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "" {
				writeJSON(rw, 200, map[string]any{})
				return
			}
			rw.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+w.evil.URL+`/prm"`)
			writeJSON(rw, 401, map[string]string{"error": "unauthorized"})
		})
		w.evil.route("GET /prm", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, map[string]any{"resource": w.evil.URL + "/mcp", "authorization_servers": []string{w.as.issuer}})
		})
		evil.mustCall()
		// RFC 8707: the honest server is asked for a token for the
		// malicious resource, never for the honest one.
		for _, r := range w.as.Got() {
			if strings.HasPrefix(r.URL, "/authorize") {
				u, _ := url.Parse(r.URL)
				if got := u.Query().Get("resource"); got != w.evil.URL+"/mcp" {
					t.Errorf("authorization request resource %q, want the malicious server's own", got)
				}
			}
			if strings.Contains(string(r.Body), "grant_type=authorization_code") {
				f, _ := url.ParseQuery(string(r.Body))
				if got := f.Get("resource"); got != w.evil.URL+"/mcp" {
					t.Errorf("token request resource %q", got)
				}
			}
		}
	})
}

func TestE62_MixUp(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.as.sendIss()
	// The attacker registered a client at the honest server and publishes
	// metadata that sends the user there but the code to itself.
	w.as.mu.Lock()
	w.as.clients["attacker-client"] = true
	w.as.mu.Unlock()
	w.evil.route("GET "+asmPath, func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, 200, map[string]any{
			"issuer": w.evil.URL, "authorization_endpoint": w.as.issuer + "/authorize",
			"token_endpoint": w.evil.URL + "/token", "registration_endpoint": w.evil.URL + "/register",
			"response_types_supported": []string{"code"}, "code_challenge_methods_supported": []string{"S256"},
		})
	})
	w.evil.route("POST /register", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, 201, map[string]any{"client_id": "attacker-client", "token_endpoint_auth_method": "none"})
	})
	w.evil.route("POST /token", func(rw http.ResponseWriter, r *http.Request) {
		writeJSON(rw, 400, map[string]string{"error": "invalid_grant"})
	})
	w.rs.setPRM("authorization_servers", []string{w.evil.URL})
	_, _, err := w.c.call(defaultBudget)
	e := want[*machine.IssuerResponseError](t, err)
	if e.Got != w.as.issuer || e.Want != w.evil.URL {
		t.Errorf("IssuerResponseError %+v", e)
	}
	w.evil.wantNoCredentials(t) // no code, no verifier reached the attacker
}

// ssrfResolver maps names to fixed addresses.
type ssrfResolver map[string]string

func (m ssrfResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := m[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, &netErrNoHost{host}
}

type netErrNoHost struct{ host string }

func (e *netErrNoHost) Error() string { return "no such host " + e.host }

// ssrfPolicy stands for a server-side deployment: the test's own servers
// on 127.0.0.1 play the public internet, everything else is judged by
// PublicOnly (and never dialled).
func ssrfPolicy(ctx context.Context, host string, ips []netip.Addr) error {
	if host == "127.0.0.1" && len(ips) == 1 && ips[0] == netip.MustParseAddr("127.0.0.1") {
		return nil
	}
	if err := httpdriver.PublicOnly(ctx, host, ips); err != nil {
		return err
	}
	return loopbackOnly(ctx, host, ips) // nothing is ever dialled off this machine
}

func TestE63_SSRFThroughDiscovery(t *testing.T) {
	cases := map[string]struct {
		setup  func(w *world, internal string)
		reason string
	}{
		"resource_metadata at the cloud metadata service over https": {func(w *world, _ string) {
			w.rs.setChallenge(`Bearer resource_metadata="https://169.254.169.254/latest/meta-data/iam/"`)
		}, "cloud metadata"},
		"resource_metadata on localhost": {func(w *world, internal string) {
			w.rs.setChallenge(`Bearer resource_metadata="` + strings.Replace(internal, "127.0.0.1", "localhost", 1) + `/admin"`)
		}, "loopback"},
		"resource_metadata on a rebinding name": {func(w *world, _ string) {
			w.rs.setChallenge(`Bearer resource_metadata="https://rebind.example.test/prm"`)
		}, "cloud metadata"},
		"resource_metadata on an intranet name": {func(w *world, _ string) {
			w.rs.setChallenge(`Bearer resource_metadata="https://intranet.example.test/prm"`)
		}, "private"},
		"authorization server on another loopback address": {func(w *world, internal string) {
			w.rs.setPRM("authorization_servers", []string{strings.Replace(internal, "127.0.0.1", "127.0.0.2", 1)})
		}, "loopback"},
		"token endpoint on ::1 (the worst case: a POST with the code)": {func(w *world, internal string) {
			w.as.set("token_endpoint", "http://[::1]:"+internal[strings.LastIndex(internal, ":")+1:]+"/token")
		}, "loopback"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			internal := newServer(t, "internal service")
			policy := (&httpdriver.PolicyDialer{Policy: ssrfPolicy, Resolver: ssrfResolver{
				"rebind.example.test": "169.254.169.254", "intranet.example.test": "10.0.0.1", "localhost": "127.0.0.1",
			}}).Transport()
			t.Cleanup(policy.CloseIdleConnections)
			w.c.spy.next = policy
			c.setup(w, internal.URL)
			_, _, err := w.c.call(defaultBudget)
			// The driver hands the machine the requester's error as text:
			// the *DestinationRefusedError arrives as a TransportError.
			e := want[*machine.TransportError](t, err)
			if !strings.Contains(e.Reason, "refused") || !strings.Contains(e.Reason, c.reason) {
				t.Errorf("reason %q, want the destination refused (%s)", e.Reason, c.reason)
			}
			internal.wantUntouched(t)
		})
	}
	t.Run("the refusal keeps its type", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		policy := (&httpdriver.PolicyDialer{Policy: ssrfPolicy, Resolver: ssrfResolver{}}).Transport()
		t.Cleanup(policy.CloseIdleConnections)
		w.c.spy.next = policy
		w.rs.setChallenge(`Bearer resource_metadata="https://169.254.169.254/latest/meta-data/"`)
		_, _, err := w.c.call(defaultBudget)
		var refused *httpdriver.DestinationRefusedError
		if !errors.As(err, &refused) {
			t.Fatal("regression: the requester's typed errors (*httpdriver.DestinationRefusedError, *ResponseTooLargeError, " +
				"*RedirectRefusedError) do not reach the caller: driver/session.go fetch turns them into " +
				"machine.FetchFailed{Reason: err.Error()} and the caller gets *machine.TransportError with the text " +
				"only, so errors.As cannot tell an SSRF refusal from a network failure (and both say Retryable). " +
				"Fix: keep the requester's error by Seq in the session and, when the attempt's Fail carries the " +
				"TransportError of that fetch, deliver an error that unwraps to both (e.g. a driver.FetchError " +
				"{Err *machine.TransportError; Cause error} with Unwrap() []error); a DestinationRefusedError " +
				"should also not be Retryable")
		}
	})
	t.Run("without a policy loopback is reachable (the documented default)", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		internal := newServer(t, "internal service")
		w.rs.setChallenge(`Bearer resource_metadata="` + internal.URL + `/admin"`)
		_, _, _ = w.c.call(defaultBudget)
		if len(internal.Got()) != 1 {
			t.Errorf("internal service got %d requests; the default allows loopback for development", len(internal.Got()))
		}
	})
}

func TestE64_AuthorizationURL(t *testing.T) {
	t.Run("non-http URLs are never opened", func(t *testing.T) {
		t.Parallel()
		for _, u := range []string{"javascript:alert(1)", "file:///etc/passwd", "data:text/html,x", "http://evil.example.test/authorize", "vbscript:x"} {
			if err := httpdriver.OpenBrowser(u); err == nil {
				t.Errorf("OpenBrowser(%q) did not refuse", u)
			} else {
				want[*machine.InsecureURLError](t, err)
			}
			if err := httpdriver.PrintURL(u); err == nil {
				t.Errorf("PrintURL(%q) did not refuse", u)
			}
		}
	})
	t.Run("shell metacharacters reach the agent as one URL", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		const meta = "x=$(touch%20/tmp/pwned)`id`;|&<>"
		w.as.set("authorization_endpoint", w.as.issuer+"/authorize?"+meta)
		var mu sync.Mutex
		var seen []string
		w.c.opts.UserAgent = agentFunc(func(ctx context.Context, authURL, redirect string) (string, error) {
			mu.Lock()
			seen = append(seen, authURL)
			mu.Unlock()
			return httpdriver.HeadlessUserAgent{Client: &http.Client{Transport: w.c.spy}, Timeout: auxTimeout}.Authorize(ctx, authURL, redirect)
		})
		_, _, _ = w.c.call(defaultBudget)
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 1 || !strings.HasPrefix(seen[0], w.as.issuer+"/authorize?"+meta+"&") {
			t.Fatalf("authorization URLs %q", seen)
		}
		if err := machine.CheckSecureURL(seen[0]); err != nil {
			t.Errorf("the URL handed to the agent is not one OpenBrowser accepts: %v", err)
		}
	})
	t.Run("javascript endpoint refused before OpenURL", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.set("authorization_endpoint", "javascript:alert(1)//")
		opened := false
		w.c.opts.UserAgent = agentFunc(func(context.Context, string, string) (string, error) {
			opened = true
			return "", nil
		})
		_, _, err := w.c.call(defaultBudget)
		want[*machine.DiscoveryError](t, err)
		if opened {
			t.Errorf("the user agent was asked to open a javascript: URL")
		}
	})
}

type agentFunc func(ctx context.Context, authURL, redirectURI string) (string, error)

func (f agentFunc) Authorize(ctx context.Context, authURL, redirectURI string) (string, error) {
	return f(ctx, authURL, redirectURI)
}

func TestE65_Downgrade(t *testing.T) {
	t.Run("PRM names an http authorization server", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.setPRM("authorization_servers", []string{"http://login.example.test"})
		_, _, err := w.c.call(defaultBudget)
		want[*machine.MalformedError](t, err)
		w.c.wantNoDNS()
	})
	t.Run("metadata lists only plain", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.set("code_challenge_methods_supported", []string{"plain"})
		_, _, err := w.c.call(defaultBudget)
		wantRefusedServer(t, w, err, "S256")
	})
	t.Run("http token endpoint", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.set("token_endpoint", "http://login.example.test/token")
		_, _, err := w.c.call(defaultBudget)
		wantRefusedServer(t, w, err, "https is required")
	})
	t.Run("https server, http endpoints on another host", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.set("authorization_endpoint", "http://login.example.test/authorize")
		_, _, err := w.c.call(defaultBudget)
		wantRefusedServer(t, w, err)
	})
}

// localhostWorld is a world whose every URL names "localhost", as the
// conformance suite's servers do.
func localhostWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t)
	lh := func(u string) string { return strings.Replace(u, "127.0.0.1", "localhost", 1) }
	w.as.issuer = lh(w.as.issuer)
	for _, k := range []string{"issuer", "authorization_endpoint", "token_endpoint", "registration_endpoint"} {
		w.as.meta[k] = lh(w.as.meta[k].(string))
	}
	w.rs.mcpURL, w.rs.prmURL = lh(w.rs.mcpURL), lh(w.rs.prmURL)
	w.rs.prm = map[string]any{"resource": w.rs.mcpURL, "authorization_servers": []string{w.as.issuer}}
	w.rs.challenge = `Bearer resource_metadata="` + w.rs.prmURL + `"`
	w.c = newClient(t, w.rs.mcpURL, w.as.tokenURL())
	return w
}

func TestE66_LoopbackExemption(t *testing.T) {
	t.Parallel()
	w := localhostWorld(t)
	w.login(t)
	w.as.expire()
	w.c.mustCall()
	for _, r := range w.c.spy.Requests() {
		if !strings.HasPrefix(r.URL, "http://localhost:") {
			t.Errorf("request to %s", stripQuery(r.URL))
		}
	}
	// The exemption is for loopback hosts only: the same flow on a
	// foreign name is refused (TestE65_Downgrade, TestE19, TestE36).
}
