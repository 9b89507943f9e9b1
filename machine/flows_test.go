package machine_test

// Behaviour tests: one test per numbered behaviour of the engine issue, each
// a whole flow through the scripted world (world_test.go). Requirement IDs
// are from spec-checklist.md. The world's servers are strict (see
// world_test.go) and every test ends with w.requireClean(t).

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
	"github.com/mcpauth/mcpauth/states"
)

// ---- helpers ----

// requireDelivered: each request ended exactly once, delivered.
func requireDelivered(t *testing.T, w *fakeWorld, ids ...effects.RequestID) {
	t.Helper()
	for _, id := range ids {
		if o := w.Outcomes[id]; len(o) != 1 || !o[0].Delivered {
			t.Errorf("request %d ended %+v, want delivered once", id, o)
		}
	}
}

// requireFailed: the request ended exactly once, with an error of type E.
func requireFailed[E error](t *testing.T, w *fakeWorld, id effects.RequestID) E {
	t.Helper()
	var target E
	o := w.Outcomes[id]
	if len(o) != 1 || o[0].Err == nil {
		t.Fatalf("request %d ended %+v, want one failure", id, o)
	}
	if !errors.As(o[0].Err, &target) {
		t.Fatalf("request %d failed with %T (%v), want %T", id, o[0].Err, o[0].Err, target)
	}
	return target
}

// tokensSent lists the access tokens the sends of one request carried (""
// for none).
func tokensSent(w *fakeWorld, id effects.RequestID) []string {
	var out []string
	for _, s := range w.sendsOf(id) {
		h := s.Header["Authorization"]
		if len(h) == 0 {
			out = append(out, "")
			continue
		}
		out = append(out, strings.TrimPrefix(h[0], "Bearer "))
	}
	return out
}

// grantRequests lists the token requests of one grant type.
func grantRequests(w *fakeWorld, grantType string) []fakeTokenRequest {
	var out []fakeTokenRequest
	for _, r := range w.TokenRequests {
		if r.Form.Get("grant_type") == grantType {
			out = append(out, r)
		}
	}
	return out
}

// restart is a new machine (a restarted program) on the same store and
// servers.
func restart(t *testing.T, w *fakeWorld) machine.Snapshot {
	t.Helper()
	w.Hold = nil
	return w.boot(t)
}

// ---- discovery ----

// A-PRM-02/03/04/05: resource_metadata from the challenge first, then the
// path-inserted well-known URL, then the root one, then legacy.
func TestFlowPRMDiscoveryOrder(t *testing.T) {
	cases := []struct {
		name  string
		setup func(w *fakeWorld)
		want  []string
	}{
		{"challenge resource_metadata is used first (A-PRM-02)", func(w *fakeWorld) {
			w.PRMURL = wOrigin + "/meta/prm.json"
		}, []string{wOrigin + "/meta/prm.json"}},
		{"challenge URL without a document, then path-inserted (A-PRM-04)", func(w *fakeWorld) {
			w.PRM = prmPathOnly
			w.ChallengeMetadataURL = wOrigin + "/gone.json"
		}, []string{wOrigin + "/gone.json", wPRMPath}},
		{"no header: path-inserted only (A-PRM-03)", func(w *fakeWorld) {
			w.PRM = prmPathOnly
		}, []string{wPRMPath}},
		{"no header: path-inserted 404, then root (A-PRM-03)", func(w *fakeWorld) {
			w.PRM = prmRootOnly
		}, []string{wPRMPath, wPRMRoot}},
		{"a server URL without a path has only the root URL", func(w *fakeWorld) {
			w.PRM = prmPathOnly
			w.Server, w.Config.Server = wOrigin, wOrigin
		}, []string{wPRMRoot}},
		{"no PRM anywhere: both, then the 2025-03-26 flow (A-PRM-05)", func(w *fakeWorld) {
			l := newLegacyFakeWorld()
			w.PRM, w.AS = l.PRM, l.AS
		}, []string{wPRMPath, wPRMRoot}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newFakeWorld()
			c.setup(w)
			s := w.run(t, w.boot(t), w.req(1))
			if diff := cmp.Diff(c.want, w.fetchURLs(effects.PurposeResourceMetadata)); diff != "" {
				t.Errorf("PRM fetches (-want +got):\n%s", diff)
			}
			if s.State != states.Authenticated {
				t.Errorf("state %s", s.State)
			}
			requireDelivered(t, w, 1)
			w.requireClean(t)
		})
	}
}

// A-LEG-01..05: no PRM and no metadata: the server's origin is the
// authorization server with /authorize, /token and /register, PKCE applies.
func TestFlowLegacyDefaultEndpoints(t *testing.T) {
	w := newLegacyFakeWorld()
	s := w.run(t, w.boot(t), w.req(1))
	requireDelivered(t, w, 1)
	if diff := cmp.Diff([]string{wOrigin + "/.well-known/oauth-authorization-server", wOrigin + "/.well-known/openid-configuration"},
		w.fetchURLs(effects.PurposeServerMetadata)); diff != "" {
		t.Errorf("metadata fetches (-want +got):\n%s", diff)
	}
	if got := w.fetchURLs(effects.PurposeRegistration); !slices.Equal(got, []string{wOrigin + "/register"}) {
		t.Errorf("registration at %v", got)
	}
	if got := w.Authorizations[0]; got.Endpoint != wOrigin+"/authorize" || got.Query.Get("code_challenge_method") != "S256" {
		t.Errorf("authorization %s %v", got.Endpoint, got.Query)
	}
	if got := w.fetchURLs(effects.PurposeToken); !slices.Equal(got, []string{wOrigin + "/token"}) {
		t.Errorf("token at %v", got)
	}
	if !s.Discovery.Legacy || !s.Discovery.Synthesized || s.Discovery.Authorization.Issuer != wOrigin {
		t.Errorf("discovery %+v", s.Discovery)
	}
	w.requireClean(t)
}

// MCP 2025-03-26 proper: no resource parameter anywhere (RFC 8707 is a
// 2025-06-18 requirement), and MCP-Protocol-Version on discovery (A-ASM-07).
func TestFlowLegacy20250326(t *testing.T) {
	w := newLegacyFakeWorld()
	w.Config.ProtocolVersion = machine.Version20250326
	s := w.run(t, w.boot(t), w.req(1))
	w.Now = w.WakeAt
	w.run(t, s, machine.Tick{})
	requireDelivered(t, w, 1)
	if w.Authorizations[0].Query.Has("resource") {
		t.Errorf("authorization resource %q", w.Authorizations[0].Query.Get("resource"))
	}
	for _, r := range w.TokenRequests {
		if r.Form.Has("resource") {
			t.Errorf("%s resource %q", r.Form.Get("grant_type"), r.Form.Get("resource"))
		}
	}
	for _, f := range w.Fetches {
		if f.Method == "GET" && !slices.Equal(f.Header["Mcp-Protocol-Version"], []string{machine.Version20250326}) {
			t.Errorf("%s: MCP-Protocol-Version %v", f.URL, f.Header["Mcp-Protocol-Version"])
		}
	}
	w.requireClean(t)
}

