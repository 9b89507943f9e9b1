package machine_test

// Pure table tests of the grants without a user (client credentials,
// workload identity, enterprise-managed authorization), their client
// authentication (private_key_jwt) and DPoP: transitions, the token
// requests to the byte, and the claims the machine asks the driver to sign,
// with a fixed clock and seeded ChaCha8 entropy so that every jti is known
// in advance. The scripted driver here is small and self-contained; its
// names start with gt.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

const (
	gtServer   = "https://mcp.example.com/mcp"
	gtPRMURL   = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	gtIssuer   = "https://as.example.com"
	gtMetaURL  = "https://as.example.com/.well-known/oauth-authorization-server"
	gtTokenURL = "https://as.example.com/token"
	gtIdPURL   = "https://idp.example.com/oauth2/token"
	gtJWTBear  = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	gtIDJAG    = "urn:ietf:params:oauth:token-type:id-jag"
	gtAssert   = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	gtSecret   = "s3cr+t/=&"
	gtChall    = `Bearer resource_metadata="` + gtPRMURL + `"`
)

var gtT0 = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

// gtOut is an effect the test handles, with the entropy state of the Step
// that emitted it (so the jti it drew can be computed).
type gtOut struct {
	E    effects.Effect
	Rand []byte
}

// gtRun drives one machine: discovery is answered from prm and meta, the
// store is empty; token requests and protected sends come back to the test.
type gtRun struct {
	t     *testing.T
	s     machine.Snapshot
	now   time.Time
	rng   *rand.ChaCha8
	prm   map[string]any
	meta  map[string]any
	trans []string
	fails []effects.Fail
}

func gtSeeded(seed uint64) *rand.ChaCha8 {
	var b [32]byte
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(b)
}

// gtMeta is the authorization server's metadata: every grant, the three
// client authentications, ES256 assertions; no DPoP.
func gtMeta() map[string]any {
	return map[string]any{
		"issuer":                                           gtIssuer,
		"authorization_endpoint":                           gtIssuer + "/authorize",
		"token_endpoint":                                   gtTokenURL,
		"response_types_supported":                         []string{"code"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"grant_types_supported":                            []string{"authorization_code", "client_credentials", gtJWTBear},
		"token_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"ES256"},
	}
}

func gtStart(t *testing.T, cfg machine.Config, edit func(meta map[string]any)) *gtRun {
	t.Helper()
	if cfg.Server == "" {
		cfg.Server = gtServer
	}
	r := &gtRun{t: t, now: gtT0, rng: gtSeeded(1), meta: gtMeta(),
		prm: map[string]any{"resource": gtServer, "authorization_servers": []string{gtIssuer}, "scopes_supported": []string{"mcp:read"}}}
	if edit != nil {
		edit(r.meta)
	}
	s, out, err := machine.New(cfg)
	if err != nil {
		t.Fatalf("machine.New: %v", err)
	}
	if _, ok := out[0].(effects.LoadStored); len(out) != 1 || !ok {
		t.Fatalf("machine.New effects %v", out)
	}
	r.s = s
	if rest := r.feed(machine.StoredLoaded{}); len(rest) != 0 {
		t.Fatalf("after loading: %v", rest)
	}
	return r
}

func (r *gtRun) state() []byte {
	b, err := r.rng.MarshalBinary()
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// feed steps in and every answer the scripted servers give, and returns
// the effects left to the test, in order.
func (r *gtRun) feed(in machine.Input) []gtOut {
	r.t.Helper()
	var left []gtOut
	queue := []machine.Input{in}
	for n := 0; len(queue) > 0; n++ {
		if n > 100 {
			r.t.Fatal("no quiescence")
		}
		in, queue = queue[0], queue[1:]
		before := r.state()
		next, out, err := machine.Step(r.s, in, machine.Env{Now: r.now, Rand: r.rng})
		if err != nil {
			r.t.Fatalf("Step(%T) in %s: %v", in, r.s.State, err)
		}
		r.s = next
		for _, e := range out {
			switch e := e.(type) {
			case effects.Transition:
				r.trans = append(r.trans, e.String())
			case effects.LoadStored:
				queue = append(queue, machine.StoredLoaded{})
			case effects.LoadClient:
				queue = append(queue, machine.ClientLoaded{})
			case effects.Fetch:
				if e.Method == "GET" {
					queue = append(queue, r.discovery(e))
					continue
				}
				left = append(left, gtOut{E: e, Rand: before})
			case effects.Fail:
				r.fails = append(r.fails, e)
				left = append(left, gtOut{E: e, Rand: before})
			case effects.SendProtected, effects.Deliver, effects.OpenURL, effects.AwaitCallback:
				left = append(left, gtOut{E: e, Rand: before})
			}
		}
	}
	return left
}

func (r *gtRun) discovery(f effects.Fetch) machine.Input {
	switch f.URL {
	case gtPRMURL:
		return gtJSON(f.Seq, 200, r.prm, nil)
	case gtMetaURL:
		return gtJSON(f.Seq, 200, r.meta, nil)
	}
	return machine.FetchResponse{Seq: f.Seq, Status: 404, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: []byte("no")}
}

func gtJSON(seq uint64, status int, body any, header map[string][]string) machine.FetchResponse {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	h := map[string][]string{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}}
	for k, v := range header {
		h[k] = v
	}
	return machine.FetchResponse{Seq: seq, Status: status, Header: h, Body: b}
}

// gtToken is a token response.
func gtToken(seq uint64, at, tokenType string) machine.FetchResponse {
	return gtJSON(seq, 200, map[string]any{"access_token": at, "token_type": tokenType, "expires_in": 3600, "scope": "mcp:read"}, nil)
}

// one returns the single effect left, of type T.
func gtOne[T effects.Effect](t *testing.T, outs []gtOut) (T, []byte) {
	t.Helper()
	var zero T
	if len(outs) != 1 {
		t.Fatalf("%d effects left, want one %T: %v", len(outs), zero, outs)
	}
	e, ok := outs[0].E.(T)
	if !ok {
		t.Fatalf("effect %T %+v, want %T", outs[0].E, outs[0].E, zero)
	}
	return e, outs[0].Rand
}

// begin starts request id, answers its unauthenticated send with a 401 and
// returns what the machine does next.
func (r *gtRun) begin(id effects.RequestID, target string) []gtOut {
	r.t.Helper()
	sp, _ := gtOne[effects.SendProtected](r.t, r.feed(machine.RequestStarted{Request: id, Method: "POST", URL: target}))
	if len(sp.Header) != 0 {
		r.t.Fatalf("first send carries %v", sp.Header)
	}
	return r.feed(machine.ProtectedResponse{Request: id, Status: 401, Challenges: []string{gtChall}})
}

// gtJTI is the jti the k-th 16-byte draw of a Step gives, from the entropy
// state before it.
func gtJTI(t *testing.T, state []byte, k int) string {
	t.Helper()
	var c rand.ChaCha8
	if err := c.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16*(k+1))
	_, _ = c.Read(b)
	return base64.RawURLEncoding.EncodeToString(b[16*k:])
}

