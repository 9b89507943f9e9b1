package httpdriver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/manualclock"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// testRedirectURI is never contacted: HeadlessUserAgent reads the redirect
// from the authorization server's Location header.
const testRedirectURI = "http://127.0.0.1:1/callback"

// waitLimit bounds every wait for an asynchronous event. It is a guard
// against a hang, never a means of synchronization.
const waitLimit = 10 * time.Second

// startWorld starts a testworld and closes it when the test ends.
func startWorld(t *testing.T, o testworld.Options) *testworld.World {
	t.Helper()
	w, err := testworld.Start(o)
	if err != nil {
		t.Fatalf("testworld.Start: %v", err)
	}
	t.Cleanup(w.Close)
	return w
}

// worldConfig is the machine configuration for the world's MCP server.
func worldConfig(w *testworld.World) machine.Config {
	return machine.Config{Server: w.MCPURL(), RedirectURI: testRedirectURI}
}

// newTransport builds a transport and closes it when the test ends. Unset
// options default to a headless user agent and a fresh memory store.
func newTransport(t *testing.T, cfg machine.Config, opts httpdriver.Options) *httpdriver.Transport {
	t.Helper()
	if opts.UserAgent == nil {
		opts.UserAgent = httpdriver.HeadlessUserAgent{}
	}
	if opts.Store == nil {
		opts.Store = driver.NewMemoryStore()
	}
	if opts.Base == nil {
		base := http.DefaultTransport.(*http.Transport).Clone()
		t.Cleanup(base.CloseIdleConnections)
		opts.Base = base
	}
	tr, err := httpdriver.NewTransport(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	t.Cleanup(tr.Close)
	return tr
}

// connectSDK connects the official Go SDK client through tr.
func connectSDK(t *testing.T, w *testworld.World, tr http.RoundTripper) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "mcpauth-test", Version: "1.0.0"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:             w.MCPURL(),
		HTTPClient:           &http.Client{Transport: tr},
		DisableStandaloneSSE: true,
		MaxRetries:           -1,
	}, nil)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// listAndEcho checks that tools/list and tools/call echo work.
func listAndEcho(t *testing.T, cs *mcp.ClientSession) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	tools, err := cs.ListTools(ctx, &mcp.ListToolsParams{})
	if err != nil {
		t.Fatalf("ListTools: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "echo,write" {
		t.Errorf("tools = %v, want [echo write]", names)
	}
	wantEcho(t, cs, "hello through mcpauth")
}

func wantEcho(t *testing.T, cs *mcp.ClientSession, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": text}})
	if err != nil {
		t.Fatalf("CallTool echo: %v", err)
	}
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("CallTool echo: error result %+v", res)
	}
	if got, ok := res.Content[0].(*mcp.TextContent); !ok || got.Text != text {
		t.Fatalf("CallTool echo = %#v, want text %q", res.Content[0], text)
	}
}

// rpcBody is a JSON-RPC tools/list request (the stateless server needs no
// initialize).
func rpcBody(id int) []byte {
	return []byte(`{"jsonrpc":"2.0","id":` + itoa(id) + `,"method":"tools/list","params":{}}`)
}