// A-ASM-03/04: metadata candidates in order; never the root document for an
// issuer with a path.
func TestFlowServerMetadataOrder(t *testing.T) {
	const tenant = "https://auth.example.com/tenant1"
	oauthIn := "https://auth.example.com/.well-known/oauth-authorization-server/tenant1"
	oidcIn := "https://auth.example.com/.well-known/openid-configuration/tenant1"
	oidcApp := "https://auth.example.com/tenant1/.well-known/openid-configuration"
	cases := []struct {
		name   string
		issuer string
		meta   fakeMetaMode
		want   []string
	}{
		{"path issuer, RFC 8414 (A-ASM-03 1)", tenant, metaOAuth, []string{oauthIn}},
		{"path issuer, OIDC path-inserted (A-ASM-03 2)", tenant, metaOIDC, []string{oauthIn, oidcIn}},
		{"path issuer, OIDC appended (A-ASM-03 3)", tenant, metaOIDCAppended, []string{oauthIn, oidcIn, oidcApp}},
		{"path issuer with a terminating slash (RFC 8414 §3.1)", tenant + "/", metaOAuth, []string{oauthIn}},
		{"issuer without a path, RFC 8414 (A-ASM-04 1)", wIssuer, metaOAuth, []string{wASMOAuth}},
		{"issuer without a path, OIDC (A-ASM-04 2)", wIssuer, metaOIDC, []string{wASMOAuth, wASMOIDC}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newFakeWorld()
			w.AS = []*fakeAS{newFakeAS(c.issuer)}
			w.AS[0].Meta = c.meta
			s := w.run(t, w.boot(t), w.req(1))
			got := w.fetchURLs(effects.PurposeServerMetadata)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("metadata fetches (-want +got):\n%s", diff)
			}
			if strings.Contains(c.issuer, "/tenant1") {
				for _, u := range got {
					if u == wASMOAuth || u == wASMOIDC {
						t.Errorf("fetched the root metadata %s for the path issuer %s (Q-05)", u, c.issuer)
					}
				}
			}
			if s.Discovery.Authorization.Issuer != c.issuer {
				t.Errorf("validated issuer %q", s.Discovery.Authorization.Issuer)
			}
			requireDelivered(t, w, 1)
			w.requireClean(t)
		})
	}
}

// Discovery moves on after 404 (and other 4xx) but stops on 5xx, 429 or a
// transport failure with a retryable error, so a flaky server cannot
// downgrade the client to another discovery path; a later request retries.
func TestFlowDiscoveryErrorsStopRetryably(t *testing.T) {
	cases := []struct {
		name, url string
		status    int // 0: transport failure
	}{
		{"PRM 500", wPRMPath, 500},
		{"PRM 429", wPRMPath, 429},
		{"PRM 503", wPRMPath, 503},
		{"PRM transport failure", wPRMPath, 0},
		{"AS metadata 500", wASMOAuth, 500},
		{"AS metadata 429", wASMOAuth, 429},
		{"AS metadata transport failure", wASMOAuth, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newFakeWorld()
			w.AS[0].Meta = metaOIDC // a second candidate exists and must not be tried
			if c.status != 0 {
				w.Status[c.url] = c.status
			} else {
				w.Intercept = func(f effects.Fetch) machine.Input {
					if f.URL == c.url {
						return machine.FetchFailed{Seq: f.Seq, Reason: "connection reset"}
					}
					return nil
				}
			}
			s := w.run(t, w.boot(t), w.req(1))
			err := w.Outcomes[1][0].Err
			if !machine.IsRetryable(err) {
				t.Errorf("error %v (%T) is not retryable", err, err)
			}
			if c.status != 0 {
				requireFailed[*machine.HTTPStatusError](t, w, 1)
			} else {
				requireFailed[*machine.TransportError](t, w, 1)
			}
			if got := w.Fetches[len(w.Fetches)-1].URL; got != c.url {
				t.Errorf("discovery went on to %s after %s failed", got, c.url)
			}
			if s.State != states.Unauthenticated {
				t.Errorf("state %s", s.State)
			}
			// The server recovers: the next request authorizes.
			delete(w.Status, c.url)
			w.Intercept = nil
			s = w.run(t, s, w.req(2))
			requireDelivered(t, w, 2)
			w.requireClean(t)
		})
	}
}

// A-RES-02/04/10, Q-15: the PRM resource is sent byte for byte on
// /authorize, /token and refresh, including a bare origin without "/".
func TestFlowResourceSentVerbatim(t *testing.T) {
	cases := []struct {
		name     string
		prm      fakePRMMode
		resource string
	}{
		{"bare origin (root PRM)", prmRootOnly, wOrigin},
		{"upper-case host kept as published", prmHeader, "https://MCP.example.com/mcp"},
		{"default: the server URL", prmHeader, wServer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newFakeWorld()
			w.PRM, w.PRMResource = c.prm, c.resource
			s := w.run(t, w.boot(t), w.req(1))
			w.Now = w.WakeAt
			w.run(t, s, machine.Tick{})
			got := []string{
				w.Authorizations[0].Query.Get("resource"),
				grantRequests(w, "authorization_code")[0].Form.Get("resource"),
				grantRequests(w, "refresh_token")[0].Form.Get("resource"),
			}
			if diff := cmp.Diff([]string{c.resource, c.resource, c.resource}, got); diff != "" {
				t.Errorf("resource on /authorize, /token, refresh (-want +got):\n%s", diff)
			}
			requireDelivered(t, w, 1)
			w.requireClean(t)
		})
	}
}

// A-PRM-08, A-ASM-06, A-PKCE-03: the second listed authorization server is
// tried when the first one's metadata does not validate; nothing of the
// refused one is used.
func TestFlowSecondAuthorizationServer(t *testing.T) {
	cases := []struct {
		name string
		flaw func(a *fakeAS)
	}{
		{"issuer mismatch", func(a *fakeAS) { a.MetadataIssuer = "https://evil.example.com" }},
		{"no S256", func(a *fakeAS) { a.NoS256 = true }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newFakeWorld()
			w.AS = []*fakeAS{newFakeAS(wIssuer), newFakeAS(wIssuer2)}
			c.flaw(w.AS[0])
			w.PRMServers = []string{wIssuer, wIssuer2}
			s := w.run(t, w.boot(t), w.req(1))
			requireDelivered(t, w, 1)
			if got := w.fetchURLs(effects.PurposeServerMetadata); got[len(got)-1] != wIssuer2+"/.well-known/oauth-authorization-server" || got[0] != wASMOAuth {
				t.Errorf("metadata fetches %v", got)
			}
			if got := w.fetchURLs(effects.PurposeRegistration); !slices.Equal(got, []string{wIssuer2 + "/register"}) {
				t.Errorf("registered at %v; the refused server's registration endpoint must not be used", got)
			}
			if w.Authorizations[0].Endpoint != wIssuer2+"/authorize" || s.Discovery.Authorization.Issuer != wIssuer2 {
				t.Errorf("authorized at %s, discovery %s", w.Authorizations[0].Endpoint, s.Discovery.Authorization.Issuer)
			}
			w.requireClean(t)
		})
	}
}

// ---- client identity ----

// A-REG-01..03, A-CIMD-03/04: pre-registered > client metadata document >
// stored registration > dynamic registration.
func TestFlowClientIdentityPriority(t *testing.T) {
	type setup struct{ pre, cimdConfigured, cimdSupported, stored bool }
	cases := []struct {
		name         string
		setup        setup
		cimdURL      string
		wantClient   string
		wantLoads    int
		wantRegister int
	}{
		{"all available: pre-registered", setup{true, true, true, true}, wCIMD, "pre-1", 0, 0},
		{"no pre-registration: metadata document", setup{false, true, true, true}, wCIMD, wCIMD, 0, 0},
		{"server without CIMD support: stored registration (A-REG-03)", setup{false, true, false, true}, wCIMD, "stored-1", 1, 0},
		{"document URL without a path is not used (A-CIMD-04)", setup{false, true, true, true}, "https://client.example.net", "stored-1", 1, 0},
		{"nothing known: dynamic registration", setup{false, false, true, false}, wCIMD, "client-1", 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newFakeWorld()
			a := w.AS[0]
			if c.setup.pre {
				w.Config.Clients = []effects.Client{{Issuer: wIssuer, ClientID: "pre-1"}}
				a.addClient("pre-1", "", "none")
			}
			if c.setup.cimdConfigured {
				w.Config.ClientMetadataURL = c.cimdURL
			}
			a.CIMD = c.setup.cimdSupported
			if c.setup.stored {
				w.Store.Clients[wIssuer] = effects.Client{Issuer: wIssuer, ClientID: "stored-1", AuthMethod: "none", RedirectURIs: []string{wRedirect}, Source: effects.ClientDynamic}
				a.addClient("stored-1", "", "none")
			}
			w.run(t, w.boot(t), w.req(1))
			requireDelivered(t, w, 1)
			if got := w.Authorizations[0].Query.Get("client_id"); got != c.wantClient {
				t.Errorf("authorized as %q, want %q", got, c.wantClient)
			}
			if got := grantRequests(w, "authorization_code")[0].Form.Get("client_id"); got != c.wantClient {
				t.Errorf("token request as %q, want %q", got, c.wantClient)
			}
			if got := countEffects[effects.LoadClient](w); got != c.wantLoads {
				t.Errorf("%d LoadClient, want %d", got, c.wantLoads)
			}
			if got := len(w.Registrations); got != c.wantRegister {
				t.Errorf("%d registrations, want %d", got, c.wantRegister)
			}
			w.requireClean(t)
		})
	}
}

