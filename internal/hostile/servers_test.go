package hostile_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Small servers for what the test world cannot do. Each is an honest,
// strict implementation by default; a test makes it misbehave by
// replacing a route ("METHOD /path") or a document before the first call.
// Every server records what it received, so a test can also check from
// the server side that a wrong origin got nothing.

// server is an httptest server with overridable routes and a request log.
type server struct {
	*httptest.Server
	name string

	mu     sync.Mutex
	routes map[string]http.HandlerFunc // "METHOD /path" -> handler, checked first
	got    []outReq
	def    http.Handler
}

func newServer(t *testing.T, name string) *server {
	t.Helper()
	s := &server{name: name, routes: map[string]http.HandlerFunc{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	s.got = append(s.got, outReq{Method: r.Method, URL: r.URL.String(), Header: r.Header.Clone(), Body: body})
	h := s.routes[r.Method+" "+r.URL.Path]
	def := s.def
	s.mu.Unlock()
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	switch {
	case h != nil:
		h(w, r)
	case def != nil:
		def.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// route replaces the handler for "METHOD /path".
func (s *server) route(pattern string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[pattern] = h
}

// Got returns the requests this server received.
func (s *server) Got() []outReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]outReq(nil), s.got...)
}

// Hits counts received requests to path (any method).
func (s *server) Hits(path string) int {
	n := 0
	for _, r := range s.Got() {
		if stripQuery(r.URL) == path {
			n++
		}
	}
	return n
}

// wantUntouched requires that the server received nothing at all.
func (s *server) wantUntouched(t *testing.T) {
	t.Helper()
	if got := s.Got(); len(got) > 0 {
		var paths []string
		for _, r := range got {
			paths = append(paths, r.Method+" "+stripQuery(r.URL))
		}
		t.Errorf("%s received %d requests it must never get: %v", s.name, len(got), paths)
	}
}

// wantNoCredentials requires that nothing the server received carried an
// Authorization header or a grant body.
func (s *server) wantNoCredentials(t *testing.T) {
	t.Helper()
	for _, r := range s.Got() {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("%s received an Authorization header on %s %s", s.name, r.Method, stripQuery(r.URL))
		}
		for _, k := range []string{"code=", "code_verifier=", "refresh_token=", "client_secret="} {
			if strings.Contains(string(r.Body), k) {
				t.Errorf("%s received %s… on %s %s", s.name, k, r.Method, stripQuery(r.URL))
			}
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	writeRaw(w, status, "application/json", b)
}

func writeRaw(w http.ResponseWriter, status int, contentType string, body []byte) {
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func randomValue(prefix string) string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func decodeBase64(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	return string(b), err
}

// authServer is a strict OAuth 2.1 authorization server: metadata (RFC
// 8414), dynamic registration, /authorize with PKCE S256 only, /token with
// codes bound to the challenge and rotating refresh tokens.
type authServer struct {
	*server
	issuer string

	mu       sync.Mutex
	meta     map[string]any // the metadata document served
	clients  map[string]bool
	codes    map[string]codeGrant
	access   map[string]bool
	refresh  map[string]bool
	issParam bool
	// authorizeHook may rewrite the authorization response's parameters.
	authorizeHook func(resp url.Values)
	// tokenHook may answer /token itself (it returns true when it did).
	tokenHook    func(w http.ResponseWriter, r *http.Request, form url.Values) bool
	invalidGrant int // refresh grants refused because the token was dead
	plain        int // authorization requests without S256
}

type codeGrant struct {
	clientID, challenge, redirect, resource, scope string
}

func newAuthServer(t *testing.T, name string) *authServer {
	t.Helper()
	as := &authServer{server: newServer(t, name),
		clients: map[string]bool{}, codes: map[string]codeGrant{}, access: map[string]bool{}, refresh: map[string]bool{}}
	as.issuer = as.URL
	as.meta = map[string]any{
		"issuer":                                as.issuer,
		"authorization_endpoint":                as.issuer + "/authorize",
		"token_endpoint":                        as.issuer + "/token",
		"registration_endpoint":                 as.issuer + "/register",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"none"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", as.handleMetadata)
	mux.HandleFunc("POST /register", as.handleRegister)
	mux.HandleFunc("GET /authorize", as.handleAuthorize)
	mux.HandleFunc("POST /token", as.handleToken)
	as.server.def = mux
	return as
}

// onAuthorize sets authorizeHook.
func (as *authServer) onAuthorize(f func(resp url.Values)) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.authorizeHook = f
}

// onToken sets tokenHook.
func (as *authServer) onToken(f func(w http.ResponseWriter, r *http.Request, form url.Values) bool) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.tokenHook = f
}

// sendIss makes authorization responses carry iss (RFC 9207) and the
// metadata advertise it.
func (as *authServer) sendIss() {
	as.set("authorization_response_iss_parameter_supported", true)
	as.mu.Lock()
	defer as.mu.Unlock()
	as.issParam = true
}

// counts returns the refused refresh grants and the authorization requests
// without S256.
func (as *authServer) counts() (invalidGrant, plain int) {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.invalidGrant, as.plain
}

// tokenURL is the honest token endpoint.
func (as *authServer) tokenURL() string { return as.issuer + "/token" }

// set changes a member of the metadata document (nil deletes it).
func (as *authServer) set(name string, v any) {
	as.mu.Lock()
	defer as.mu.Unlock()
	if v == nil {
		delete(as.meta, name)
		return
	}
	as.meta[name] = v
}

func (as *authServer) handleMetadata(w http.ResponseWriter, r *http.Request) {
	as.mu.Lock()
	b, _ := json.Marshal(as.meta)
	as.mu.Unlock()
	writeRaw(w, http.StatusOK, "application/json", b)
}

func (as *authServer) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RedirectURIs []string `json:"redirect_uris"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.RedirectURIs) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata"})
		return
	}
	id := randomValue("client-")
	as.mu.Lock()
	as.clients[id] = true
	as.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"client_id": id, "redirect_uris": req.RedirectURIs, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	})
}

func (as *authServer) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	as.mu.Lock()
	known := as.clients[q.Get("client_id")]
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		as.plain++
		known = false
	}
	as.mu.Unlock()
	if !known || q.Get("response_type") != "code" || q.Get("state") == "" || q.Get("redirect_uri") == "" {
		http.Error(w, "invalid authorization request", http.StatusBadRequest)
		return
	}
	code := randomValue("code-")
	as.mu.Lock()
	as.codes[code] = codeGrant{clientID: q.Get("client_id"), challenge: q.Get("code_challenge"),
		redirect: q.Get("redirect_uri"), resource: q.Get("resource"), scope: q.Get("scope")}
	iss := as.issParam
	hook := as.authorizeHook
	as.mu.Unlock()
	resp := url.Values{"code": {code}, "state": {q.Get("state")}}
	if iss {
		resp.Set("iss", as.issuer)
	}
	if hook != nil {
		hook(resp)
	}
	http.Redirect(w, r, q.Get("redirect_uri")+"?"+resp.Encode(), http.StatusFound)
}

func (as *authServer) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	form := r.PostForm
	as.mu.Lock()
	hook := as.tokenHook
	as.mu.Unlock()
	if hook != nil && hook(w, r, form) {
		return
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	switch form.Get("grant_type") {
	case "authorization_code":
		g, ok := as.codes[form.Get("code")]
		delete(as.codes, form.Get("code"))
		if !ok || g.clientID != clientIDOf(r, form) || s256(form.Get("code_verifier")) != g.challenge ||
			g.redirect != form.Get("redirect_uri") || g.resource != form.Get("resource") {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
			return
		}
		writeJSON(w, http.StatusOK, as.issueLocked(g.scope))
	case "refresh_token":
		rt := form.Get("refresh_token")
		if !as.refresh[rt] {
			as.invalidGrant++
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
			return
		}
		delete(as.refresh, rt) // rotation
		writeJSON(w, http.StatusOK, as.issueLocked(""))
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
	}
}

// clientIDOf is the client_id of a token request: in the form, or in
// HTTP Basic (RFC 6749 §2.3.1, form-encoded).
func clientIDOf(r *http.Request, form url.Values) string {
	if id := form.Get("client_id"); id != "" {
		return id
	}
	if id, _, ok := r.BasicAuth(); ok {
		if dec, err := url.QueryUnescape(id); err == nil {
			return dec
		}
	}
	return ""
}

// issueLocked makes a token response. Called with as.mu held.
func (as *authServer) issueLocked(scope string) map[string]any {
	at, rt := randomValue("at-"), randomValue("rt-")
	as.access[at] = true
	as.refresh[rt] = true
	resp := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 3600, "refresh_token": rt}
	if scope != "" {
		resp["scope"] = scope
	}
	return resp
}

// valid reports whether an access token is live.
func (as *authServer) valid(tok string) bool {
	as.mu.Lock()
	defer as.mu.Unlock()
	return as.access[tok]
}

// expire kills every access token issued so far.
func (as *authServer) expire() {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.access = map[string]bool{}
}

// resourceServer is an MCP endpoint behind a bearer check, publishing PRM
// at the path-inserted well-known URL (RFC 9728 §3.1).
type resourceServer struct {
	*server
	mcpURL, prmURL string

	mu    sync.Mutex
	trust *authServer    // whose tokens are accepted
	prm   map[string]any // the PRM document served
	// challenge is the WWW-Authenticate value of a 401 ("" = none).
	challenge string
	accepted  int
}

func newResourceServer(t *testing.T, as *authServer) *resourceServer {
	t.Helper()
	rs := &resourceServer{server: newServer(t, "resource server"), trust: as}
	rs.mcpURL = rs.URL + "/mcp"
	rs.prmURL = rs.URL + "/.well-known/oauth-protected-resource/mcp"
	rs.prm = map[string]any{"resource": rs.mcpURL, "authorization_servers": []string{as.issuer}}
	rs.challenge = `Bearer resource_metadata="` + rs.prmURL + `"`
	mux := http.NewServeMux()
	mux.HandleFunc("/mcp", rs.handleMCP)
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		b, _ := json.Marshal(rs.prm)
		rs.mu.Unlock()
		writeRaw(w, http.StatusOK, "application/json", b)
	})
	rs.server.def = mux
	return rs
}

// setPRM changes a member of the PRM document (nil deletes it).
func (rs *resourceServer) setPRM(name string, v any) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if v == nil {
		delete(rs.prm, name)
		return
	}
	rs.prm[name] = v
}

func (rs *resourceServer) setChallenge(c string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.challenge = c
}

func (rs *resourceServer) handleMCP(w http.ResponseWriter, r *http.Request) {
	rs.mu.Lock()
	trust, challenge := rs.trust, rs.challenge
	rs.mu.Unlock()
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !trust.valid(tok) {
		if challenge != "" {
			w.Header().Set("WWW-Authenticate", challenge)
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	rs.mu.Lock()
	rs.accepted++
	rs.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": 1, "result": map[string]any{"tools": []any{}}})
}

// world is a resource server, its authorization server and an attacker's
// server on a third origin, with the client side prepared.
type world struct {
	rs   *resourceServer
	as   *authServer
	evil *server
	c    *client
}

func newWorld(t *testing.T) *world {
	t.Helper()
	as := newAuthServer(t, "authorization server")
	rs := newResourceServer(t, as)
	evil := newServer(t, "attacker")
	return &world{rs: rs, as: as, evil: evil, c: newClient(t, rs.mcpURL, as.tokenURL())}
}

// login authorizes once through the honest servers.
func (w *world) login(t *testing.T) {
	t.Helper()
	w.c.mustCall()
	if w.c.storedRefresh() == "" {
		t.Fatalf("login stored no refresh token")
	}
}
