package machine_test

// The hostile world of the machine properties (properties_test.go): one MCP
// server, two authorization servers (one with a path), a user agent and a
// store, small enough to be honest on purpose: the token endpoint checks
// codes against their PKCE challenge and redeems refresh tokens once, the
// MCP server accepts only tokens it knows, unexpired, presented in the way
// they were bound (Bearer, or DPoP with a proof and, when it asks, its
// nonce). Each answer to an effect is either the honest one or, when rapid
// says so, a hostile one: an error status, a transport failure, a
// malformed, duplicated-key or lying document, a forged or broken
// authorization response, a step-up loop, a nonce challenge. Every secret
// the world hands out is recorded in the harness, so the properties can
// follow where it goes.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"pgregory.net/rapid"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// The places of the world.
const (
	mcpServer   = "https://mcp.example/mcp"
	mcpOrigin   = "https://mcp.example"
	prmPathURL  = "https://mcp.example/.well-known/oauth-protected-resource/mcp"
	prmRootURL  = "https://mcp.example/.well-known/oauth-protected-resource"
	issuerA     = "https://auth.example"
	issuerB     = "https://auth2.example/tenant" // an issuer with a path: three metadata candidates
	evilOrigin  = "https://evil.example"
	redirectURI = "http://127.0.0.1:8765/callback"
	cimdURL     = "https://app.example/oauth/client.json"
	preClientID = "pre-registered-client"
	preSecret   = "SECRETPRE00000000Z"
)

// epoch is the time every run starts at.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// metadataURLs are where each authorization server publishes its metadata
// (RFC 8414 §3.1 path insertion, OIDC Discovery), written out by hand so the
// world does not lean on the code under test.
var metadataURLs = map[string][]string{
	issuerA: {
		"https://auth.example/.well-known/oauth-authorization-server",
		"https://auth.example/.well-known/openid-configuration",
	},
	issuerB: {
		"https://auth2.example/.well-known/oauth-authorization-server/tenant",
		"https://auth2.example/.well-known/openid-configuration/tenant",
		"https://auth2.example/tenant/.well-known/openid-configuration",
	},
	mcpOrigin: { // a 2025-03-26 server that is its own authorization server
		"https://mcp.example/.well-known/oauth-authorization-server",
	},
}

// clientMode is how the configuration identifies the client.
type clientMode int

const (
	dynamicPublic       clientMode = iota // RFC 7591, token_endpoint_auth_method none
	dynamicConfidential                   // RFC 7591 with a client secret
	preRegistered                         // a configured id and secret, bound to issuerA
	metadataDocument                      // a Client ID Metadata Document URL
	clientCredentials                     // no user: the client_credentials grant with a configured secret
)

// world is the honest core: what each server publishes, which credentials
// are valid.
type world struct {
	prm        string   // where the MCP server publishes its PRM: "path", "root", or "" (none: legacy)
	servers    []string // the PRM's authorization_servers
	legacyMeta bool     // with no PRM, the MCP server's origin publishes metadata itself
	issParam   bool     // authorization servers send iss in authorization responses (RFC 9207)
	register   bool     // authorization servers offer dynamic registration
	cimd       bool     // authorization servers accept client metadata documents
	lifetime   int64    // expires_in of issued access tokens; -1: not sent
	rotate     bool     // a refresh rotates the refresh token
	authMethod string   // what a confidential client asks for at registration
	preIssuer  string   // the issuer a configured client is bound to
	dpop       bool     // authorization servers bind tokens to a key (RFC 9449)
	asNonce    string   // with DPoP: the nonce the token endpoint requires (RFC 9449 §8), "" for none
	rsNonce    string   // with DPoP: the nonce the MCP server requires (RFC 9449 §9), "" for none

	n       int                   // counter behind every value the world makes up
	access  map[string]time.Time  // valid access tokens and their expiry (zero: none)
	bound   map[string]bool       // access tokens bound to a DPoP key
	refresh map[string]string     // valid refresh tokens and their issuer
	codes   map[string]*codeGrant // authorization codes issued
}

type codeGrant struct {
	challenge string
	used      bool
}