// A-PRM-09, A-BIND-01: a registration is kept per issuer and reused: by a
// new authorization in the same process, and after a restart from the store.
func TestFlowRegistrationReusedPerIssuer(t *testing.T) {
	w := newFakeWorld()
	w.AS[0].RefreshStatus = 400 // every refresh: invalid_grant, so the user authorizes again
	s := w.run(t, w.boot(t), w.req(1))
	w.Now = w.WakeAt
	w.run(t, s, machine.Tick{})
	if len(w.Authorizations) != 2 || w.Authorizations[1].Query.Get("client_id") != "client-1" {
		t.Fatalf("re-authorization: %+v", w.Authorizations)
	}
	// Restart with the tokens gone: discovery and client come from the store.
	delete(w.Store.Tokens, wServer)
	delete(w.Store.TokenVersions, wServer)
	s = restart(t, w)
	w.run(t, s, w.req(2))
	requireDelivered(t, w, 1, 2)
	// And with the discovery gone too: LoadClient finds the registration.
	delete(w.Store.Tokens, wServer)
	delete(w.Store.TokenVersions, wServer)
	delete(w.Store.Discoveries, wServer)
	loads := countEffects[effects.LoadClient](w)
	w.run(t, restart(t, w), w.req(3))
	requireDelivered(t, w, 3)
	if got := countEffects[effects.LoadClient](w); got != loads+1 {
		t.Errorf("LoadClient %d times after the restart, want 1", got-loads)
	}
	if len(w.Registrations) != 1 {
		t.Errorf("%d registrations, want 1 (reused per issuer)", len(w.Registrations))
	}
	for i, a := range w.Authorizations {
		if a.Query.Get("client_id") != "client-1" {
			t.Errorf("authorization %d as %q", i, a.Query.Get("client_id"))
		}
	}
	w.requireClean(t)
}

// A-DCR-02/03 (application_type), A-REF-02 (grant_types with
// refresh_token), RFC 7591 §2.
func TestFlowRegistrationBody(t *testing.T) {
	t.Run("loopback redirect: native, refresh_token", func(t *testing.T) {
		w := newFakeWorld()
		w.run(t, w.boot(t), w.req(1))
		if got := string(w.Fetches[2].Body); got != wDCRBody {
			t.Errorf("registration body\n got %s\nwant %s", got, wDCRBody)
		}
		w.requireClean(t)
	})
	cases := []struct {
		name  string
		setup func(w *fakeWorld)
		want  map[string]any
	}{
		{"https redirect: web", func(w *fakeWorld) {
			w.Config.RedirectURI = "https://app.example.com/callback"
		}, map[string]any{"application_type": "web", "redirect_uris": []any{"https://app.example.com/callback"}}},
		{"no refresh tokens: no refresh_token grant (SEP-2207)", func(w *fakeWorld) {
			w.Config.NoRefreshTokens = true
		}, map[string]any{"grant_types": []any{"authorization_code"}}},
		{"confidential client", func(w *fakeWorld) {
			w.Config.TokenEndpointAuthMethod = "client_secret_basic"
		}, map[string]any{"token_endpoint_auth_method": "client_secret_basic"}},
		{"configured application type", func(w *fakeWorld) {
			w.Config.ApplicationType = "web"
		}, map[string]any{"application_type": "web"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newFakeWorld()
			c.setup(w)
			w.run(t, w.boot(t), w.req(1))
			if len(w.Registrations) != 1 {
				t.Fatalf("%d registrations", len(w.Registrations))
			}
			body := w.Registrations[0].Body
			for k, v := range c.want {
				if diff := cmp.Diff(v, body[k]); diff != "" {
					t.Errorf("%s (-want +got):\n%s", k, diff)
				}
			}
			if body["client_name"] != "mcpauth" || !slices.Equal(body["response_types"].([]any), []any{"code"}) {
				t.Errorf("body %v", body)
			}
			if c.name == "https redirect: web" && w.Authorizations[0].Query.Get("redirect_uri") != "https://app.example.com/callback" {
				t.Errorf("authorization redirect_uri %q", w.Authorizations[0].Query.Get("redirect_uri"))
			}
			requireDelivered(t, w, 1)
			w.requireClean(t)
		})
	}
}

// ---- authorization request ----

// A-PKCE-01..04, RFC 7636 §4.1/§4.2: S256 always; the challenge is
// BASE64URL(SHA256(verifier)) of a 43-character verifier; fresh verifier
// and state per authorization.
func TestFlowPKCEChallengeMatchesVerifier(t *testing.T) {
	w := newFakeWorld()
	s := w.run(t, w.boot(t), w.req(1))
	w.RequiredScope = "mcp:write" // a step-up: a second authorization
	w.run(t, s, w.req(2))
	requireDelivered(t, w, 1, 2)
	if len(w.Authorizations) != 2 || len(w.Verifiers) != 2 {
		t.Fatalf("%d authorizations, %d verifiers", len(w.Authorizations), len(w.Verifiers))
	}
	unreserved := regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)
	for i, a := range w.Authorizations {
		v := w.Verifiers[i]
		if a.Query.Get("code_challenge_method") != "S256" || a.Query.Get("code_challenge") != pkceS256(v) {
			t.Errorf("authorization %d: method %q challenge %q, S256(verifier) %q", i, a.Query.Get("code_challenge_method"), a.Query.Get("code_challenge"), pkceS256(v))
		}
		if !unreserved.MatchString(v) || len(v) != 43 {
			t.Errorf("verifier %d has %d characters or others than unreserved", i, len(v))
		}
		if len(w.States[i]) < 22 {
			t.Errorf("state %d is %d characters: too little entropy", i, len(w.States[i]))
		}
	}
	if w.Verifiers[0] == w.Verifiers[1] || w.States[0] == w.States[1] {
		t.Error("verifier or state reused across authorizations")
	}
	w.requireClean(t)
}

// A-PKCE-03/05/06: metadata without S256 is refused, never used without
// PKCE; AllowMissingPKCE proceeds with S256 only when the list is absent.
func TestFlowMissingS256Refused(t *testing.T) {
	cases := []struct {
		name  string
		setup func(w *fakeWorld)
	}{
		{"RFC 8414 lists only plain", func(w *fakeWorld) { w.AS[0].NoS256 = true }},
		{"RFC 8414 without code_challenge_methods_supported (A-PKCE-05)", func(w *fakeWorld) { w.AS[0].OmitPKCE = true }},
		{"OIDC without code_challenge_methods_supported (A-PKCE-06)", func(w *fakeWorld) {
			w.AS[0].OmitPKCE, w.AS[0].Meta = true, metaOIDC
		}},
		{"AllowMissingPKCE does not accept plain", func(w *fakeWorld) {
			w.AS[0].NoS256, w.Config.AllowMissingPKCE = true, true
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newFakeWorld()
			c.setup(w)
			w.run(t, w.boot(t), w.req(1))
			d := requireFailed[*machine.DiscoveryError](t, w, 1)
			want := (&machine.PKCEUnsupportedError{Issuer: wIssuer}).Error()
			if !slices.Contains(d.Tried, want) {
				t.Errorf("tried %q, want it to say %q", d.Tried, want)
			}
			if len(w.Authorizations) != 0 || len(w.Registrations) != 0 {
				t.Errorf("%d authorizations, %d registrations with a server without S256", len(w.Authorizations), len(w.Registrations))
			}
			w.requireClean(t)
		})
	}
	t.Run("AllowMissingPKCE with the list absent proceeds with S256", func(t *testing.T) {
		w := newFakeWorld()
		w.AS[0].OmitPKCE, w.Config.AllowMissingPKCE = true, true
		w.run(t, w.boot(t), w.req(1))
		requireDelivered(t, w, 1)
		if w.Authorizations[0].Query.Get("code_challenge_method") != "S256" {
			t.Errorf("method %q", w.Authorizations[0].Query.Get("code_challenge_method"))
		}
		w.requireClean(t)
	})
}

