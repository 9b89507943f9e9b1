package testworld

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// The helpers below are a deliberately plain OAuth client written with
// net/http only, so these tests check the world against the specs rather than
// against mcpauth.

func startWorld(t *testing.T, o Options) *World {
	t.Helper()
	if o.Logf == nil {
		o.Logf = t.Logf
	}
	w, err := Start(o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(w.Close)
	return w
}

func pkce(seed string) (verifier, challenge string) {
	v := sha256.Sum256([]byte("verifier-" + seed))
	verifier = base64.RawURLEncoding.EncodeToString(v[:]) // 43 chars
	c := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(c[:])
}

func get(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", u, err)
	}
	return resp, b
}

func getJSON(t *testing.T, u string) (int, map[string]any) {
	t.Helper()
	resp, b := get(t, u)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", u, ct)
	}
	return resp.StatusCode, decode(t, b)
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return m
}

// basicAuth is how a client builds client_secret_basic per RFC 6749 §2.3.1.
type basicAuth struct {
	id, secret string
	raw        bool // skip the form-url-encoding (a common client bug)
}

func (b basicAuth) header() string {
	id, secret := url.QueryEscape(b.id), url.QueryEscape(b.secret)
	if b.raw {
		id, secret = b.id, b.secret
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

func postForm(t *testing.T, u string, form url.Values, auth *basicAuth) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if auth != nil {
		req.Header.Set("Authorization", auth.header())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m) // nil for non-JSON bodies (fault tests)
	return resp.StatusCode, m, resp.Header
}

func postJSON(t *testing.T, u string, v any) (int, map[string]any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, decode(t, rb)
}

// oclient is a registered client as the test sees it.
type oclient struct {
	id, secret, method, redirect string
}

// register performs RFC 7591 registration and fails the test unless 201.
func register(t *testing.T, w *World, method string) oclient {
	t.Helper()
	redirect := "http://127.0.0.1:49152/callback"
	status, m := postJSON(t, w.Issuer()+"/register", map[string]any{
		"redirect_uris":              []string{redirect},
		"client_name":                "testworld test",
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": method,
	})
	if status != http.StatusCreated {
		t.Fatalf("register: status %d: %v", status, m)
	}
	secret, _ := m["client_secret"].(string)
	return oclient{id: m["client_id"].(string), secret: secret, method: m["token_endpoint_auth_method"].(string), redirect: redirect}
}

// authParams are the parameters of a valid authorization request.
func authParams(w *World, c oclient, challenge, state, scope string) url.Values {
	v := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.id},
		"redirect_uri":          {c.redirect},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
		"state":                 {state},
		"resource":              {w.MCPURL()},
	}
	if scope != "" {
		v.Set("scope", scope)
	}
	return v
}

// authorize runs the authorization request and returns the redirect's query.
func authorize(t *testing.T, w *World, params url.Values) url.Values {
	t.Helper()
	loc, err := w.Authorize(w.Issuer() + "/authorize?" + params.Encode())
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q: %v", loc, err)
	}
	return u.Query()
}

// getCode authorizes c with a fresh PKCE pair and returns code and verifier.
func getCode(t *testing.T, w *World, c oclient, scope string) (code, verifier string) {
	t.Helper()
	verifier, challenge := pkce(t.Name() + scope)
	q := authorize(t, w, authParams(w, c, challenge, "st-1", scope))
	if q.Get("error") != "" {
		t.Fatalf("authorize: error=%s (%s)", q.Get("error"), q.Get("error_description"))
	}
	return q.Get("code"), verifier
}

// tokenRequest sends form to /token authenticated as c by its method.
func tokenRequest(t *testing.T, w *World, c oclient, form url.Values) (int, map[string]any) {
	t.Helper()
	var auth *basicAuth
	switch c.method {
	case AuthMethodBasic:
		auth = &basicAuth{id: c.id, secret: c.secret}
	case AuthMethodPost:
		form.Set("client_id", c.id)
		form.Set("client_secret", c.secret)
	default:
		form.Set("client_id", c.id)
	}
	status, m, _ := postForm(t, w.Issuer()+"/token", form, auth)
	return status, m
}

func exchange(t *testing.T, w *World, c oclient, code, verifier string) (int, map[string]any) {
	t.Helper()
	return tokenRequest(t, w, c, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {c.redirect},
		"code_verifier": {verifier},
		"resource":      {w.MCPURL()},
	})
}

func refresh(t *testing.T, w *World, c oclient, rt, scope string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "resource": {w.MCPURL()}}
	if scope != "" {
		form.Set("scope", scope)
	}
	return tokenRequest(t, w, c, form)
}

// login is the whole happy path: authorize, exchange, return the token response.
func login(t *testing.T, w *World, c oclient, scope string) map[string]any {
	t.Helper()
	code, verifier := getCode(t, w, c, scope)
	status, m := exchange(t, w, c, code, verifier)
	if status != http.StatusOK {
		t.Fatalf("token: status %d: %v", status, m)
	}
	return m
}

// mcpPost sends one JSON-RPC message to the MCP endpoint.
func mcpPost(t *testing.T, w *World, token string, msg map[string]any) (*http.Response, []byte) {
	t.Helper()
	b, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, w.MCPURL(), bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /mcp: %v", err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp, rb
}

func rpc(id int, method string, params any) map[string]any {
	m := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if params != nil {
		m["params"] = params
	}
	return m
}

func callTool(name string, args map[string]any) map[string]any {
	return rpc(3, "tools/call", map[string]any{"name": name, "arguments": args})
}

// toolText extracts result.content[0].text from a tools/call response.
func toolText(t *testing.T, body []byte) string {
	t.Helper()
	var r struct {
		Result struct {
			Content []struct {
				Type, Text string
			}
			IsError bool
		}
		Error *struct{ Message string }
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("tools/call response %q: %v", body, err)
	}
	if r.Error != nil || r.Result.IsError || len(r.Result.Content) == 0 {
		t.Fatalf("tools/call failed: %s", body)
	}
	return r.Result.Content[0].Text
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func wantOAuthError(t *testing.T, what string, status int, m map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || str(m, "error") != wantCode {
		t.Errorf("%s: got %d %v, want %d error=%s", what, status, m, wantStatus, wantCode)
	}
}

// fakeClock is a settable clock safe to read from server goroutines.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