// drawWorld draws the honest world and the configuration that meets it.
func drawWorld(t *rapid.T) (*world, machine.Config) {
	w := &world{
		prm:        rapid.SampledFrom([]string{"path", "root", ""}).Draw(t, "prm_location"),
		servers:    rapid.SampledFrom([][]string{{issuerA}, {issuerB}, {issuerA, issuerB}, {issuerB, issuerA}}).Draw(t, "authorization_servers"),
		legacyMeta: rapid.Bool().Draw(t, "legacy_metadata"),
		issParam:   rapid.Bool().Draw(t, "iss_parameter"),
		register:   rapid.IntRange(0, 9).Draw(t, "registration") > 0,
		cimd:       rapid.Bool().Draw(t, "cimd_supported"),
		lifetime:   rapid.SampledFrom([]int64{3600, 600, 90, -1, 30}).Draw(t, "expires_in"),
		rotate:     rapid.Bool().Draw(t, "rotate_refresh"),
		authMethod: rapid.SampledFrom([]string{"client_secret_post", "client_secret_basic"}).Draw(t, "auth_method"),
		dpop:       rapid.IntRange(0, 2).Draw(t, "dpop") == 0,
		access:     map[string]time.Time{},
		bound:      map[string]bool{},
		refresh:    map[string]string{},
		codes:      map[string]*codeGrant{},
	}
	if w.dpop && rapid.Bool().Draw(t, "as_nonce") {
		w.asNonce = "as-nonce-0"
	}
	if w.dpop && rapid.Bool().Draw(t, "rs_nonce") {
		w.rsNonce = "rs-nonce-0"
	}
	cfg := machine.Config{Server: mcpServer, RedirectURI: redirectURI}
	// A configured client is bound to the issuer the honest world has the
	// machine validate first.
	w.preIssuer = w.servers[0]
	if w.prm == "" {
		w.preIssuer = mcpOrigin
	}
	switch clientMode(rapid.IntRange(0, 4).Draw(t, "client_mode")) {
	case dynamicConfidential:
		cfg.TokenEndpointAuthMethod = w.authMethod
	case preRegistered:
		cfg.Clients = []effects.Client{{Issuer: w.preIssuer, ClientID: preClientID, ClientSecret: preSecret}}
	case metadataDocument:
		cfg.ClientMetadataURL = cimdURL
	case clientCredentials:
		cfg.Grants = []machine.Grant{machine.GrantClientCredentials}
		cfg.Clients = []effects.Client{{Issuer: w.preIssuer, ClientID: preClientID, ClientSecret: preSecret}}
	}
	if rapid.IntRange(0, 4).Draw(t, "old_protocol") == 0 {
		cfg.ProtocolVersion = machine.Version20250326
	}
	cfg.NoRefreshTokens = rapid.IntRange(0, 9).Draw(t, "no_refresh_tokens") == 0
	return w, cfg
}

// made returns a new value of the world: prefix, a counter, and "Z", so no
// two values are substrings of each other.
func (h *harness) made(prefix string) string {
	h.w.n++
	return fmt.Sprintf("%s%08dZ", prefix, h.w.n)
}

// issueTokens makes a valid access token (and refresh token) at issuer.
func (h *harness) issueTokens(issuer string, withRefresh bool) (access, refresh string, expires time.Time) {
	access = h.made("AT")
	if h.w.lifetime >= 0 {
		expires = h.now.Add(time.Duration(h.w.lifetime) * time.Second)
	}
	h.w.access[access] = expires
	h.secrets.access[access] = true
	if withRefresh {
		refresh = h.made("RT")
		h.w.refresh[refresh] = issuer
		h.secrets.bound[refresh] = issuer
	}
	return access, refresh, expires
}

// registerClient makes a client at issuer, with a secret when confidential.
func (h *harness) registerClient(issuer, method string) effects.Client {
	c := effects.Client{Issuer: issuer, ClientID: h.made("CLIENT"), AuthMethod: method,
		RedirectURIs: []string{redirectURI}, Source: effects.ClientDynamic}
	if method != "none" && method != "" {
		c.ClientSecret = h.made("SECRET")
		h.secrets.bound[c.ClientSecret] = issuer
	}
	return c
}

func (h *harness) clientMethod() string {
	if h.cfg.TokenEndpointAuthMethod == "" {
		return "none"
	}
	return h.cfg.TokenEndpointAuthMethod
}

// The parts of the world that lie independently of each other, so that a
// run can have an honest authorization server and a hostile resource
// server, or the reverse.
const (
	auxiliary = iota // discovery, registration, token endpoints
	resource         // the MCP server's answers
	userAgent        // the authorization response
	store            // what the store holds
	requester        // where the caller's requests go
	parts
)

var partNames = [parts]string{"auxiliary", "resource", "user_agent", "store", "requester"}