// A-LEG-03/04 with A-PKCE-03/05 and A-ASM-06: the 2025-03-26 default
// endpoints are for a server WITHOUT metadata. When the origin publishes
// metadata and it is refused (no S256, another issuer), the flow must stop,
// not fall back to /authorize and /token of a server that just failed
// validation.
func TestFlowLegacyRefusedMetadataIsNotReplacedByDefaults(t *testing.T) {
	cases := []struct {
		name string
		flaw func(a *fakeAS)
	}{
		{"metadata without S256", func(a *fakeAS) { a.NoS256 = true }},
		{"metadata naming another issuer", func(a *fakeAS) { a.MetadataIssuer = "https://evil.example.com" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newLegacyFakeWorld()
			w.AS[0].Meta = metaOAuth
			c.flaw(w.AS[0])
			w.run(t, w.boot(t), w.req(1))
			if len(w.Authorizations) > 0 {
				t.Fatalf("regression: discovery_issuer.go tryServer (legacy branch): metadata that was found but refused (%s; "+
					"fetched %v) falls back to the synthesized default endpoints and the flow proceeds at %s; "+
					"A-LEG-04 allows defaults only when there is no metadata, A-PKCE-03/05 and A-ASM-06 say refuse",
					c.name, w.fetchURLs(effects.PurposeServerMetadata), w.Authorizations[0].Endpoint)
			}
			requireFailed[*machine.DiscoveryError](t, w, 1)
		})
	}
}

// A-SCP-02, A-SCP-04, A-REF-03: the challenge's scope, else all of the PRM's
// scopes_supported, else no scope; offline_access only when the
// authorization server lists it, with prompt=consent.
func TestFlowScopeSelection(t *testing.T) {
	cases := []struct {
		name       string
		setup      func(w *fakeWorld)
		wantScope  string // "" means absent
		wantPrompt string
	}{
		{"challenge scope first (A-SCP-02 1, A-SCP-04)", func(w *fakeWorld) {
			w.ChallengeScope = "mcp:admin"
			w.PRMScopes = []string{"mcp:read", "mcp:write"}
		}, "mcp:admin", ""},
		{"else every PRM scopes_supported (A-SCP-02 2)", func(w *fakeWorld) {
			w.PRMScopes = []string{"mcp:read", "mcp:write"}
		}, "mcp:read mcp:write", ""},
		{"else omitted (A-SCP-02 3)", func(w *fakeWorld) {
			w.PRMScopes = nil
		}, "", ""},
		{"offline_access when the AS lists it (A-REF-03)", func(w *fakeWorld) {
			w.AS[0].ScopesSupported = []string{"mcp:read", "offline_access"}
		}, "mcp:read offline_access", "consent"},
		{"offline_access alone when nothing else is selected", func(w *fakeWorld) {
			w.PRMScopes = nil
			w.AS[0].ScopesSupported = []string{"offline_access"}
		}, "offline_access", "consent"},
		{"no offline_access when the AS does not list it", func(w *fakeWorld) {
			w.AS[0].ScopesSupported = []string{"mcp:read", "mcp:write"}
		}, "mcp:read", ""},
		{"no offline_access without refresh tokens (SEP-2207)", func(w *fakeWorld) {
			w.AS[0].ScopesSupported = []string{"mcp:read", "offline_access"}
			w.Config.NoRefreshTokens = true
		}, "mcp:read", ""},
		{"configured scopes replace the strategy", func(w *fakeWorld) {
			w.ChallengeScope = "mcp:admin"
			w.Config.Scopes = []string{"files:read", "files:write"}
		}, "files:read files:write", ""},
	}
	// A-REF-05 with conformance auth/offline-access-not-supported: an
	// offline_access that the resource server's PRM (or challenge) names is
	// not a resource requirement, and the client MUST NOT request it from an
	// authorization server that does not list it.
	t.Run("offline_access from the PRM, AS does not list it (A-REF-05)", func(t *testing.T) {
		w := newFakeWorld()
		w.PRMScopes = []string{"mcp:read", "offline_access"}
		w.run(t, w.boot(t), w.req(1))
		if got := w.Authorizations[0].Query.Get("scope"); got != "mcp:read" {
			if strings.Contains(got, "offline_access") {
				t.Fatalf("regression: scopes.go initialScope copies PRM scopes_supported (and a challenge scope) verbatim, so "+
					"offline_access is requested (%q, prompt=%q) from an authorization server whose scopes_supported does "+
					"not list it (A-REF-03/05, D-09; conformance auth/offline-access-not-supported fails on it)",
					got, w.Authorizations[0].Query.Get("prompt"))
			}
			t.Errorf("scope %q", got)
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newFakeWorld()
			c.setup(w)
			w.run(t, w.boot(t), w.req(1))
			q := w.Authorizations[0].Query
			if got := q.Get("scope"); got != c.wantScope || q.Has("scope") != (c.wantScope != "") {
				t.Errorf("scope %q (present %v), want %q", got, q.Has("scope"), c.wantScope)
			}
			if got := q.Get("prompt"); got != c.wantPrompt {
				t.Errorf("prompt %q, want %q", got, c.wantPrompt)
			}
			requireDelivered(t, w, 1)
			w.requireClean(t)
		})
	}
}

// RFC 6749 §2.3.1: client_secret_basic form-encodes id and secret before
// Base64; the id is not repeated in the body. client_secret_post puts both
// in the body.
func TestFlowClientSecretEncoding(t *testing.T) {
	const id, secret = "my client:1", "p@ss w:rd/+%é"
	t.Run("client_secret_basic", func(t *testing.T) {
		w := newFakeWorld()
		w.Config.Clients = []effects.Client{{Issuer: wIssuer, ClientID: id, ClientSecret: secret}}
		w.AS[0].AuthMethods = []string{"client_secret_basic"}
		w.AS[0].addClient(id, secret, "client_secret_basic")
		s := w.run(t, w.boot(t), w.req(1))
		w.Now = w.WakeAt
		w.run(t, s, machine.Tick{})
		requireDelivered(t, w, 1)
		// Written out by hand: space -> "+", ":" -> %3A, "@" -> %40, "/" -> %2F, "+" -> %2B, "%" -> %25, é -> %C3%A9.
		want := "Basic " + basic("my+client%3A1:p%40ss+w%3Ard%2F%2B%25%C3%A9")
		if len(w.TokenRequests) != 2 {
			t.Fatalf("%d token requests", len(w.TokenRequests))
		}
		for _, r := range w.TokenRequests {
			if got := r.Header["Authorization"]; len(got) != 1 || got[0] != want {
				t.Errorf("%s: Authorization %q, want %q", r.Form.Get("grant_type"), got, want)
			}
			if r.Form.Has("client_id") || r.Form.Has("client_secret") {
				t.Errorf("%s: body repeats the client: %v", r.Form.Get("grant_type"), r.Form)
			}
		}
		w.requireClean(t)
	})
	t.Run("client_secret_post", func(t *testing.T) {
		w := newFakeWorld()
		w.Config.Clients = []effects.Client{{Issuer: wIssuer, ClientID: id, ClientSecret: secret}}
		w.AS[0].AuthMethods = []string{"client_secret_post"}
		w.AS[0].addClient(id, secret, "client_secret_post")
		w.run(t, w.boot(t), w.req(1))
		requireDelivered(t, w, 1)
		r := w.TokenRequests[0]
		if r.Form.Get("client_id") != id || r.Form.Get("client_secret") != secret || len(r.Header["Authorization"]) != 0 {
			t.Errorf("form %v header %v", r.Form, r.Header)
		}
		w.requireClean(t)
	})
}

// ---- refresh ----