// gtClaims decodes the claims of a JWT the machine wants signed.
func gtClaims(t *testing.T, j effects.JWT) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(j.Claims, &m); err != nil {
		t.Fatalf("claims %q: %v", j.Claims, err)
	}
	return m
}

// gtBound is a resource proof as the driver sends it with a POST to
// gtServer: the machine asks for the request binding (htm, htu) and
// decides everything else.
func gtBound(t *testing.T, j effects.JWT) effects.JWT { return gtBoundTo(t, j, "POST") }

func gtBoundTo(t *testing.T, j effects.JWT, method string) effects.JWT {
	t.Helper()
	if !j.BindRequest {
		t.Fatalf("resource proof %v is not bound to its request", j)
	}
	if m := gtClaims(t, j); m["htm"] != nil || m["htu"] != nil {
		t.Errorf("the machine set htm/htu itself: %v", m)
	}
	b, err := driver.BindToRequest(j, method, gtServer+"?q=1#f")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gtForm(t *testing.T, f effects.Fetch) url.Values {
	t.Helper()
	v, err := url.ParseQuery(string(f.Body))
	if err != nil {
		t.Fatalf("form %q: %v", f.Body, err)
	}
	return v
}

func gtBasic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func gtAth(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

var (
	gtCC       = []machine.Grant{machine.GrantClientCredentials}
	gtBasicCli = effects.Client{ClientID: "svc", ClientSecret: gtSecret}
)

// ---- chooseGrant ----

// TestGrantChosenFromServerMetadata: the first configured grant the server
// lists in grant_types_supported is used (RFC 8414 §2: absent means
// authorization_code and implicit).
func TestGrantChosenFromServerMetadata(t *testing.T) {
	cc, wl, ent, code := machine.GrantClientCredentials, machine.GrantWorkloadIdentity, machine.GrantEnterprise, machine.GrantAuthorizationCode
	for _, tc := range []struct {
		name       string
		configured []machine.Grant
		supported  []string // nil: absent
		want       string   // the grant_type posted, the URL fetched, "authorize", or "unsupported"
	}{
		{"client credentials listed", []machine.Grant{cc}, []string{"authorization_code", "client_credentials"}, "client_credentials"},
		{"first configured wins", []machine.Grant{wl, cc}, []string{"client_credentials", gtJWTBear}, gtJWTBear},
		{"first configured wins, reversed", []machine.Grant{cc, wl}, []string{"client_credentials", gtJWTBear}, "client_credentials"},
		{"skips an unlisted grant", []machine.Grant{cc, wl}, []string{gtJWTBear}, gtJWTBear},
		{"code first", []machine.Grant{code, cc}, []string{"authorization_code", "client_credentials"}, "authorize"},
		{"code unlisted", []machine.Grant{code, cc}, []string{"client_credentials"}, "client_credentials"},
		{"enterprise is jwt-bearer", []machine.Grant{ent}, []string{gtJWTBear}, gtIdPURL},
		{"absent list: code only", []machine.Grant{cc}, nil, "unsupported"},
		{"none listed", []machine.Grant{cc, wl, ent}, []string{"authorization_code"}, "unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := machine.Config{Grants: tc.configured, Clients: []effects.Client{gtBasicCli}, RedirectURI: "http://127.0.0.1:8765/cb",
				IdentityProvider: machine.IdentityProvider{TokenEndpoint: gtIdPURL, ClientID: "idp-client"}}
			r := gtStart(t, cfg, func(m map[string]any) {
				if tc.supported == nil {
					delete(m, "grant_types_supported")
				} else {
					m["grant_types_supported"] = tc.supported
				}
			})
			outs := r.begin(1, gtServer)
			var got string
			switch e := outs[0].E.(type) {
			case effects.Fetch:
				got = gtForm(t, e).Get("grant_type")
				if e.URL == gtIdPURL {
					got = e.URL
				}
			case effects.AwaitCallback, effects.OpenURL:
				got = "authorize"
			case effects.Fail:
				var ue *machine.UnsupportedGrantError
				if !errors.As(e.Err, &ue) {
					t.Fatalf("fail %v", e.Err)
				}
				if diff := cmp.Diff(&machine.UnsupportedGrantError{Issuer: gtIssuer, Configured: tc.configured, Supported: tc.supported}, ue); diff != "" {
					t.Errorf("UnsupportedGrantError (-want +got):\n%s", diff)
				}
				got = "unsupported"
			default:
				t.Fatalf("effect %T", e)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// ---- transitions ----

const (
	gtLoaded   = "loading -nothing_stored-> unauthenticated"
	gtDiscover = "unauthenticated -challenged-> discovering_resource"
	gtFoundPRM = "discovering_resource -resource_metadata_found-> discovering_issuer"
	gtReady    = "discovering_issuer -grant_ready-> requesting_token"
	gtIssued   = "requesting_token -token_issued-> authenticated"
)

// TestGrantTransitions: the transitions of each grant, from the 401 to the
// credential, and of what follows (expiry, step-up, refusals).
func TestGrantTransitions(t *testing.T) {
	ent := machine.Config{Grants: []machine.Grant{machine.GrantEnterprise}, Clients: []effects.Client{gtBasicCli},
		IdentityProvider: machine.IdentityProvider{TokenEndpoint: gtIdPURL, ClientID: "idp-client"}}
	jag := gtJSON(0, 200, map[string]any{"access_token": "jag-1", "issued_token_type": gtIDJAG, "token_type": "N_A"}, nil)
	answer := func(r *gtRun, outs []gtOut, resp machine.FetchResponse) []gtOut {
		f, _ := gtOne[effects.Fetch](r.t, outs)
		resp.Seq = f.Seq
		return r.feed(resp)
	}
	issue := func(r *gtRun, outs []gtOut, at string) []gtOut {
		return answer(r, outs, gtToken(0, at, "Bearer"))
	}
	for _, tc := range []struct {
		name   string
		cfg    machine.Config
		script func(r *gtRun)
		want   []string
	}{
		{
			name: "client credentials", cfg: machine.Config{Grants: gtCC, Clients: []effects.Client{gtBasicCli}},
			script: func(r *gtRun) { gtOne[effects.SendProtected](r.t, issue(r, r.begin(1, gtServer), "at-1")) },
			want:   []string{gtLoaded, gtDiscover, gtFoundPRM, gtReady, gtIssued},
		},
		{
			name: "workload identity", cfg: machine.Config{Grants: []machine.Grant{machine.GrantWorkloadIdentity}},
			script: func(r *gtRun) { gtOne[effects.SendProtected](r.t, issue(r, r.begin(1, gtServer), "at-1")) },
			want:   []string{gtLoaded, gtDiscover, gtFoundPRM, gtReady, gtIssued},
		},
		{
			name: "enterprise", cfg: ent,
			script: func(r *gtRun) {
				outs := answer(r, r.begin(1, gtServer), jag)
				gtOne[effects.SendProtected](r.t, issue(r, outs, "at-1"))
			},
			want: []string{gtLoaded, gtDiscover, gtFoundPRM,
				"discovering_issuer -identity_exchange_started-> exchanging_identity",
				"exchanging_identity -identity_exchanged-> requesting_token", gtIssued},
		},
		{
			name: "client credentials expire: the grant is repeated", cfg: machine.Config{Grants: gtCC, Clients: []effects.Client{gtBasicCli}},
			script: func(r *gtRun) {
				sp, _ := gtOne[effects.SendProtected](r.t, issue(r, r.begin(1, gtServer), "at-1"))
				r.feed(machine.ProtectedResponse{Request: 1, Credential: sp.Credential, Status: 200})
				r.now = r.now.Add(time.Hour - 30*time.Second) // within the refresh margin
				outs := r.feed(machine.RequestStarted{Request: 2, Method: "POST", URL: gtServer})
				f, _ := gtOne[effects.Fetch](r.t, outs)
				if g := gtForm(r.t, f).Get("grant_type"); g != "client_credentials" {
					r.t.Errorf("repeated grant_type %q", g)
				}
				sp, _ = gtOne[effects.SendProtected](r.t, issue(r, outs, "at-2"))
				if sp.Header["Authorization"][0] != "Bearer at-2" {
					r.t.Errorf("sent with %v", sp.Header)
				}
			},
			want: []string{gtLoaded, gtDiscover, gtFoundPRM, gtReady, gtIssued,
				"authenticated -grant_repeated-> requesting_token", gtIssued},
		},
		{
			name: "client credentials step up: the grant is repeated with the union", cfg: machine.Config{Grants: gtCC, Clients: []effects.Client{gtBasicCli}},
			script: func(r *gtRun) {
				sp, _ := gtOne[effects.SendProtected](r.t, issue(r, r.begin(1, gtServer), "at-1"))
				outs := r.feed(machine.ProtectedResponse{Request: 1, Credential: sp.Credential, Status: 403,
					Challenges: []string{`Bearer error="insufficient_scope", scope="mcp:write"`}})
				f, _ := gtOne[effects.Fetch](r.t, outs)
				if s := gtForm(r.t, f).Get("scope"); s != "mcp:read mcp:write" {
					r.t.Errorf("step-up scope %q", s)
				}
				issue(r, outs, "at-2")
			},
			want: []string{gtLoaded, gtDiscover, gtFoundPRM, gtReady, gtIssued,
				"authenticated -grant_repeated-> requesting_token", gtIssued},
		},
		{
			name: "enterprise expires: a new exchange at the identity provider", cfg: ent,
			script: func(r *gtRun) {
				outs := answer(r, r.begin(1, gtServer), jag)
				sp, _ := gtOne[effects.SendProtected](r.t, issue(r, outs, "at-1"))
				r.feed(machine.ProtectedResponse{Request: 1, Credential: sp.Credential, Status: 200})
				r.now = r.now.Add(time.Hour - 30*time.Second)
				x, _ := gtOne[effects.Fetch](r.t, r.feed(machine.RequestStarted{Request: 2, Method: "POST", URL: gtServer}))
				if x.URL != gtIdPURL || gtForm(r.t, x).Get("scope") != "mcp:read" {
					r.t.Errorf("renewal went to %s with %s", x.URL, x.Body)
				}
				gtOne[effects.SendProtected](r.t, issue(r, answer(r, []gtOut{{E: x}}, jag), "at-2"))
			},
			want: []string{gtLoaded, gtDiscover, gtFoundPRM,
				"discovering_issuer -identity_exchange_started-> exchanging_identity",
				"exchanging_identity -identity_exchanged-> requesting_token", gtIssued,
				"authenticated -identity_exchange_started-> exchanging_identity",
				"exchanging_identity -identity_exchanged-> requesting_token", gtIssued},
		},
		{
			name: "client credentials refused", cfg: machine.Config{Grants: gtCC, Clients: []effects.Client{gtBasicCli}},
			script: func(r *gtRun) {
				outs := answer(r, r.begin(1, gtServer), gtJSON(0, 401, map[string]any{"error": "invalid_client"}, nil))
				fail, _ := gtOne[effects.Fail](r.t, outs)
				want := &machine.TokenError{Grant: "client_credentials", Issuer: gtIssuer, Err: &machine.OAuthError{Status: 401, Code: "invalid_client"}}
				if diff := cmp.Diff(want, fail.Err, gtErrCmp); diff != "" {
					r.t.Errorf("error (-want +got):\n%s", diff)
				}
			},
			want: []string{gtLoaded, gtDiscover, gtFoundPRM, gtReady, "requesting_token -attempt_failed-> unauthenticated"},
		},
		{
			name: "workload refused: no retry, no other grant",
			cfg:  machine.Config{Grants: []machine.Grant{machine.GrantWorkloadIdentity, machine.GrantClientCredentials}, Clients: []effects.Client{gtBasicCli}},
			script: func(r *gtRun) {
				outs := answer(r, r.begin(1, gtServer), gtJSON(0, 400, map[string]any{"error": "invalid_grant"}, nil))
				fail, _ := gtOne[effects.Fail](r.t, outs)
				want := &machine.TokenError{Grant: gtJWTBear, Issuer: gtIssuer, Err: &machine.OAuthError{Status: 400, Code: "invalid_grant"}}
				if diff := cmp.Diff(want, fail.Err, gtErrCmp); diff != "" {
					r.t.Errorf("error (-want +got):\n%s", diff)
				}
			},
			want: []string{gtLoaded, gtDiscover, gtFoundPRM, gtReady, "requesting_token -attempt_failed-> unauthenticated"},
		},
		{
			name: "identity provider refuses", cfg: ent,
			script: func(r *gtRun) {
				outs := answer(r, r.begin(1, gtServer), gtJSON(0, 400, map[string]any{"error": "invalid_grant"}, nil))
				fail, _ := gtOne[effects.Fail](r.t, outs)
				want := &machine.TokenError{Grant: "token-exchange", Issuer: gtIdPURL, Err: &machine.OAuthError{Status: 400, Code: "invalid_grant"}}
				if diff := cmp.Diff(want, fail.Err, gtErrCmp); diff != "" {
					r.t.Errorf("error (-want +got):\n%s", diff)
				}
			},
			want: []string{gtLoaded, gtDiscover, gtFoundPRM,
				"discovering_issuer -identity_exchange_started-> exchanging_identity",
				"exchanging_identity -attempt_failed-> unauthenticated"},
		},
		{
			name: "identity provider answers something else than an ID-JAG", cfg: ent,
			script: func(r *gtRun) {
				outs := answer(r, r.begin(1, gtServer), gtJSON(0, 200, map[string]any{"access_token": "x", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer"}, nil))
				fail, _ := gtOne[effects.Fail](r.t, outs)
				var te *machine.TokenError
				if !errors.As(fail.Err, &te) || te.Issuer != gtIdPURL {
					r.t.Errorf("error %v, want a TokenError naming the identity provider", fail.Err)
				}
			},
			want: []string{gtLoaded, gtDiscover, gtFoundPRM,
				"discovering_issuer -identity_exchange_started-> exchanging_identity",
				"exchanging_identity -attempt_failed-> unauthenticated"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := gtStart(t, tc.cfg, nil)
			tc.script(r)
			if diff := cmp.Diff(tc.want, r.trans); diff != "" {
				t.Errorf("transitions (-want +got):\n%s", diff)
			}
		})
	}
}

// gtErrCmp compares OAuthErrors by status and code only.
var gtErrCmp = cmp.Comparer(func(a, b *machine.OAuthError) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Status == b.Status && a.Code == b.Code
})

// ---- the token requests ----

// gtRequest is what a token request carries, for cmp.Diff.
type gtRequest struct {
	Purpose effects.Purpose
	URL     string
	Header  map[string][]string
	Form    url.Values
	Sign    []effects.Signed // Claims zeroed; compared separately
	Supply  []effects.Supplied
}

func gtRequestOf(t *testing.T, f effects.Fetch) gtRequest {
	t.Helper()
	var sign []effects.Signed
	for _, s := range f.Sign {
		s.JWT.Claims = nil
		sign = append(sign, s)
	}
	return gtRequest{Purpose: f.Purpose, URL: f.URL, Header: f.Header, Form: gtForm(t, f), Sign: sign, Supply: f.Supply}
}

var gtFormHeader = map[string][]string{"Accept": {"application/json"}, "Content-Type": {"application/x-www-form-urlencoded"}}

func gtWithHeader(k, v string) map[string][]string {
	h := map[string][]string{k: {v}}
	for k, v := range gtFormHeader {
		h[k] = v
	}
	return h
}

// TestGrantTokenRequests: each grant's token request, header and form to
// the byte; client_id never accompanies a client assertion (RFC 7523 §3);
// the workload token is supplied as assertion, the ID token as
// subject_token.
func TestGrantTokenRequests(t *testing.T) {
	ccForm := url.Values{"grant_type": {"client_credentials"}, "resource": {gtServer}, "scope": {"mcp:read"}}
	keyed := effects.Client{ClientID: "svc", KeyID: "client", KeyAlg: "ES256"}
	assertion := effects.Signed{JWT: effects.JWT{KeyID: "client", Alg: "ES256", Type: "JWT"}, Form: "client_assertion"}
	for _, tc := range []struct {
		name string
		cfg  machine.Config
		meta func(map[string]any)
		want gtRequest
	}{
		{
			name: "client_secret_basic", cfg: machine.Config{Grants: gtCC, Clients: []effects.Client{gtBasicCli}},
			want: gtRequest{Purpose: effects.PurposeGrant, URL: gtTokenURL, Header: gtWithHeader("Authorization", gtBasic("svc", gtSecret)), Form: ccForm},
		},
		{
			name: "client_secret_post", cfg: machine.Config{Grants: gtCC, Clients: []effects.Client{gtBasicCli}},
			meta: func(m map[string]any) { m["token_endpoint_auth_methods_supported"] = []string{"client_secret_post"} },
			want: gtRequest{Purpose: effects.PurposeGrant, URL: gtTokenURL, Header: gtFormHeader,
				Form: url.Values{"grant_type": {"client_credentials"}, "resource": {gtServer}, "scope": {"mcp:read"}, "client_id": {"svc"}, "client_secret": {gtSecret}}},
		},
		{
			name: "private_key_jwt", cfg: machine.Config{Grants: gtCC, Clients: []effects.Client{keyed}},
			want: gtRequest{Purpose: effects.PurposeGrant, URL: gtTokenURL, Header: gtFormHeader,
				Form: url.Values{"grant_type": {"client_credentials"}, "resource": {gtServer}, "scope": {"mcp:read"}, "client_assertion_type": {gtAssert}},
				Sign: []effects.Signed{assertion}},
		},
		{
			name: "private_key_jwt, RS256 listed", cfg: machine.Config{Grants: gtCC, Clients: []effects.Client{{ClientID: "svc", KeyID: "client", KeyAlg: "RS256"}}},
			meta: func(m map[string]any) {
				m["token_endpoint_auth_signing_alg_values_supported"] = []string{"ES256", "RS256"}
			},
			want: gtRequest{Purpose: effects.PurposeGrant, URL: gtTokenURL, Header: gtFormHeader,
				Form: url.Values{"grant_type": {"client_credentials"}, "resource": {gtServer}, "scope": {"mcp:read"}, "client_assertion_type": {gtAssert}},
				Sign: []effects.Signed{{JWT: effects.JWT{KeyID: "client", Alg: "RS256", Type: "JWT"}, Form: "client_assertion"}}},
		},
		{
			name: "private_key_jwt, alg not listed: the secret instead", cfg: machine.Config{Grants: gtCC, Clients: []effects.Client{{ClientID: "svc", ClientSecret: gtSecret, KeyID: "client", KeyAlg: "EdDSA"}}},
			want: gtRequest{Purpose: effects.PurposeGrant, URL: gtTokenURL, Header: gtWithHeader("Authorization", gtBasic("svc", gtSecret)), Form: ccForm},
		},
		{
			name: "private_key_jwt, method not listed", cfg: machine.Config{Grants: gtCC, Clients: []effects.Client{{ClientID: "svc", ClientSecret: gtSecret, KeyID: "client", KeyAlg: "ES256"}}},
			meta: func(m map[string]any) { m["token_endpoint_auth_methods_supported"] = []string{"client_secret_basic"} },
			want: gtRequest{Purpose: effects.PurposeGrant, URL: gtTokenURL, Header: gtWithHeader("Authorization", gtBasic("svc", gtSecret)), Form: ccForm},
		},
		{
			name: "workload identity", cfg: machine.Config{Grants: []machine.Grant{machine.GrantWorkloadIdentity}},
			want: gtRequest{Purpose: effects.PurposeGrant, URL: gtTokenURL, Header: gtFormHeader,
				Form:   url.Values{"grant_type": {gtJWTBear}, "resource": {gtServer}, "scope": {"mcp:read"}},
				Supply: []effects.Supplied{{Source: effects.SourceWorkloadToken, Form: "assertion"}}},
		},
		{
			name: "workload identity with a configured client", cfg: machine.Config{Grants: []machine.Grant{machine.GrantWorkloadIdentity}, Clients: []effects.Client{gtBasicCli}},
			want: gtRequest{Purpose: effects.PurposeGrant, URL: gtTokenURL, Header: gtWithHeader("Authorization", gtBasic("svc", gtSecret)),
				Form:   url.Values{"grant_type": {gtJWTBear}, "resource": {gtServer}, "scope": {"mcp:read"}},
				Supply: []effects.Supplied{{Source: effects.SourceWorkloadToken, Form: "assertion"}}},
		},
		{
			name: "enterprise: the token exchange",
			cfg: machine.Config{Grants: []machine.Grant{machine.GrantEnterprise}, Clients: []effects.Client{gtBasicCli},
				IdentityProvider: machine.IdentityProvider{TokenEndpoint: gtIdPURL, ClientID: "idp-client"}},
			want: gtRequest{Purpose: effects.PurposeIdentityExchange, URL: gtIdPURL, Header: gtFormHeader,
				Form: url.Values{
					"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
					"subject_token_type":   {"urn:ietf:params:oauth:token-type:id_token"},
					"requested_token_type": {gtIDJAG},
					"audience":             {gtIssuer},
					"resource":             {gtServer},
					"scope":                {"mcp:read"},
					"client_id":            {"idp-client"},
				},
				Supply: []effects.Supplied{{Source: effects.SourceIDToken, Form: "subject_token"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := gtStart(t, tc.cfg, tc.meta)
			f, _ := gtOne[effects.Fetch](t, r.begin(1, gtServer))
			if diff := cmp.Diff(tc.want, gtRequestOf(t, f)); diff != "" {
				t.Errorf("token request (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("enterprise: the jwt-bearer grant with the ID-JAG", func(t *testing.T) {
		r := gtStart(t, machine.Config{Grants: []machine.Grant{machine.GrantEnterprise}, Clients: []effects.Client{gtBasicCli},
			IdentityProvider: machine.IdentityProvider{TokenEndpoint: gtIdPURL}}, nil)
		x, _ := gtOne[effects.Fetch](t, r.begin(1, gtServer))
		if gtForm(t, x).Has("client_id") {
			t.Errorf("client_id sent to the identity provider without one configured")
		}
		f, _ := gtOne[effects.Fetch](t, r.feed(gtJSON(x.Seq, 200, map[string]any{"access_token": "jag-1", "issued_token_type": gtIDJAG, "token_type": "N_A"}, nil)))
		want := gtRequest{Purpose: effects.PurposeGrant, URL: gtTokenURL, Header: gtWithHeader("Authorization", gtBasic("svc", gtSecret)),
			Form: url.Values{"grant_type": {gtJWTBear}, "assertion": {"jag-1"}, "resource": {gtServer}, "scope": {"mcp:read"}}}
		if diff := cmp.Diff(want, gtRequestOf(t, f)); diff != "" {
			t.Errorf("jwt-bearer request (-want +got):\n%s", diff)
		}
	})
}

// TestGrantClientAssertionClaims: RFC 7523 §2.2, §3: iss = sub = the client
// id, aud = the issuer, iat now, exp five minutes on, a fresh jti from the
// entropy; each grant a new jti.
func TestGrantClientAssertionClaims(t *testing.T) {
	r := gtStart(t, machine.Config{Grants: gtCC, Clients: []effects.Client{{ClientID: "svc", KeyID: "client", KeyAlg: "ES256"}}}, nil)
	outs := r.begin(1, gtServer)
	f, state := gtOne[effects.Fetch](t, outs)
	want := map[string]any{
		"iss": "svc", "sub": "svc", "aud": gtIssuer,
		"iat": float64(gtT0.Unix()), "exp": float64(gtT0.Add(5 * time.Minute).Unix()),
		"jti": gtJTI(t, state, 0),
	}
	if diff := cmp.Diff(want, gtClaims(t, f.Sign[0].JWT)); diff != "" {
		t.Errorf("assertion claims (-want +got):\n%s", diff)
	}
	form := gtForm(t, f)
	if form.Get("client_assertion_type") != gtAssert || form.Has("client_id") || form.Has("client_assertion") || form.Has("client_secret") {
		t.Errorf("form %v: want client_assertion_type only (the driver adds the assertion), no client_id", form)
	}

	// The next grant, later: new times, a new jti.
	sp, _ := gtOne[effects.SendProtected](t, r.feed(gtToken(f.Seq, "at-1", "Bearer")))
	r.feed(machine.ProtectedResponse{Request: 1, Credential: sp.Credential, Status: 200})
	r.now = r.now.Add(59*time.Minute + 30*time.Second)
	f2, state2 := gtOne[effects.Fetch](t, r.feed(machine.RequestStarted{Request: 2, Method: "POST", URL: gtServer}))
	want["iat"], want["exp"] = float64(r.now.Unix()), float64(r.now.Add(5*time.Minute).Unix())
	want["jti"] = gtJTI(t, state2, 0)
	if diff := cmp.Diff(want, gtClaims(t, f2.Sign[0].JWT)); diff != "" {
		t.Errorf("second assertion claims (-want +got):\n%s", diff)
	}
	if want["jti"] == gtJTI(t, state, 0) {
		t.Error("the second assertion reuses the jti")
	}
}

// gtDPoPMeta turns DPoP on at the authorization server.
func gtDPoPMeta(m map[string]any) { m["dpop_signing_alg_values_supported"] = []string{"ES256"} }

var gtProofJWT = effects.JWT{KeyID: "dpop", Alg: "ES256", Type: "dpop+jwt", EmbedJWK: true}

// gtProof returns the DPoP proof a fetch carries, and its claims.
func gtProof(t *testing.T, f effects.Fetch) (effects.JWT, map[string]any) {
	t.Helper()
	for _, s := range f.Sign {
		if s.Header == "DPoP" {
			return s.JWT, gtClaims(t, s.JWT)
		}
	}
	t.Fatalf("no DPoP proof in %+v", f.Sign)
	return effects.JWT{}, nil
}

// TestGrantDPoPProofs: the proofs of a token request and of protected
// requests: htm, htu (no query, no fragment), iat, a jti from the entropy,
// ath of the token on resource requests, and nonces: the authorization
// server's and the resource server's, each where it belongs; every
// use_dpop_nonce answered once.
func TestGrantDPoPProofs(t *testing.T) {
	r := gtStart(t, machine.Config{Grants: gtCC, Clients: []effects.Client{{ClientID: "svc", KeyID: "client", KeyAlg: "ES256"}}}, gtDPoPMeta)
	target := gtServer + "?session=1#frag"

	// The grant: the assertion draws first, then the proof.
	f, state := gtOne[effects.Fetch](t, r.begin(1, target))
	j, claims := gtProof(t, f)
	if diff := cmp.Diff(gtProofJWT, effects.JWT{KeyID: j.KeyID, Alg: j.Alg, Type: j.Type, EmbedJWK: j.EmbedJWK}); diff != "" {
		t.Errorf("proof JWT (-want +got):\n%s", diff)
	}
	want := map[string]any{"jti": gtJTI(t, state, 1), "htm": "POST", "htu": gtTokenURL, "iat": float64(gtT0.Unix())}
	if diff := cmp.Diff(want, claims); diff != "" {
		t.Errorf("token request proof (-want +got):\n%s", diff)
	}
	firstForm := gtForm(t, f)

	// use_dpop_nonce: the same grant again, once, with the nonce and a
	// fresh assertion and proof.
	outs := r.feed(gtJSON(f.Seq, 400, map[string]any{"error": "use_dpop_nonce"}, map[string][]string{"Dpop-Nonce": {"as-1"}}))
	f2, state2 := gtOne[effects.Fetch](t, outs)
	_, claims2 := gtProof(t, f2)
	want = map[string]any{"jti": gtJTI(t, state2, 1), "htm": "POST", "htu": gtTokenURL, "iat": float64(gtT0.Unix()), "nonce": "as-1"}
	if diff := cmp.Diff(want, claims2); diff != "" {
		t.Errorf("retried token request proof (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(firstForm, gtForm(t, f2)); diff != "" {
		t.Errorf("retried form (-first +retry):\n%s", diff)
	}
	if a, b := gtClaims(t, f.Sign[0].JWT)["jti"], gtClaims(t, f2.Sign[0].JWT)["jti"]; a == b {
		t.Errorf("the retried assertion reuses jti %v", a)
	}

	// The DPoP token: Authorization DPoP, a proof with ath; the AS nonce
	// does not go to the RS.
	at := "at-1"
	sp, state3 := gtOne[effects.SendProtected](t, r.feed(gtJSON(f2.Seq, 200, map[string]any{"access_token": at, "token_type": "DPoP", "expires_in": 3600}, nil)))
	if diff := cmp.Diff(map[string][]string{"Authorization": {"DPoP " + at}}, sp.Header); diff != "" {
		t.Errorf("protected header (-want +got):\n%s", diff)
	}
	if sp.Proof == nil {
		t.Fatal("protected send without a proof")
	}
	want = map[string]any{"jti": gtJTI(t, state3, 0), "htm": "POST", "htu": gtServer, "iat": float64(gtT0.Unix()), "ath": gtAth(at)}
	if diff := cmp.Diff(want, gtClaims(t, gtBound(t, *sp.Proof))); diff != "" {
		t.Errorf("resource proof (-want +got):\n%s", diff)
	}

	// The RS asks for its nonce: answered once, with a fresh proof.
	nonceChallenge := []string{`DPoP error="use_dpop_nonce", error_description="nonce"`}
	sp2, state4 := gtOne[effects.SendProtected](t, r.feed(machine.ProtectedResponse{Request: 1, Credential: sp.Credential, Status: 401, Challenges: nonceChallenge, Nonce: "rs-1"}))
	want = map[string]any{"jti": gtJTI(t, state4, 0), "htm": "POST", "htu": gtServer, "iat": float64(gtT0.Unix()), "ath": gtAth(at), "nonce": "rs-1"}
	if diff := cmp.Diff(want, gtClaims(t, gtBound(t, *sp2.Proof))); diff != "" {
		t.Errorf("resource proof with the nonce (-want +got):\n%s", diff)
	}
	gtOne[effects.Deliver](t, r.feed(machine.ProtectedResponse{Request: 1, Credential: sp2.Credential, Status: 200}))

	// A later request carries the remembered RS nonce, with a GET's htm.
	r.now = r.now.Add(time.Second)
	sp3, state5 := gtOne[effects.SendProtected](t, r.feed(machine.RequestStarted{Request: 2, Method: "GET", URL: gtServer}))
	want = map[string]any{"jti": gtJTI(t, state5, 0), "htm": "GET", "htu": gtServer, "iat": float64(r.now.Unix()), "ath": gtAth(at), "nonce": "rs-1"}
	if diff := cmp.Diff(want, gtClaims(t, gtBoundTo(t, *sp3.Proof, "GET"))); diff != "" {
		t.Errorf("later resource proof (-want +got):\n%s", diff)
	}

	// A second nonce challenge for the same request is not answered with
	// the same credential again.
	sp4, _ := gtOne[effects.SendProtected](t, r.feed(machine.ProtectedResponse{Request: 2, Credential: sp3.Credential, Status: 401, Challenges: nonceChallenge, Nonce: "rs-2"}))
	outs = r.feed(machine.ProtectedResponse{Request: 2, Credential: sp4.Credential, Status: 401, Challenges: nonceChallenge, Nonce: "rs-3"})
	for _, o := range outs {
		if s, ok := o.E.(effects.SendProtected); ok && s.Credential == sp4.Credential {
			t.Errorf("a third send with the same credential after two nonce challenges: %+v", s)
		}
	}
}

// TestGrantDPoPNonceAnsweredOnce: a second use_dpop_nonce at the token
// endpoint ends the attempt with the error.
func TestGrantDPoPNonceAnsweredOnce(t *testing.T) {
	r := gtStart(t, machine.Config{Grants: gtCC, Clients: []effects.Client{gtBasicCli}}, gtDPoPMeta)
	f, _ := gtOne[effects.Fetch](t, r.begin(1, gtServer))
	f2, _ := gtOne[effects.Fetch](t, r.feed(gtJSON(f.Seq, 400, map[string]any{"error": "use_dpop_nonce"}, map[string][]string{"Dpop-Nonce": {"n1"}})))
	if _, c := gtProof(t, f2); c["nonce"] != "n1" {
		t.Errorf("retry proof nonce %v", c["nonce"])
	}
	fail, _ := gtOne[effects.Fail](t, r.feed(gtJSON(f2.Seq, 400, map[string]any{"error": "use_dpop_nonce"}, map[string][]string{"Dpop-Nonce": {"n2"}})))
	want := &machine.TokenError{Grant: "client_credentials", Issuer: gtIssuer, Err: &machine.OAuthError{Status: 400, Code: "use_dpop_nonce"}}
	if diff := cmp.Diff(want, fail.Err, gtErrCmp); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	// Without a DPoP-Nonce header there is nothing to answer with.
	r = gtStart(t, machine.Config{Grants: gtCC, Clients: []effects.Client{gtBasicCli}}, gtDPoPMeta)
	f, _ = gtOne[effects.Fetch](t, r.begin(1, gtServer))
	gtOne[effects.Fail](t, r.feed(gtJSON(f.Seq, 400, map[string]any{"error": "use_dpop_nonce"}, nil)))
}

// TestGrantDPoPModes: proofs only when the server advertises the algorithm
// (or configuration demands them); never to the identity provider.
func TestGrantDPoPModes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   machine.DPoPMode
		algs   []string
		proofs bool
	}{
		{"auto, advertised", machine.DPoPAuto, []string{"ES256"}, true},
		{"auto, other alg", machine.DPoPAuto, []string{"RS256"}, false},
		{"auto, not advertised", machine.DPoPAuto, nil, false},
		{"always", machine.DPoPAlways, nil, true},
		{"never", machine.DPoPNever, []string{"ES256"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := machine.Config{Grants: []machine.Grant{machine.GrantEnterprise}, Clients: []effects.Client{gtBasicCli}, DPoP: tc.mode,
				IdentityProvider: machine.IdentityProvider{TokenEndpoint: gtIdPURL, ClientID: "idp-client"}}
			r := gtStart(t, cfg, func(m map[string]any) {
				if tc.algs != nil {
					m["dpop_signing_alg_values_supported"] = tc.algs
				}
			})
			x, _ := gtOne[effects.Fetch](t, r.begin(1, gtServer))
			if len(x.Sign) != 0 {
				t.Errorf("the identity exchange carries signatures %+v", x.Sign)
			}
			f, _ := gtOne[effects.Fetch](t, r.feed(gtJSON(x.Seq, 200, map[string]any{"access_token": "jag-1", "issued_token_type": gtIDJAG, "token_type": "N_A"}, nil)))
			if got := len(f.Sign) == 1 && f.Sign[0].Header == "DPoP"; got != tc.proofs {
				t.Errorf("grant signs %+v, want a proof: %v", f.Sign, tc.proofs)
			}
			tokenType := "Bearer"
			if tc.proofs {
				tokenType = "DPoP"
			}
			sp, _ := gtOne[effects.SendProtected](t, r.feed(gtToken(f.Seq, "at-1", tokenType)))
			if got := sp.Proof != nil; got != tc.proofs || sp.Header["Authorization"][0] != tokenType+" at-1" {
				t.Errorf("protected send %+v", sp)
			}
		})
	}
}

// TestGrantDeterministic: the same seed gives the same effects, to the
// byte (jti included); another seed other jti.
func TestGrantDeterministic(t *testing.T) {
	run := func(seed uint64) []effects.Effect {
		r := gtStart(t, machine.Config{Grants: gtCC, Clients: []effects.Client{{ClientID: "svc", KeyID: "client", KeyAlg: "ES256"}}}, gtDPoPMeta)
		r.rng = gtSeeded(seed)
		var all []effects.Effect
		outs := r.begin(1, gtServer)
		f, _ := gtOne[effects.Fetch](t, outs)
		all = append(all, f)
		for _, o := range r.feed(gtToken(f.Seq, "at-1", "DPoP")) {
			all = append(all, o.E)
		}
		return all
	}
	a, b, c := run(7), run(7), run(8)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same seed, different effects:\n%+v\n%+v", a, b)
	}
	if reflect.DeepEqual(a, c) {
		t.Error("another seed gave the same effects")
	}
	ja := gtClaims(t, a[0].(effects.Fetch).Sign[0].JWT)["jti"].(string)
	jc := gtClaims(t, c[0].(effects.Fetch).Sign[0].JWT)["jti"].(string)
	if ja == jc || len(ja) != 22 || strings.ContainsAny(ja, "+/=") {
		t.Errorf("jti %q and %q: want distinct 128-bit base64url values", ja, jc)
	}
}