// hostile draws whether the next answer of part lies; never during the
// honest drain.
func (h *harness) hostile(part int, label string) bool {
	if h.honest || h.hostilePct[part] == 0 {
		return false
	}
	return rapid.IntRange(0, 99).Draw(h.t, label) < h.hostilePct[part]
}

// --- auxiliary requests ---------------------------------------------------

var commonFetchVariants = []string{
	"transport_failure", "404", "410", "500", "503", "429", "302", "400_empty",
	"not_json", "html", "truncated_json", "json_null", "json_array",
}

var fetchVariants = map[effects.Purpose][]string{
	effects.PurposeResourceMetadata: {
		"resource_other_origin", "resource_lookalike", "resource_userinfo", "resource_array",
		"duplicate_resource", "no_servers", "http_server", "evil_server", "resource_uppercase",
	},
	effects.PurposeServerMetadata: {
		"wrong_issuer", "no_s256", "plain_only", "http_endpoint", "other_origin_endpoints",
		"duplicate_issuer", "no_token_endpoint", "no_code_response_type", "iss_flag_flipped",
	},
	effects.PurposeRegistration: {
		"invalid_client_metadata", "no_client_id", "duplicate_client_id", "error_with_200",
		"client_id_number", "secret_with_space",
	},
	effects.PurposeToken:   tokenVariants,
	effects.PurposeRefresh: tokenVariants,
	effects.PurposeGrant:   tokenVariants,
}

var tokenVariants = []string{
	"invalid_grant", "invalid_client", "temporarily_unavailable", "server_error_400",
	"no_access_token", "token_type_mac", "negative_expires_in", "huge_expires_in",
	"duplicate_access_token", "slack_ok_false", "github_error_200", "scope_array",
	"access_token_with_space", "unknown_token", "no_refresh_token", "expires_in_string",
	"expires_now", "form_encoded", "use_dpop_nonce",
}

// answerFetch answers an auxiliary request.
func (h *harness) answerFetch(f *sentFetch) (machine.Input, inputNote) {
	note := inputNote{fetch: f}
	if h.hostile(auxiliary, "fetch_hostile") {
		variants := append(append([]string(nil), commonFetchVariants...), fetchVariants[f.eff.Purpose]...)
		v := rapid.SampledFrom(variants).Draw(h.t, "fetch_variant")
		note.variant = v
		if in, ok := h.hostileCommon(f, v, &note); ok {
			return in, note
		}
		return h.hostileFetch(f, v, &note), note
	}
	note.variant = "honest"
	return h.honestFetch(f, &note), note
}