// A-STO-02: refresh ahead of expiry, on the WakeAt tick and when a request
// starts inside the margin.
func TestFlowRefreshAheadOfExpiry(t *testing.T) {
	t.Run("on Tick", func(t *testing.T) {
		w := newFakeWorld()
		s := w.run(t, w.boot(t), w.req(1))
		if w.WakeAt != t0.Add(59*time.Minute) {
			t.Fatalf("WakeAt %v, want one minute before the one-hour expiry", w.WakeAt)
		}
		w.Now = t0.Add(30 * time.Minute)
		_, out, err := w.step(s, machine.Tick{})
		if err != nil || len(out) != 0 {
			t.Fatalf("early Tick: %v %v", out, err)
		}
		w.Now = w.WakeAt
		s = w.run(t, s, machine.Tick{})
		if len(grantRequests(w, "refresh_token")) != 1 || s.Credential.AccessToken != "at-2" {
			t.Fatalf("after the tick: %v, %d refreshes", s.Credential, len(grantRequests(w, "refresh_token")))
		}
		w.run(t, s, w.req(2))
		if diff := cmp.Diff([]string{"at-2"}, tokensSent(w, 2)); diff != "" {
			t.Errorf("request 2 (-want +got):\n%s", diff)
		}
		requireDelivered(t, w, 1, 2)
		w.requireClean(t)
	})
	t.Run("on request start", func(t *testing.T) {
		w := newFakeWorld()
		s := w.run(t, w.boot(t), w.req(1))
		w.Now = w.WakeAt.Add(30 * time.Second)
		w.run(t, s, w.req(2))
		if diff := cmp.Diff([]string{"at-2"}, tokensSent(w, 2)); diff != "" {
			t.Errorf("request 2 is sent once, with the refreshed token (-want +got):\n%s", diff)
		}
		if len(grantRequests(w, "refresh_token")) != 1 {
			t.Errorf("%d refreshes", len(grantRequests(w, "refresh_token")))
		}
		requireDelivered(t, w, 1, 2)
		w.requireClean(t)
	})
}

// Design §3, effects doc: a rotated refresh token is saved (SaveTokens)
// BEFORE the parked requests' SendProtected in the same effect list.
func TestFlowRotatedRefreshTokenSavedFirst(t *testing.T) {
	w := newFakeWorld()
	w.AS[0].Rotate = true
	s := w.run(t, w.boot(t), w.req(1))
	w.Now = w.WakeAt
	w.run(t, s, w.req(2), w.req(3))
	var out []effects.Effect
	for _, st := range w.Steps {
		if f, ok := st.In.(machine.FetchResponse); ok && f.Seq == 5 {
			out = st.Out
		}
	}
	save, sends := -1, []int{}
	for i, e := range out {
		switch e := e.(type) {
		case effects.SaveTokens:
			save = i
			if e.Tokens.RefreshToken != "rt-2" || e.Tokens.AccessToken != "at-2" || e.IfVersion != 1 {
				t.Errorf("saved %v IfVersion %d", e.Tokens, e.IfVersion)
			}
		case effects.SendProtected:
			sends = append(sends, i)
		}
	}
	if save < 0 || len(sends) != 2 || slices.Min(sends) < save {
		t.Errorf("refresh answer effects %v: SaveTokens at %d, sends at %v", out, save, sends)
	}
	if got := w.Store.Tokens[wServer].RefreshToken; got != "rt-2" {
		t.Errorf("stored refresh token %q", got)
	}
	requireDelivered(t, w, 1, 2, 3)
	w.requireClean(t)
}

// B-9700-04, Q-19: invalid_grant on refresh forgets the credential
// (ForgetTokens) and asks the user again; the new one is saved.
func TestFlowInvalidGrantForgetsAndReauthorizes(t *testing.T) {
	w := newFakeWorld()
	w.AS[0].RefreshStatus = 400
	s := w.run(t, w.boot(t), w.req(1))
	w.Now = w.WakeAt
	s = w.run(t, s, w.req(2))
	forget, save := -1, -1
	for i, e := range w.Effects {
		switch e := e.(type) {
		case effects.ForgetTokens:
			forget = i
			if e.IfVersion != 1 {
				t.Errorf("ForgetTokens IfVersion %d", e.IfVersion)
			}
		case effects.SaveTokens:
			save = i
		}
	}
	if forget < 0 || save < forget {
		t.Errorf("ForgetTokens at %d, last SaveTokens at %d", forget, save)
	}
	if len(w.Authorizations) != 2 {
		t.Errorf("%d authorizations, want a new one", len(w.Authorizations))
	}
	if diff := cmp.Diff([]string{"at-2"}, tokensSent(w, 2)); diff != "" {
		t.Errorf("request 2 (-want +got):\n%s", diff)
	}
	if st := w.Store.Tokens[wServer]; st.AccessToken != "at-2" || st.RefreshToken != "rt-2" || w.Store.TokenVersions[wServer] != 1 {
		t.Errorf("store %v v%d", st, w.Store.TokenVersions[wServer])
	}
	if s.State != states.Authenticated {
		t.Errorf("state %s", s.State)
	}
	requireDelivered(t, w, 1, 2)
	w.requireClean(t)
}

// Design §3: a refresh that fails for a transient reason keeps the
// credential and the refresh token (memory and store); the 401'd request
// gets a retryable error; the next refresh uses the same refresh token.
func TestFlowTransientRefreshFailureKeepsTokens(t *testing.T) {
	t.Run("ahead of expiry", func(t *testing.T) {
		w := newFakeWorld()
		w.AS[0].RefreshStatus = 500
		s := w.run(t, w.boot(t), w.req(1))
		w.Now = w.WakeAt
		s = w.run(t, s, w.req(2))
		if diff := cmp.Diff([]string{"at-1"}, tokensSent(w, 2)); diff != "" {
			t.Errorf("request 2 goes with the kept credential (-want +got):\n%s", diff)
		}
		if countEffects[effects.ForgetTokens](w) != 0 || w.Store.Tokens[wServer].RefreshToken != "rt-1" || s.Credential.RefreshToken != "rt-1" {
			t.Errorf("refresh token lost: store %v, memory %v", w.Store.Tokens[wServer], s.Credential)
		}
		w.AS[0].RefreshStatus = 0
		s = w.run(t, s, machine.Tick{})
		refreshes := grantRequests(w, "refresh_token")
		if len(refreshes) != 2 || refreshes[1].Form.Get("refresh_token") != "rt-1" || s.Credential.AccessToken != "at-2" {
			t.Errorf("second refresh %v -> %v", refreshes, s.Credential)
		}
		requireDelivered(t, w, 1, 2)
		w.requireClean(t)
	})
	t.Run("after a 401", func(t *testing.T) {
		w := newFakeWorld()
		w.AS[0].RefreshStatus = 503
		s := w.run(t, w.boot(t), w.req(1))
		w.AcceptAfter = 1
		s = w.run(t, s, w.req(2))
		err := requireFailed[*machine.TokenError](t, w, 2)
		if !machine.IsRetryable(err) {
			t.Errorf("%v is not retryable", err)
		}
		if s.State != states.Authenticated || s.Credential.RefreshToken != "rt-1" || w.Store.Tokens[wServer].RefreshToken != "rt-1" {
			t.Errorf("state %s credential %v store %v", s.State, s.Credential, w.Store.Tokens[wServer])
		}
		w.requireClean(t)
	})
}