// callBody is a JSON-RPC tools/call request.
func callBody(id int, tool string) []byte {
	return []byte(`{"jsonrpc":"2.0","id":` + itoa(id) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"text":"x"}}}`)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// postMCP sends one JSON-RPC request through c and returns the status and
// body, or the transport error.
func postMCP(ctx context.Context, c *http.Client, u string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// mustPost is postMCP that requires a 200.
func mustPost(t *testing.T, c *http.Client, u string, body []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	status, b, err := postMCP(ctx, c, u, body)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	if status != http.StatusOK {
		t.Fatalf("POST %s: status %d: %s", u, status, b)
	}
	return b
}

// storedTokens reads the credential the store holds for the world's server.
func storedTokens(t *testing.T, s driver.Store, server string) *effects.Tokens {
	t.Helper()
	in, err := driver.LoadStored(context.Background(), s, server)
	if err != nil {
		t.Fatalf("LoadStored: %v", err)
	}
	return in.Tokens
}

// newFakeClock is a clock the test moves.
func newFakeClock() *manualclock.Clock {
	return manualclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

// effectTracer is a driver.Tracer that keeps every effect and error and
// signals the effects a test waits for.
type effectTracer struct {
	mu      sync.Mutex
	effects []effects.Effect
	errs    []string
	saved   chan effects.SaveTokens
}

func newEffectTracer() *effectTracer {
	return &effectTracer{saved: make(chan effects.SaveTokens, 1024)}
}

func (r *effectTracer) Input(machine.Input, time.Time) {}

func (r *effectTracer) Effect(e effects.Effect) {
	r.mu.Lock()
	r.effects = append(r.effects, e)
	if f, ok := e.(effects.Fail); ok {
		r.errs = append(r.errs, f.Err.Error())
	}
	r.mu.Unlock()
	if s, ok := e.(effects.SaveTokens); ok {
		select {
		case r.saved <- s:
		default:
		}
	}
}

func (r *effectTracer) Refused(_ machine.Input, err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err.Error())
	r.mu.Unlock()
}

func (r *effectTracer) StoreError(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err.Error())
	r.mu.Unlock()
}

func (r *effectTracer) Errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

func (r *effectTracer) Described() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.effects {
		out = append(out, driver.Describe(e))
	}
	return out
}

// waitSaved waits for the next SaveTokens effect.
func (r *effectTracer) waitSaved(t *testing.T) effects.SaveTokens {
	t.Helper()
	select {
	case s := <-r.saved:
		return s
	case <-time.After(waitLimit):
		t.Fatal("no SaveTokens effect")
		return effects.SaveTokens{}
	}
}

// secretLog collects the secret values a flow exchanges: what the user
// agent saw (code, state), what went to and came from the authorization
// server (verifier, client secret, tokens).
type secretLog struct {
	mu       sync.Mutex
	secrets  map[string]bool
	authURLs []string
}

func newSecretLog() *secretLog { return &secretLog{secrets: map[string]bool{}} }

func (l *secretLog) add(vs ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range vs {
		if len(v) >= 8 && v != "[redacted]" {
			l.secrets[v] = true
		}
	}
}

func (l *secretLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for v := range l.secrets {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func (l *secretLog) AuthURLs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.authURLs...)
}

// addForm records the secret fields of a form body or query.
func (l *secretLog) addForm(s string) {
	q, err := url.ParseQuery(s)
	if err != nil {
		return
	}
	for _, k := range []string{"code", "state", "code_verifier", "client_secret", "refresh_token", "access_token", "code_challenge"} {
		l.add(q[k]...)
	}
}

// addJSON records the secret members of a JSON body.
func (l *secretLog) addJSON(b []byte) {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return
	}
	for _, k := range []string{"access_token", "refresh_token", "client_secret", "registration_access_token"} {
		if s, ok := m[k].(string); ok {
			l.add(s)
		}
	}
}

// spyRequester wraps a driver.Requester and records the secrets it carries.
type spyRequester struct {
	next driver.Requester
	log  *secretLog
}

func (s spyRequester) Fetch(ctx context.Context, f effects.Fetch) (machine.FetchResponse, error) {
	s.log.addForm(string(f.Body))
	if h := f.Header["Authorization"]; len(h) > 0 {
		if _, cred, ok := strings.Cut(h[0], " "); ok {
			s.log.add(cred)
		}
	}
	r, err := s.next.Fetch(ctx, f)
	if err == nil {
		s.log.addJSON(r.Body)
	}
	return r, err
}

// spyAgent wraps a driver.UserAgent and records the authorization URL and
// the secrets of the authorization response.
type spyAgent struct {
	next driver.UserAgent
	log  *secretLog
}

func (s spyAgent) Authorize(ctx context.Context, authURL, redirectURI string) (string, error) {
	s.log.mu.Lock()
	s.log.authURLs = append(s.log.authURLs, authURL)
	s.log.mu.Unlock()
	if u, err := url.Parse(authURL); err == nil {
		s.log.addForm(u.RawQuery)
	}
	q, err := s.next.Authorize(ctx, authURL, redirectURI)
	s.log.addForm(q)
	return q, err
}

// wantNoSecret fails when text holds one of the secrets.
func wantNoSecret(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s contains the secret %q: %s", what, s, text)
		}
	}
}

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