func response(seq uint64, status int, body string) machine.FetchResponse {
	return machine.FetchResponse{Seq: seq, Status: status,
		Header: map[string][]string{"Content-Type": {"application/json"}}, Body: []byte(body)}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func (h *harness) hostileCommon(f *sentFetch, v string, note *inputNote) (machine.Input, bool) {
	seq := f.eff.Seq
	switch v {
	case "transport_failure":
		note.transient = true
		return machine.FetchFailed{Seq: seq, Reason: "connection reset"}, true
	case "404", "410", "500", "503", "429", "302", "400_empty":
		status := map[string]int{"404": 404, "410": 410, "500": 500, "503": 503, "429": 429, "302": 302, "400_empty": 400}[v]
		note.transient = status >= 500 || status == 429
		return machine.FetchResponse{Seq: seq, Status: status, Header: map[string][]string{"Location": {evilOrigin + "/x"}}}, true
	case "not_json":
		return response(seq, 200, "this is not json"), true
	case "html":
		return machine.FetchResponse{Seq: seq, Status: 200, Header: map[string][]string{"Content-Type": {"text/html"}},
			Body: []byte("<html><body>login</body></html>")}, true
	case "truncated_json":
		return response(seq, 200, `{"resource": "https://mcp.ex`), true
	case "json_null":
		return response(seq, 200, "null"), true
	case "json_array":
		return response(seq, 200, "[]"), true
	}
	return nil, false
}

func (h *harness) honestFetch(f *sentFetch, note *inputNote) machine.Input {
	seq := f.eff.Seq
	switch f.eff.Purpose {
	case effects.PurposeResourceMetadata:
		status, body := h.honestPRM(f.eff.URL)
		return response(seq, status, body)
	case effects.PurposeServerMetadata:
		for issuer, urls := range metadataURLs {
			for _, u := range urls {
				if u != f.eff.URL || (issuer == mcpOrigin && !h.w.legacyMeta) {
					continue
				}
				return response(seq, 200, mustJSON(h.metadataDoc(issuer)))
			}
		}
		return response(seq, 404, `{"error":"not_found"}`)
	case effects.PurposeRegistration:
		var req struct {
			Method string `json:"token_endpoint_auth_method"`
		}
		if err := json.Unmarshal(f.eff.Body, &req); err != nil {
			h.t.Fatalf("registration request body is not json: %v", err)
		}
		c := h.registerClient(h.s.Discovery.Authorization.Issuer, req.Method)
		doc := map[string]any{"client_id": c.ClientID, "token_endpoint_auth_method": req.Method,
			"redirect_uris": []string{redirectURI}}
		if c.ClientSecret != "" {
			doc["client_secret"] = c.ClientSecret
		}
		return response(seq, 201, mustJSON(doc))
	case effects.PurposeToken, effects.PurposeRefresh, effects.PurposeGrant:
		status, body := h.honestToken(f, note)
		r := response(seq, status, body)
		if note.asNonce != "" {
			r.Header["Dpop-Nonce"] = []string{note.asNonce}
		}
		return r
	}
	h.t.Fatalf("fetch with unknown purpose %q", f.eff.Purpose)
	return nil
}

func (h *harness) honestPRM(u string) (int, string) {
	var resource string
	switch {
	case u == prmPathURL && h.w.prm == "path":
		resource = mcpServer
	case u == prmRootURL && h.w.prm == "root":
		resource = mcpOrigin // RFC 9728 §3.3: the identifier the root URL was built from
	default:
		return 404, `{"error":"not_found"}`
	}
	return 200, mustJSON(map[string]any{"resource": resource, "authorization_servers": h.w.servers,
		"scopes_supported": []string{"mcp:read", "mcp:write"}})
}

func (h *harness) metadataDoc(issuer string) map[string]any {
	m := map[string]any{
		"issuer":                                         issuer,
		"authorization_endpoint":                         issuer + "/authorize",
		"token_endpoint":                                 issuer + "/token",
		"response_types_supported":                       []string{"code"},
		"code_challenge_methods_supported":               []string{"S256"},
		"scopes_supported":                               []string{"mcp:read", "mcp:write", "offline_access"},
		"token_endpoint_auth_methods_supported":          []string{"none", "client_secret_post", "client_secret_basic"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token", "client_credentials"},
		"authorization_response_iss_parameter_supported": h.w.issParam,
		"client_id_metadata_document_supported":          h.w.cimd,
	}
	if h.w.register {
		m["registration_endpoint"] = issuer + "/register"
	}
	if h.w.dpop {
		m["dpop_signing_alg_values_supported"] = []string{"ES256"}
	}
	return m
}

// honestToken runs the token endpoint: it checks the code and its PKCE
// verifier, or the refresh token, and issues a credential.
func (h *harness) honestToken(f *sentFetch, note *inputNote) (int, string) {
	form, err := url.ParseQuery(string(f.eff.Body))
	if err != nil {
		h.t.Fatalf("token request body is not a form: %v", err)
	}
	issuer := h.s.Discovery.Authorization.Issuer
	if p := dpopProof(f.eff); p != nil && h.w.asNonce != "" && proofNonce(p) != h.w.asNonce {
		note.asNonce = h.w.asNonce
		return 400, `{"error":"use_dpop_nonce","error_description":"use the nonce"}`
	}
	refused := func() (int, string) {
		note.invalidGrant = true
		return 400, `{"error":"invalid_grant","error_description":"the grant is not valid"}`
	}
	switch form.Get("grant_type") {
	case "authorization_code":
		g := h.w.codes[form.Get("code")]
		if g == nil || g.used || s256(form.Get("code_verifier")) != g.challenge {
			return refused()
		}
		g.used = true
	case "refresh_token":
		rt := form.Get("refresh_token")
		if _, ok := h.w.refresh[rt]; !ok {
			return refused()
		}
		if h.w.rotate {
			delete(h.w.refresh, rt)
		}
	case "client_credentials": // RFC 6749 §4.4.3: no refresh token
		return 200, h.tokenBody(issuer, false, dpopProof(f.eff) != nil)
	default:
		return 400, `{"error":"unsupported_grant_type"}`
	}
	return 200, h.tokenBody(issuer, f.eff.Purpose == effects.PurposeToken || h.w.rotate, dpopProof(f.eff) != nil)
}

// proofNonce is the nonce claim of a DPoP proof.
func proofNonce(p *effects.JWT) string {
	var c struct{ Nonce string }
	_ = json.Unmarshal(p.Claims, &c)
	return c.Nonce
}

// dpopProof is the DPoP proof a request carries, if any.
func dpopProof(f effects.Fetch) *effects.JWT {
	for _, s := range f.Sign {
		if s.Header == "DPoP" {
			return &s.JWT
		}
	}
	return nil
}

func (h *harness) tokenBody(issuer string, withRefresh, dpop bool) string {
	at, rt, _ := h.issueTokens(issuer, withRefresh)
	doc := map[string]any{"access_token": at, "token_type": "Bearer"}
	if dpop {
		h.w.bound[at] = true
		doc["token_type"] = "DPoP"
	}
	if rt != "" {
		doc["refresh_token"] = rt
	}
	if h.w.lifetime >= 0 {
		doc["expires_in"] = h.w.lifetime
	}
	return mustJSON(doc)
}

func (h *harness) hostileFetch(f *sentFetch, v string, note *inputNote) machine.Input {
	seq := f.eff.Seq
	prm := func(resource any, servers any) machine.Input {
		return response(seq, 200, mustJSON(map[string]any{"resource": resource, "authorization_servers": servers}))
	}
	issuer := issuerA
	if a := h.s.Attempt; a.Server < len(a.Servers) {
		issuer = a.Servers[a.Server]
	}
	meta := func(edit func(map[string]any)) machine.Input {
		m := h.metadataDoc(issuer)
		edit(m)
		return response(seq, 200, mustJSON(m))
	}
	switch v {
	// Protected resource metadata (RFC 9728).
	case "resource_other_origin":
		return prm(evilOrigin+"/mcp", h.w.servers)
	case "resource_lookalike":
		return prm("https://mcp.example.evil.example/mcp", h.w.servers)
	case "resource_userinfo":
		return prm("https://mcp.example@evil.example/mcp", h.w.servers)
	case "resource_array":
		return prm([]string{mcpServer}, h.w.servers)
	case "duplicate_resource":
		return response(seq, 200, fmt.Sprintf(`{"resource":%q,"resource":%q,"authorization_servers":[%q]}`,
			evilOrigin+"/mcp", mcpServer, issuerA))
	case "no_servers":
		return prm(mcpServer, []string{})
	case "http_server":
		return prm(mcpServer, []string{"http://auth.example"})
	case "evil_server":
		return prm(mcpServer, []string{evilOrigin})
	case "resource_uppercase": // must normalise to the same resource (RFC 3986 §6.2.2.1)
		return prm("HTTPS://MCP.EXAMPLE/mcp", h.w.servers)

	// Authorization server metadata (RFC 8414).
	case "wrong_issuer":
		return meta(func(m map[string]any) { m["issuer"] = evilOrigin })
	case "no_s256":
		return meta(func(m map[string]any) { delete(m, "code_challenge_methods_supported") })
	case "plain_only":
		return meta(func(m map[string]any) { m["code_challenge_methods_supported"] = []string{"plain"} })
	case "http_endpoint":
		return meta(func(m map[string]any) { m["token_endpoint"] = "http://auth.example/token" })
	case "other_origin_endpoints": // allowed by RFC 8414: secrets then go there, and only there
		return meta(func(m map[string]any) {
			m["authorization_endpoint"] = evilOrigin + "/authorize"
			m["token_endpoint"] = evilOrigin + "/token"
		})
	case "duplicate_issuer":
		m := h.metadataDoc(issuer)
		delete(m, "issuer")
		rest := mustJSON(m)
		return response(seq, 200, fmt.Sprintf(`{"issuer":%q,"issuer":%q,%s`, evilOrigin, issuer, rest[1:]))
	case "no_token_endpoint":
		return meta(func(m map[string]any) { delete(m, "token_endpoint") })
	case "no_code_response_type":
		return meta(func(m map[string]any) { m["response_types_supported"] = []string{"token"} })
	case "iss_flag_flipped":
		return meta(func(m map[string]any) { m["authorization_response_iss_parameter_supported"] = !h.w.issParam })

	// Dynamic client registration (RFC 7591).
	case "invalid_client_metadata":
		return response(seq, 400, `{"error":"invalid_client_metadata","error_description":"no"}`)
	case "no_client_id":
		return response(seq, 201, `{"client_secret":"SECRETORPHAN0000Z"}`)
	case "duplicate_client_id":
		return response(seq, 201, `{"client_id":"a","client_id":"b"}`)
	case "error_with_200":
		return response(seq, 200, `{"client_id":"a","error":"invalid_redirect_uri"}`)
	case "client_id_number":
		return response(seq, 201, `{"client_id":42}`)
	case "secret_with_space":
		return response(seq, 201, `{"client_id":"spacey","client_secret":"a b","token_endpoint_auth_method":"client_secret_post"}`)

	// Token endpoint (RFC 6749 §5).
	case "invalid_grant":
		note.invalidGrant = true
		return response(seq, 400, `{"error":"invalid_grant"}`)
	case "invalid_client":
		return response(seq, 401, `{"error":"invalid_client"}`)
	case "temporarily_unavailable":
		note.transient = true
		return response(seq, 400, `{"error":"temporarily_unavailable"}`)
	case "server_error_400":
		note.transient = true
		return response(seq, 400, `{"error":"server_error"}`)
	case "no_access_token":
		return response(seq, 200, `{"token_type":"Bearer","expires_in":3600}`)
	case "token_type_mac":
		return response(seq, 200, mustJSON(map[string]any{"access_token": h.bogusToken(), "token_type": "mac"}))
	case "negative_expires_in":
		return response(seq, 200, mustJSON(map[string]any{"access_token": h.bogusToken(), "token_type": "Bearer", "expires_in": -5}))
	case "huge_expires_in":
		return response(seq, 200, mustJSON(map[string]any{"access_token": h.bogusToken(), "token_type": "Bearer", "expires_in": int64(1) << 40}))
	case "duplicate_access_token":
		return response(seq, 200, fmt.Sprintf(`{"access_token":%q,"access_token":%q,"token_type":"Bearer"}`, h.bogusToken(), h.bogusToken()))
	case "slack_ok_false":
		return response(seq, 200, fmt.Sprintf(`{"ok":false,"access_token":%q,"token_type":"Bearer"}`, h.bogusToken()))
	case "github_error_200":
		note.invalidGrant = true
		return response(seq, 200, `{"error":"invalid_grant","error_description":"bad_verification_code"}`)
	case "scope_array":
		return response(seq, 200, mustJSON(map[string]any{"access_token": h.bogusToken(), "token_type": "Bearer", "scope": []string{"a"}}))
	case "access_token_with_space":
		return response(seq, 200, `{"access_token":"two words","token_type":"Bearer"}`)
	case "use_dpop_nonce": // RFC 9449 §8: retried once with the nonce
		h.w.n++
		r := response(seq, 400, `{"error":"use_dpop_nonce","error_description":"nonce required"}`)
		r.Header["Dpop-Nonce"] = []string{fmt.Sprintf("as-nonce-%d", h.w.n)}
		return r
	case "unknown_token": // well formed, but the resource server never heard of it
		return response(seq, 200, mustJSON(map[string]any{"access_token": h.bogusToken(), "token_type": "bearer", "expires_in": 3600}))
	case "no_refresh_token", "expires_in_string", "expires_now", "form_encoded":
		// Odd but valid: the honest grant, reshaped.
		status, body := h.honestToken(f, note)
		if status != 200 {
			return response(seq, status, body)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			h.t.Fatalf("token body: %v", err)
		}
		switch v {
		case "no_refresh_token":
			delete(doc, "refresh_token")
		case "expires_in_string":
			doc["expires_in"] = "3599"
		case "expires_now":
			doc["expires_in"] = 0
		case "form_encoded":
			form := url.Values{}
			for k, val := range doc {
				form.Set(k, fmt.Sprint(val))
			}
			return machine.FetchResponse{Seq: seq, Status: 200,
				Header: map[string][]string{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: []byte(form.Encode())}
		}
		return response(seq, 200, mustJSON(doc))
	}
	h.t.Fatalf("unknown fetch variant %q", v)
	return nil
}

// bogusToken is an access token the resource server does not accept; it
// is still a secret that must never leave for another place.
func (h *harness) bogusToken() string {
	at := h.made("AT")
	h.secrets.access[at] = true
	return at
}

// --- the user agent --------------------------------------------------------

var callbackVariants = []string{
	"callback_failed", "wrong_state", "missing_state", "wrong_iss", "missing_iss", "iss_uppercase",
	"access_denied", "duplicate_state", "code_and_error", "empty", "semicolon", "wrong_code",
}

// answerCallback plays the user and the authorization server: from the
// authorization URL it builds the redirect back (code, state, iss).
func (h *harness) answerCallback(c *sentCallback) (machine.Input, inputNote) {
	note := inputNote{callback: c}
	m := h.s.Discovery.Authorization
	code := h.made("CODE")
	h.w.codes[code] = &codeGrant{challenge: c.open.challenge}
	h.secrets.flow[code] = true
	state := "state=" + url.QueryEscape(c.open.state)
	iss := ""
	if m.AuthorizationResponseIssParameterSupported {
		iss = "&iss=" + url.QueryEscape(m.Issuer)
	}
	v := "honest"
	if h.hostile(userAgent, "callback_hostile") {
		v = rapid.SampledFrom(callbackVariants).Draw(h.t, "callback_variant")
	}
	note.variant = v
	q := "code=" + code + "&" + state + iss
	switch v {
	case "callback_failed":
		return machine.CallbackFailed{Reason: "the user closed the window"}, note
	case "wrong_state":
		q = "code=" + code + "&state=forged" + iss
	case "missing_state":
		q = "code=" + code + iss
	case "wrong_iss":
		q = "code=" + code + "&" + state + "&iss=" + url.QueryEscape(evilOrigin)
	case "missing_iss":
		q = "code=" + code + "&" + state
	case "iss_uppercase":
		q = "code=" + code + "&" + state + "&iss=" + url.QueryEscape(strings.ToUpper(m.Issuer))
	case "access_denied":
		q = "error=access_denied&error_description=no&" + state + iss
	case "duplicate_state":
		q = "code=" + code + "&" + state + "&" + state + iss
	case "code_and_error":
		q = "code=" + code + "&error=access_denied&" + state + iss
	case "empty":
		q = ""
	case "semicolon":
		q = "code=" + code + ";" + state + iss
	case "wrong_code":
		code = h.made("CODE")
		h.secrets.flow[code] = true
		q = "code=" + code + "&" + state + iss
	}
	if vals, err := url.ParseQuery(q); err == nil && len(vals["code"]) == 1 {
		note.callbackCode = vals.Get("code")
	}
	return machine.CallbackReceived{Query: q}, note
}

// --- the MCP server ----------------------------------------------------------

var protectedVariants = []string{
	"transport_failure", "server_error", "unauthorized_anyway", "insufficient_scope",
	"forbidden", "evil_resource_metadata", "insecure_resource_metadata", "malformed_challenge",
	"anonymous_ok", "use_dpop_nonce",
}

// answerProtected plays the MCP server: 200 for a valid token it issued,
// 401 with a challenge otherwise.
func (h *harness) answerProtected(id effects.RequestID) (machine.Input, inputNote) {
	m := h.reqs[id]
	send := m.outstanding
	note := inputNote{protected: id, hasProtected: true}
	resp := machine.ProtectedResponse{Request: id, Credential: send.Credential}
	v := "honest"
	if h.hostile(resource, "protected_hostile") {
		v = rapid.SampledFrom(protectedVariants).Draw(h.t, "protected_variant")
	}
	note.variant = v
	switch v {
	case "honest":
		switch {
		case !m.foreign && send.Proof != nil && h.w.rsNonce != "" && proofNonce(send.Proof) != h.w.rsNonce:
			resp.Status = 401
			resp.Challenges = []string{`DPoP error="use_dpop_nonce", error_description="use the nonce"`}
			resp.Nonce = h.w.rsNonce
			note.nonceChallenge = true
		case m.foreign || h.validToken(send):
			resp.Status = 200
		default:
			resp.Status = 401
			resp.Challenges = []string{h.challenge()}
		}
	case "transport_failure":
		note.protectedFailed = true
		return machine.ProtectedFailed{Request: id}, note
	case "server_error":
		resp.Status = 500
	case "unauthorized_anyway":
		resp.Status = 401
		resp.Challenges = []string{h.challenge()}
	case "insufficient_scope": // a step-up loop: always one more scope
		h.w.n++
		resp.Status = 403
		resp.Challenges = []string{fmt.Sprintf(`Bearer error="insufficient_scope", scope="mcp:read mcp:admin%d"`, h.w.n)}
	case "forbidden":
		resp.Status = 403
		resp.Challenges = []string{`Bearer error="invalid_token"`}
	case "evil_resource_metadata":
		resp.Status = 401
		resp.Challenges = []string{`Bearer resource_metadata="` + evilOrigin + `/.well-known/oauth-protected-resource"`}
	case "insecure_resource_metadata":
		resp.Status = 401
		resp.Challenges = []string{`Bearer resource_metadata="http://evil.example/prm"`}
	case "malformed_challenge":
		resp.Status = 401
		resp.Challenges = []string{`Bearer realm="unterminated`}
	case "anonymous_ok":
		resp.Status = 200
	case "use_dpop_nonce": // RFC 9449 §9: the request is sent once more with the nonce
		h.w.n++
		resp.Status = 401
		resp.Challenges = []string{`DPoP error="use_dpop_nonce", error_description="nonce required"`}
		resp.Nonce = fmt.Sprintf("rs-nonce-%d", h.w.n)
		note.nonceChallenge = true
		if send.Proof != nil {
			h.stat(fmt.Sprintf("nonce_challenge_to_dpop_request:%s:cred=%v", h.s.State, send.Credential == h.s.Generation))
		}
	}
	return resp, note
}

func (h *harness) validToken(send *effects.SendProtected) bool {
	v := send.Header["Authorization"]
	if len(v) != 1 {
		return false
	}
	scheme, tok, _ := strings.Cut(v[0], " ")
	// RFC 9449 §7.1: a bound token only as DPoP with a proof; a bearer
	// token only as Bearer.
	if h.w.bound[tok] != (scheme == "DPoP" && send.Proof != nil) || (scheme != "DPoP" && scheme != "Bearer") {
		return false
	}
	exp, ok := h.w.access[tok]
	return ok && (exp.IsZero() || h.now.Before(exp))
}

// challenge is the server's honest WWW-Authenticate (RFC 9728 §5.1).
func (h *harness) challenge() string {
	switch h.w.prm {
	case "path":
		return `Bearer resource_metadata="` + prmPathURL + `", scope="mcp:read"`
	case "root":
		return `Bearer resource_metadata="` + prmRootURL + `"`
	}
	return `Bearer error="invalid_token"`
}

// --- the store ---------------------------------------------------------------

var storedVariants = []string{"stored", "expired", "no_refresh", "other_issuer", "other_server"}

// answerLoadStored plays the store at start-up.
func (h *harness) answerLoadStored() machine.StoredLoaded {
	if !h.hostile(store, "stored_something") {
		return machine.StoredLoaded{}
	}
	v := rapid.SampledFrom(storedVariants).Draw(h.t, "stored_variant")
	d := effects.Discovery{
		Server:              mcpServer,
		ResourceMetadataURL: prmPathURL,
		Resource:            effects.ResourceMetadata{Resource: mcpServer, AuthorizationServers: []string{issuerA}},
		Authorization: effects.ServerMetadata{
			Issuer: issuerA, AuthorizationEndpoint: issuerA + "/authorize", TokenEndpoint: issuerA + "/token",
			CodeChallengeMethodsSupported: []string{"S256"}, AuthorizationResponseIssParameterSupported: h.w.issParam,
		},
	}
	if h.w.register {
		d.Authorization.RegistrationEndpoint = issuerA + "/register"
	}
	c := h.registerClient(issuerA, h.clientMethod())
	if len(h.cfg.Clients) > 0 && h.w.preIssuer == issuerA {
		c = effects.Client{Issuer: issuerA, ClientID: preClientID, ClientSecret: preSecret,
			AuthMethod: "client_secret_basic", Source: effects.ClientPreRegistered}
	}
	at, rt, exp := h.issueTokens(issuerA, v != "no_refresh")
	t := effects.Tokens{Resource: mcpServer, Issuer: issuerA, ClientID: c.ClientID, AccessToken: at,
		TokenType: "Bearer", RefreshToken: rt, ExpiresAt: exp}
	switch v {
	case "expired", "no_refresh":
		t.ExpiresAt = h.now.Add(-time.Minute)
	case "other_issuer":
		t.Issuer = evilOrigin
	case "other_server":
		d.Server = "https://other.example/mcp"
	}
	return machine.StoredLoaded{Tokens: &t, TokensVersion: 1, Discovery: &d, Client: &c}
}

var clientVariants = []string{"stored", "other_issuer", "expired_secret"}

// answerLoadClient plays the store when the machine asks for the client
// registered at an issuer.
func (h *harness) answerLoadClient(issuer string) machine.ClientLoaded {
	if !h.hostile(store, "client_stored") {
		return machine.ClientLoaded{}
	}
	v := rapid.SampledFrom(clientVariants).Draw(h.t, "client_variant")
	c := h.registerClient(issuer, h.clientMethod())
	switch v {
	case "other_issuer":
		c.Issuer = evilOrigin
	case "expired_secret":
		c.SecretExpiresAt = h.now.Add(-time.Hour)
	}
	return machine.ClientLoaded{Client: &c}
}

// s256 is the PKCE challenge of a verifier (RFC 7636 §4.2), computed here
// independently of the machine.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