// A-GEN-05/06: a 401 with a refresh token refreshes first; when the
// refreshed credential draws a 401 too, discovery runs again.
func TestFlow401RefreshesFirstThenRediscovers(t *testing.T) {
	t.Run("the refresh cures it", func(t *testing.T) {
		w := newFakeWorld()
		s := w.run(t, w.boot(t), w.req(1))
		mark := len(w.Effects)
		w.AcceptAfter = 1
		w.run(t, s, w.req(2))
		if diff := cmp.Diff([]string{"at-1", "at-2"}, tokensSent(w, 2)); diff != "" {
			t.Errorf("request 2 (-want +got):\n%s", diff)
		}
		if got := len(w.fetchURLs(effects.PurposeResourceMetadata)); got != 1 {
			t.Errorf("%d PRM fetches: discovery ran again", got)
		}
		if got := transitionsFrom(w, mark); !slices.Equal(got, []string{
			"authenticated -credential_expiring-> refreshing", "refreshing -token_issued-> authenticated",
		}) {
			t.Errorf("transitions %v", got)
		}
		requireDelivered(t, w, 2)
		w.requireClean(t)
	})
	t.Run("a second 401 re-runs discovery", func(t *testing.T) {
		w := newFakeWorld()
		s := w.run(t, w.boot(t), w.req(1))
		mark := len(w.Effects)
		w.AcceptAfter = 2 // at-1 and the refreshed at-2 are refused
		w.run(t, s, w.req(2))
		if diff := cmp.Diff([]string{"at-1", "at-2", "at-3"}, tokensSent(w, 2)); diff != "" {
			t.Errorf("request 2 (-want +got):\n%s", diff)
		}
		got := transitionsFrom(w, mark)
		if len(got) < 3 || got[0] != "authenticated -credential_expiring-> refreshing" ||
			got[2] != "authenticated -challenged-> discovering_resource" {
			t.Errorf("transitions %v", got)
		}
		if n := len(w.fetchURLs(effects.PurposeResourceMetadata)); n != 2 {
			t.Errorf("%d PRM fetches, want 2", n)
		}
		requireDelivered(t, w, 2)
		w.requireClean(t)
	})
}

func transitionsFrom(w *fakeWorld, mark int) []string {
	var out []string
	for _, e := range w.Effects[mark:] {
		if tr, ok := e.(effects.Transition); ok {
			out = append(out, tr.String())
		}
	}
	return out
}

// A-BIND-02, A-PRM-09/10, SEP-2352: when the PRM names another
// authorization server, nothing of the old one (tokens, refresh token,
// client) is presented to the new one, and DCR runs again there.
func TestFlowAuthorizationServerMigration(t *testing.T) {
	t.Run("dynamic registration", func(t *testing.T) {
		w := newFakeWorld()
		w.AS = []*fakeAS{newFakeAS(wIssuer), newFakeAS(wIssuer2)}
		w.PRMServers = []string{wIssuer}
		s := w.run(t, w.boot(t), w.req(1))
		w.PRMServers = []string{wIssuer2}
		s = w.run(t, s, w.req(2))
		requireDelivered(t, w, 1, 2)
		regs := []string{}
		for _, r := range w.Registrations {
			regs = append(regs, r.Issuer)
		}
		if diff := cmp.Diff([]string{wIssuer, wIssuer2}, regs); diff != "" {
			t.Errorf("registrations (-want +got):\n%s", diff)
		}
		last := w.Authorizations[len(w.Authorizations)-1]
		if last.Endpoint != wIssuer2+"/authorize" || last.Query.Get("client_id") != "client-2" {
			t.Errorf("authorized at %s as %s", last.Endpoint, last.Query.Get("client_id"))
		}
		for _, r := range w.TokenRequests {
			if r.Issuer == wIssuer2 && (r.Form.Get("client_id") == "client-1" || r.Form.Get("refresh_token") == "rt-1") {
				t.Errorf("AS1 credentials at AS2: %v", r.Form)
			}
		}
		if st := w.Store.Tokens[wServer]; st.Issuer != wIssuer2 || st.ClientID != "client-2" {
			t.Errorf("stored tokens %v", st)
		}
		if _, ok := w.Store.Clients[wIssuer2]; !ok || s.Client.Issuer != wIssuer2 {
			t.Errorf("registration for AS2 not kept: %v", w.Store.Clients)
		}
		w.requireClean(t) // the servers flag any AS1 token, code or client at AS2
	})
	t.Run("pre-registered client for any issuer (A-BIND-03)", func(t *testing.T) {
		w := newFakeWorld()
		w.AS = []*fakeAS{newFakeAS(wIssuer), newFakeAS(wIssuer2)}
		w.PRMServers = []string{wIssuer}
		w.Config.Clients = []effects.Client{{ClientID: "pre-1", ClientSecret: "pre-secret"}}
		w.AS[0].addClient("pre-1", "pre-secret", "client_secret_basic")
		s := w.run(t, w.boot(t), w.req(1))
		requireDelivered(t, w, 1)
		w.PRMServers = []string{wIssuer2}
		w.run(t, s, w.req(2))
		for _, a := range w.Authorizations {
			if a.Endpoint == wIssuer2+"/authorize" && a.Query.Get("client_id") == "pre-1" {
				t.Fatalf("regression: client.go knownClient re-binds a Config.Clients entry with an empty Issuer to every issuer that " +
					"validates: after it was bound to AS1, it is presented to AS2 (Config.Clients doc: \"binds to the first one " +
					"that validates\"; A-BIND-03: surface an error, do not silently try it)")
			}
		}
		w.requireClean(t)
	})
}

// ---- step-up ----

// A-STEP-01/03/06, A-SCP-05: 403 insufficient_scope re-authorizes (not a
// refresh) with the union of the previously requested and the challenged
// scopes, then re-sends the request once with the new credential.
func TestFlowStepUp(t *testing.T) {
	w := newFakeWorld()
	w.AS[0].ScopesSupported = []string{"mcp:read", "mcp:write", "offline_access"}
	s := w.run(t, w.boot(t), w.req(1))
	w.RequiredScope = "mcp:write"
	s = w.run(t, s, w.req(2))
	requireDelivered(t, w, 1, 2)
	if got := w.Authorizations[1].Query.Get("scope"); got != "mcp:read offline_access mcp:write" {
		t.Errorf("step-up scope %q", got)
	}
	if diff := cmp.Diff([]string{"at-1", "at-2"}, tokensSent(w, 2)); diff != "" {
		t.Errorf("request 2 (-want +got):\n%s", diff)
	}
	if len(grantRequests(w, "refresh_token")) != 0 {
		t.Error("a refresh was used to widen the scope (A-STEP-06)")
	}
	if s.Credential.Scope != "mcp:read offline_access mcp:write" {
		t.Errorf("credential scope %q", s.Credential.Scope)
	}
	w.requireClean(t)
}

// A-STEP-04: at most two step-ups per request, then *StepUpLimitError.
func TestFlowStepUpLimit(t *testing.T) {
	w := newFakeWorld()
	w.AS[0].Grantable = []string{"mcp:read"} // never grants mcp:write
	s := w.run(t, w.boot(t), w.req(1))
	w.RequiredScope = "mcp:write"
	s = w.run(t, s, w.req(2))
	err := requireFailed[*machine.StepUpLimitError](t, w, 2)
	if diff := cmp.Diff(&machine.StepUpLimitError{Scope: "mcp:write", Limit: 2}, err); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	if got := len(w.Authorizations); got != 3 {
		t.Errorf("%d authorizations, want 1 + 2 step-ups", got)
	}
	if got := len(w.sendsOf(2)); got != 3 {
		t.Errorf("request 2 sent %d times", got)
	}
	if s.State != states.Authenticated {
		t.Errorf("state %s", s.State)
	}
	w.requireClean(t)
}

// A-STEP-05: a 403 that is not insufficient_scope is the caller's answer.
func TestFlowOther403Delivered(t *testing.T) {
	w := newFakeWorld()
	s := w.run(t, w.boot(t), w.req(1))
	w.Forbid = true
	w.run(t, s, w.req(2))
	requireDelivered(t, w, 2)
	if len(w.Authorizations) != 1 || len(w.sendsOf(2)) != 1 {
		t.Errorf("%d authorizations, %d sends", len(w.Authorizations), len(w.sendsOf(2)))
	}
	w.requireClean(t)
}

// ---- multiplexing ----

// Design §3: many concurrent requests share one attempt; every parked
// request is re-sent exactly once and answered exactly once.
func TestFlowConcurrentRequestsSingleFlight(t *testing.T) {
	const n = 25
	ids := func(from int) []machine.Input {
		var in []machine.Input
		for i := range n {
			in = append(in, machine.RequestStarted{Request: effects.RequestID(from + i), URL: wServer})
		}
		return in
	}
	t.Run("cold start", func(t *testing.T) {
		w := newFakeWorld()
		w.run(t, w.boot(t), ids(1)...)
		if len(w.fetchURLs(effects.PurposeResourceMetadata)) != 1 || len(w.Authorizations) != 1 || len(w.Registrations) != 1 {
			t.Errorf("%d discoveries, %d authorizations, %d registrations", len(w.fetchURLs(effects.PurposeResourceMetadata)), len(w.Authorizations), len(w.Registrations))
		}
		for i := 1; i <= n; i++ {
			if diff := cmp.Diff([]string{"", "at-1"}, tokensSent(w, effects.RequestID(i))); diff != "" {
				t.Errorf("request %d (-want +got):\n%s", i, diff)
			}
			requireDelivered(t, w, effects.RequestID(i))
		}
		w.requireClean(t)
	})
	t.Run("expiry", func(t *testing.T) {
		w := newFakeWorld()
		s := w.run(t, w.boot(t), w.req(100))
		w.Now = w.WakeAt
		w.run(t, s, ids(1)...)
		if got := len(grantRequests(w, "refresh_token")); got != 1 {
			t.Errorf("%d refreshes", got)
		}
		for i := 1; i <= n; i++ {
			if diff := cmp.Diff([]string{"at-2"}, tokensSent(w, effects.RequestID(i))); diff != "" {
				t.Errorf("request %d (-want +got):\n%s", i, diff)
			}
			requireDelivered(t, w, effects.RequestID(i))
		}
		w.requireClean(t)
	})
	t.Run("401 storm", func(t *testing.T) {
		w := newFakeWorld()
		s := w.run(t, w.boot(t), w.req(100))
		w.AcceptAfter = 1
		w.run(t, s, ids(1)...)
		if got := len(grantRequests(w, "refresh_token")); got != 1 {
			t.Errorf("%d refreshes", got)
		}
		for i := 1; i <= n; i++ {
			if diff := cmp.Diff([]string{"at-1", "at-2"}, tokensSent(w, effects.RequestID(i))); diff != "" {
				t.Errorf("request %d (-want +got):\n%s", i, diff)
			}
			requireDelivered(t, w, effects.RequestID(i))
		}
		w.requireClean(t)
	})
}

// Design §3 "Storage is an effect": a restart with a stored credential and
// discovery sends requests at once: no Fetch at all, no authorization.
func TestFlowWarmStartFromStore(t *testing.T) {
	w := newFakeWorld()
	w.run(t, w.boot(t), w.req(1))
	fetches, opens := len(w.Fetches), len(w.Authorizations)
	s := restart(t, w)
	if s.State != states.Authenticated {
		t.Fatalf("warm start in %s", s.State)
	}
	w.run(t, s, w.req(2))
	if len(w.Fetches) != fetches || len(w.Authorizations) != opens {
		t.Errorf("warm start fetched %v", w.fetchURLs("")[fetches:])
	}
	if diff := cmp.Diff([]string{"at-1"}, tokensSent(w, 2)); diff != "" {
		t.Errorf("request 2 (-want +got):\n%s", diff)
	}
	requireDelivered(t, w, 2)
	w.requireClean(t)
}

// CredentialChanged (another process stored a newer credential) adopts it
// in the middle of an attempt and releases the parked requests with it; the
// abandoned attempt's late answer is refused.
func TestFlowCredentialChangedAdoptsAndReleases(t *testing.T) {
	w := newFakeWorld()
	s, held := coldUntil(t, w, holdType[effects.AwaitCallback]())
	s = park(t, w, s, 2)
	// Another process authorized: the servers know its token.
	other := otherTokens(wIssuer)
	w.access[other.AccessToken] = &fakeGrant{Issuer: wIssuer, Resource: wServer, Scope: "mcp:read", N: 1000}
	w.Hold = nil
	s = w.run(t, s, machine.CredentialChanged{Tokens: other, Version: 1})
	requireDelivered(t, w, 1, 2)
	if diff := cmp.Diff([]string{"at-other"}, tokensSent(w, 2)); diff != "" {
		t.Errorf("request 2 (-want +got):\n%s", diff)
	}
	if got := tokensSent(w, 1); got[len(got)-1] != "at-other" {
		t.Errorf("request 1 sends %v", got)
	}
	_, _, err := w.step(s, w.answer(held))
	var unexpected *machine.UnexpectedInputError
	if !errors.As(err, &unexpected) {
		t.Errorf("late callback: %v", err)
	}
	w.requireClean(t)
}

// The effects doc: a SaveTokens whose compare-and-swap loses is reported as
// CredentialChanged with the stored record; the machine must adopt it
// (input.go: "another process refreshed it, or our compare-and-swap lost").
func TestFlowLostCompareAndSwapAdoptsTheStoredCredential(t *testing.T) {
	w := newFakeWorld()
	s, held := coldUntil(t, w, holdPurpose(effects.PurposeToken))
	// Meanwhile another process stored its credential (version 1).
	other := otherTokens(wIssuer)
	w.access[other.AccessToken] = &fakeGrant{Issuer: wIssuer, Resource: wServer, Scope: "mcp:read", N: 1000}
	w.Store.Tokens[wServer], w.Store.TokenVersions[wServer] = other, 1
	w.Hold, w.AllowRefused = nil, true
	w.Held = []effects.Effect{held}
	s = w.release(t, s, nil)
	if len(w.Refused) > 0 && s.Credential.AccessToken == "at-1" {
		t.Fatalf("regression: token.go adopt() increments CredentialVersion before the driver's compare-and-swap; when the CAS "+
			"loses to a writer that wrote the same version, stored.go credentialChanged refuses the report (%v): the machine "+
			"keeps a credential that is not stored, at the stored record's version, so its next SaveTokens overwrites the "+
			"other writer's credential", w.Refused[0].Err)
	}
	if s.Credential.AccessToken != "at-other" || s.CredentialVersion != 1 {
		t.Errorf("after the lost CAS: %v v%d", s.Credential, s.CredentialVersion)
	}
}

// Design §4.1, A-SEC-01: a request to another origin never carries the
// token, is never parked, and its 401 starts nothing.
func TestFlowForeignOriginNeverCarriesToken(t *testing.T) {
	w := newFakeWorld()
	s := w.run(t, w.boot(t), w.req(1))
	s = w.run(t, s, w.foreign(2))
	if sends := w.sendsOf(2); len(sends) != 1 || len(sends[0].Header) != 0 || sends[0].Credential != 0 {
		t.Errorf("foreign sends %v", sends)
	}
	requireDelivered(t, w, 2)
	// During an attempt it passes straight through.
	w.AcceptAfter = 1
	w.Hold = holdPurpose(effects.PurposeRefresh)
	s = w.run(t, s, w.req(3))
	s = w.run(t, s, w.foreign(4))
	if sends := w.sendsOf(4); len(sends) != 1 || len(sends[0].Header) != 0 {
		t.Errorf("foreign send during an attempt: %v", sends)
	}
	requireDelivered(t, w, 4)
	// Its 401 is the caller's answer: it starts nothing.
	s, _, err := w.step(s, w.foreign(5))
	if err != nil {
		t.Fatal(err)
	}
	w.pendingInputs()
	_, out, err := w.step(s, machine.ProtectedResponse{Request: 5, Status: 401, Challenges: []string{`Bearer resource_metadata="https://other.example.org/prm"`}})
	if diff := cmp.Diff([]effects.Effect{effects.Deliver{Request: 5}}, out); diff != "" || err != nil {
		t.Errorf("foreign 401 (-want +got):\n%s%v", diff, err)
	}
	w.requireClean(t)
}

// Design §4.8: every loop has a budget; exceeding one is a typed error,
// never a hang.
func TestFlowBoundedSteps(t *testing.T) {
	t.Run("steps per attempt", func(t *testing.T) {
		w := newFakeWorld()
		w.Config.Limits.StepsPerAttempt = 2
		s := w.run(t, w.boot(t), w.req(1))
		err := requireFailed[*machine.BudgetError](t, w, 1)
		if err.Limit != 2 || len(w.Authorizations) != 0 || s.State != states.Unauthenticated {
			t.Errorf("limit %d, %d authorizations, state %s", err.Limit, len(w.Authorizations), s.State)
		}
		w.requireClean(t)
	})
	t.Run("a server that refuses every credential", func(t *testing.T) {
		w := newFakeWorld()
		w.AcceptAfter = 1 << 30
		w.run(t, w.boot(t), w.req(1))
		err := requireFailed[*machine.UnauthorizedError](t, w, 1)
		if err.Limit != 3 || len(w.sendsOf(1)) != 4 {
			t.Errorf("limit %d after %d sends", err.Limit, len(w.sendsOf(1)))
		}
		w.requireClean(t)
	})
}

// ---- further defects found while writing the tests ----

// A-RES-02: resource goes on refresh requests too. In the 2025-03-26
// fallback with a 2025-11-25 client, /authorize and /token carry the
// canonical server URI; the refresh must carry it as well.
func TestFlowLegacyRefreshSendsResource(t *testing.T) {
	w := newLegacyFakeWorld()
	s := w.run(t, w.boot(t), w.req(1))
	w.Now = w.WakeAt
	w.run(t, s, machine.Tick{})
	r := grantRequests(w, "refresh_token")
	if len(r) != 1 {
		t.Fatalf("%d refreshes", len(r))
	}
	if got := r[0].Form.Get("resource"); got != wServer {
		if !r[0].Form.Has("resource") {
			t.Fatalf("regression: refresh.go startRefresh omits resource when Discovery.Legacy and the credential's resource equals " +
				"Config.Server, although /authorize and /token sent it (A-RES-02, A-RES-10)")
		}
		t.Errorf("refresh resource %q, want %q", got, wServer)
	}
	w.requireClean(t)
}

// Single flight for step-up: a 403 insufficient_scope for a credential that
// a step-up has since replaced is re-sent with the new credential, as a 401
// for an old credential is; it must not start a second authorization.
func TestFlowStaleInsufficientScopeIsResent(t *testing.T) {
	w := newFakeWorld()
	s := w.run(t, w.boot(t), w.req(1))
	w.RequiredScope = "mcp:write"
	w.Hold = holdRequest(3) // request 3's 403 arrives late
	s = w.run(t, s, w.req(3), w.req(2))
	if len(w.Authorizations) != 2 || s.Generation != 2 {
		t.Fatalf("step-up for request 2: %d authorizations, generation %d", len(w.Authorizations), s.Generation)
	}
	w.Hold = nil
	s = w.release(t, s, nil)
	requireDelivered(t, w, 2, 3)
	if len(w.Authorizations) != 2 {
		t.Fatalf("regression: protected.go insufficientScope ignores in.Credential: a 403 for a credential a step-up already " +
			"replaced starts another authorization (the user is asked twice) instead of re-sending with the new credential")
	}
	if diff := cmp.Diff([]string{"at-1", "at-2"}, tokensSent(w, 3)); diff != "" {
		t.Errorf("request 3 (-want +got):\n%s", diff)
	}
	w.requireClean(t)
}

// A failed token request reports the token endpoint, not a discovery URL.
func TestFlowTransportErrorNamesTheFailedRequest(t *testing.T) {
	w := newFakeWorld()
	w.Intercept = func(f effects.Fetch) machine.Input {
		if f.Purpose == effects.PurposeToken {
			return machine.FetchFailed{Seq: f.Seq, Reason: "timeout"}
		}
		return nil
	}
	w.run(t, w.boot(t), w.req(1))
	err := requireFailed[*machine.TransportError](t, w, 1)
	if err.URL != wIssuer+"/token" || err.Purpose != "token" {
		if err.URL == wASMOAuth {
			t.Fatalf("regression: step.go fetchAnswered builds TransportError.URL from Attempt.Candidates[Attempt.Next] (the last "+
				"discovery candidate) instead of Attempt.PendingURL: a token request failure names %s", err.URL)
		}
		t.Errorf("TransportError %+v", err)
	}
}

// input.go: CredentialChanged is adopted "when it is for the same resource".
func TestFlowCredentialChangedForAnotherResourceRefused(t *testing.T) {
	w := newFakeWorld()
	s := w.run(t, w.boot(t), w.req(1))
	other := otherTokens(wIssuer)
	other.Resource = "https://elsewhere.example.org/mcp"
	got, _, err := w.step(s, machine.CredentialChanged{Tokens: other, Version: s.CredentialVersion + 1})
	if err == nil && got.Credential.Resource == other.Resource {
		t.Fatal("regression: stored.go credentialChanged does not compare Tokens.Resource: a credential for another resource is " +
			"adopted and sent to this server (input.go promises the same-resource check; A-USE-04, A-SEC-02)")
	}
	var unexpected *machine.UnexpectedInputError
	if !errors.As(err, &unexpected) {
		t.Errorf("err %v", err)
	}
}

// A credential renewed without a user (client credentials) is renewed
// ahead of expiry on Tick (stored.go tick, GrantRepeated), so the machine
// must ask for that Tick with WakeAt.
func TestFlowClientCredentialsWakeAt(t *testing.T) {
	w := ccWorld()
	s := w.run(t, w.boot(t), w.req(1))
	requireDelivered(t, w, 1)
	if w.WakeAt.IsZero() {
		t.Fatal("regression: token.go wake() emits WakeAt only when a refresh token is held, so a client-credentials or " +
			"workload credential (renewed by grant_repeated on Tick) never gets its Tick; it is renewed only after a " +
			"request finds it expired")
	}
	if w.WakeAt != s.Credential.ExpiresAt.Add(-time.Minute) {
		t.Errorf("WakeAt %v", w.WakeAt)
	}
}

// A restarted client-credentials client (store: credential and discovery)
// whose credential expired makes its grant again, authenticated as the
// configured client (RFC 6749 §4.4.2, A-EXT-CC-02).
func TestFlowClientCredentialsAfterRestart(t *testing.T) {
	w := ccWorld()
	w.run(t, w.boot(t), w.req(1))
	w.Now = t0.Add(2 * time.Hour)
	mark := len(w.TokenRequests)
	s := w.run(t, restart(t, w), w.req(2))
	requireDelivered(t, w, 1, 2)
	first := w.TokenRequests[mark]
	if got := first.Header["Authorization"]; len(got) != 1 || got[0] != "Basic "+basic("svc:svc-secret") {
		if len(got) == 0 && !first.Form.Has("client_id") {
			t.Fatalf("regression: snapshot.go canRepeatGrant accepts !HasClient for client_credentials and grant.go repeatGrant "+
				"never takes the client from Config.Clients (beginGrantWithoutUser does not save it either): after a restart "+
				"the repeated client_credentials grant is sent with no client authentication, refused (invalid_client), and "+
				"request 2 goes out with the expired token (%v), costing a 401 and a full rediscovery", tokensSent(w, 2))
		}
		t.Errorf("repeated grant authenticates with %v / %v", got, first.Form)
	}
	if diff := cmp.Diff([]string{"at-2"}, tokensSent(w, 2)); diff != "" {
		t.Errorf("request 2 (-want +got):\n%s", diff)
	}
	_ = s
	w.requireClean(t)
}

// Config.Grants says how the client may get credentials: a client that is
// configured for enterprise-managed authorization only (SEP-990: no
// browser) steps up through its identity provider again, never by opening
// an authorization-code flow it was not configured for.
func TestFlowEnterpriseStepUpStaysWithoutBrowser(t *testing.T) {
	w := enterpriseWorld()
	w.AS[0].Grants = []string{wJWTBearer} // the server offers no code flow either
	s := w.run(t, w.boot(t), w.req(1))
	requireDelivered(t, w, 1)
	w.RequiredScope = "mcp:write"
	w.AllowRefused = true
	w.run(t, s, w.req(2))
	if len(w.Authorizations) > 0 {
		t.Fatalf("regression: protected.go insufficientScope: for a credential from GrantEnterprise (canRepeatGrant is false) "+
			"a 403 insufficient_scope goes to scope_insufficient and authorize(): an authorization-code flow is opened "+
			"at %s as %q although Config.Grants has only enterprise_managed and the server offers no code flow",
			w.Authorizations[0].Endpoint, w.Authorizations[0].Query.Get("client_id"))
	}
	if o := w.Outcomes[2]; len(o) != 1 {
		t.Errorf("request 2 ended %+v", o)
	}
}
