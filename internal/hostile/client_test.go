package hostile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/machine"
)

// The client side of every scenario: a transport whose every outgoing
// request (protected, auxiliary, authorization) passes a spy that records
// it and harvests the secrets in the answers, over a dialer that reaches
// loopback only.

// redirectURI is never contacted: the headless user agent reads the
// authorization response from the Location header.
const redirectURI = "http://127.0.0.1:1/callback"

// Budgets. Auxiliary requests time out after auxTimeout (shortTimeout in
// the slow-server scenarios, which set it with client.timeouts); a
// scenario must end within its budget (checked), and its context is a
// safety net beyond that.
//
// Budgets guard against hangs and loops, not speed: heavyBudget is for the
// scenarios that make the client parse a megabyte under the race detector
// on a busy two-core machine.
const (
	auxTimeout    = 2 * time.Second
	shortTimeout  = 300 * time.Millisecond
	defaultBudget = 5 * time.Second
	heavyBudget   = 15 * time.Second
)

// outReq is one request the client sent (or, on the server side, one a
// server received).
type outReq struct {
	Method string
	URL    string // full URL as sent
	Header http.Header
	Body   []byte
	// wrote is set once the request's headers were written to a
	// connection: a request refused before that (a destination policy, a
	// failed dial) never left the client. nil on the server side.
	wrote *atomic.Bool
}

// left reports whether the request reached a connection.
func (r outReq) left() bool { return r.wrote == nil || r.wrote.Load() }

// secret is a value the client received that must go nowhere but where it
// belongs.
type secret struct {
	Kind  string // access_token, refresh_token, code, client_secret, code_verifier, id_token
	Value string
	From  string // the URL it came from (without query)
}

// spy records every request and harvests secrets from every answer.
type spy struct {
	next http.RoundTripper

	mu      sync.Mutex
	reqs    []outReq
	secrets []secret
}

func (s *spy) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	wrote := &atomic.Bool{}
	r = r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
		WroteHeaders: func() { wrote.Store(true) },
	}))
	s.mu.Lock()
	s.reqs = append(s.reqs, outReq{Method: r.Method, URL: r.URL.String(), Header: r.Header.Clone(), Body: body, wrote: wrote})
	// The verifier is born on the client: harvest it from the request.
	if form, err := url.ParseQuery(string(body)); err == nil {
		for _, v := range form["code_verifier"] {
			s.secrets = append(s.secrets, secret{Kind: "code_verifier", Value: v, From: "client"})
		}
	}
	s.mu.Unlock()

	resp, err := s.next.RoundTrip(r)
	if err != nil || resp == nil {
		return resp, err
	}
	from := stripQuery(r.URL.String())
	if loc := resp.Header.Get("Location"); loc != "" {
		if u, err := url.Parse(loc); err == nil {
			for _, v := range u.Query()["code"] {
				s.add(secret{Kind: "code", Value: v, From: from})
			}
		}
	}
	resp.Body = &harvest{rc: resp.Body, s: s, from: from, form: strings.Contains(resp.Header.Get("Content-Type"), "x-www-form-urlencoded")}
	return resp, nil
}

func (s *spy) add(sec secret) {
	if sec.Value == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets = append(s.secrets, sec)
}

// Requests returns what the client sent so far.
func (s *spy) Requests() []outReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]outReq(nil), s.reqs...)
}

// Sent counts requests whose URL starts with prefix.
func (s *spy) Sent(prefix string) int {
	n := 0
	for _, r := range s.Requests() {
		if strings.HasPrefix(r.URL, prefix) {
			n++
		}
	}
	return n
}

func (s *spy) Secrets() []secret {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]secret(nil), s.secrets...)
}

// harvest captures a response body as the client reads it (never more
// than the client reads: an endless body stays endless) and extracts the
// secrets when it is closed.
type harvest struct {
	rc   io.ReadCloser
	s    *spy
	from string
	form bool
	buf  bytes.Buffer
	once sync.Once
}

func (h *harvest) Read(p []byte) (int, error) {
	n, err := h.rc.Read(p)
	if h.buf.Len() < 4<<20 {
		h.buf.Write(p[:n])
	}
	return n, err
}

func (h *harvest) Close() error {
	h.once.Do(func() {
		for kind, vs := range secretsIn(h.buf.Bytes(), h.form) {
			for _, v := range vs {
				h.s.add(secret{Kind: kind, Value: v, From: h.from})
			}
		}
	})
	return h.rc.Close()
}

// secretKinds are the members whose values are secrets, matched without
// regard to case (a hostile "Access_Token" is still a token to guard).
var secretKinds = []string{"access_token", "refresh_token", "client_secret", "id_token"}

// secretsIn returns every string value of a secret member anywhere in a
// JSON body, duplicates included, or in a form body.
func secretsIn(body []byte, form bool) map[string][]string {
	out := map[string][]string{}
	lower := bytes.ToLower(body)
	found := false
	for _, k := range secretKinds {
		found = found || bytes.Contains(lower, []byte(k))
	}
	if !found {
		return out // the common case, and cheap for huge documents
	}
	kind := func(name string) string {
		for _, k := range secretKinds {
			if strings.EqualFold(name, k) {
				return k
			}
		}
		return ""
	}
	if form {
		if q, err := url.ParseQuery(string(body)); err == nil {
			for name, vs := range q {
				if k := kind(name); k != "" {
					out[k] = append(out[k], vs...)
				}
			}
		}
		return out
	}
	type frame struct{ obj, wantKey bool }
	var stack []frame
	var key string
	dec := json.NewDecoder(bytes.NewReader(body))
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, frame{obj: true, wantKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].wantKey {
				key = v
				stack[n-1].wantKey = false
				continue
			}
			if k := kind(key); k != "" {
				out[k] = append(out[k], v)
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

// guardResolver knows localhost only and records every other name asked.
type guardResolver struct {
	mu    sync.Mutex
	asked []string
}

func (g *guardResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if host == "localhost" {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	g.mu.Lock()
	g.asked = append(g.asked, host)
	g.mu.Unlock()
	return nil, &net.DNSError{Err: "hostile test resolver knows only localhost", Name: host, IsNotFound: true}
}

func (g *guardResolver) Asked() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.asked...)
}

// loopbackOnly is the test's destination policy: nothing leaves the machine.
func loopbackOnly(_ context.Context, host string, ips []netip.Addr) error {
	for _, ip := range ips {
		if !ip.Unmap().IsLoopback() {
			return &httpdriver.DestinationRefusedError{Host: host, Addr: ip, Reason: "hostile tests reach loopback only"}
		}
	}
	return nil
}

// client is one scenario's client side.
type client struct {
	t        *testing.T
	spy      *spy
	resolver *guardResolver
	base     *http.Transport
	store    driver.Store
	cfg      machine.Config
	opts     httpdriver.Options
	tr       *httpdriver.Transport

	// Where secrets may go: access tokens to the resource origin in the
	// Authorization header only; codes, verifiers, refresh tokens and
	// client secrets to these token endpoints only (exact URL without
	// query).
	resourceOrigin   string
	tokenEndpoints   []string
	crossOriginToken bool
}

// newClient prepares the client side for the MCP server at mcpURL whose
// legitimate token endpoints are tokenEndpoints. The leak check runs when
// the test ends.
func newClient(t *testing.T, mcpURL string, tokenEndpoints ...string) *client {
	t.Helper()
	res := &guardResolver{}
	base := (&httpdriver.PolicyDialer{Policy: loopbackOnly, Resolver: res}).Transport()
	base.MaxIdleConnsPerHost = 16
	c := &client{
		t:              t,
		spy:            &spy{next: base},
		resolver:       res,
		base:           base,
		store:          driver.NewMemoryStore(),
		cfg:            machine.Config{Server: mcpURL, RedirectURI: redirectURI},
		resourceOrigin: origin(mcpURL),
		tokenEndpoints: tokenEndpoints,
	}
	httpc := &http.Client{Transport: c.spy}
	c.opts = httpdriver.Options{
		Base:      c.spy,
		Requester: &httpdriver.Requester{Client: httpc, Timeout: auxTimeout},
		UserAgent: httpdriver.HeadlessUserAgent{Client: httpc, Timeout: auxTimeout},
	}
	t.Cleanup(func() {
		if c.tr != nil {
			c.tr.Close()
		}
		base.CloseIdleConnections()
		c.checkLeaks()
	})
	return c
}

// timeouts sets the timeout of every auxiliary request and of the user
// agent; call before the first call.
func (c *client) timeouts(d time.Duration) {
	httpc := &http.Client{Transport: c.spy}
	c.opts.Requester = &httpdriver.Requester{Client: httpc, Timeout: d}
	c.opts.UserAgent = httpdriver.HeadlessUserAgent{Client: httpc, Timeout: d}
}

// transport builds the transport on first use; change cfg and opts before.
func (c *client) transport() *httpdriver.Transport {
	c.t.Helper()
	if c.tr == nil {
		c.opts.Store = c.store
		tr, err := httpdriver.NewTransport(context.Background(), c.cfg, c.opts)
		if err != nil {
			c.t.Fatalf("NewTransport: %v", err)
		}
		c.tr = tr
	}
	return c.tr
}

// call sends one MCP request (JSON-RPC tools/list by POST) through the
// transport and requires it to end within budget. It returns the status
// (0 on error), the body and the error.
func (c *client) call(budget time.Duration) (int, []byte, error) {
	c.t.Helper()
	return c.callBody(budget, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`)
}

func (c *client) callBody(budget time.Duration, body string) (int, []byte, error) {
	c.t.Helper()
	tr := c.transport()
	ctx, cancel := context.WithTimeout(context.Background(), budget+5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.Server, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	start := time.Now()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	var status int
	var b []byte
	if err == nil {
		status = resp.StatusCode
		b, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	if d := time.Since(start); d > budget {
		c.t.Errorf("request took %v, over its budget of %v (err %v)", d.Round(time.Millisecond), budget, err)
	}
	return status, b, err
}

// mustCall requires a 200.
func (c *client) mustCall() {
	c.t.Helper()
	status, body, err := c.call(defaultBudget)
	if err != nil || status != http.StatusOK {
		c.t.Fatalf("call: status %d, err %v, body %.200s", status, err, body)
	}
}

// stored returns the credential the store holds, or nil.
func (c *client) stored() *machine.StoredLoaded {
	c.t.Helper()
	in, err := driver.LoadStored(context.Background(), c.store, c.cfg.Server)
	if err != nil {
		c.t.Fatalf("LoadStored: %v", err)
	}
	return &in
}

// storedRefresh is the stored refresh token, "" when none.
func (c *client) storedRefresh() string {
	c.t.Helper()
	if tk := c.stored().Tokens; tk != nil {
		return tk.RefreshToken
	}
	return ""
}

// checkLeaks fails the test when a secret the client received went
// anywhere but where it belongs.
func (c *client) checkLeaks() {
	c.t.Helper()
	for _, l := range c.leaks() {
		c.t.Error(l)
	}
}

// leaks lists every secret that went where it does not belong.
func (c *client) leaks() []string {
	var out []string
	for _, sec := range c.spy.Secrets() {
		for _, r := range c.spy.Requests() {
			if !r.left() {
				continue // refused before a byte was written
			}
			where := stripQuery(r.URL)
			inURL := strings.Contains(r.URL, sec.Value) || strings.Contains(r.URL, url.QueryEscape(sec.Value))
			inBody := bytes.Contains(r.Body, []byte(sec.Value)) || bytes.Contains(r.Body, []byte(url.QueryEscape(sec.Value)))
			var inAuth, inOtherHeader bool
			for name, vs := range r.Header {
				for _, v := range vs {
					if !strings.Contains(v, sec.Value) && !containsBasic(v, sec.Value) {
						continue
					}
					if name == "Authorization" {
						inAuth = true
					} else {
						inOtherHeader = true
					}
				}
			}
			if !inURL && !inBody && !inAuth && !inOtherHeader {
				continue
			}
			bad := false
			switch sec.Kind {
			case "access_token":
				bad = inURL || inBody || inOtherHeader || origin(r.URL) != c.resourceOrigin
			case "id_token":
				bad = true
			default:
				bad = inURL || inOtherHeader || !c.mayReceive(where, sec)
			}
			if bad {
				out = append(out, fmt.Sprintf("LEAK: %s from %s sent to %s %s (in url %v, body %v, authorization %v, other header %v)",
					sec.Kind, sec.From, r.Method, where, inURL, inBody, inAuth, inOtherHeader))
			}
		}
	}
	return out
}

// mayReceive: a token endpoint the test declared, on the origin the secret
// came from (a refresh token goes back to the server that issued it, a
// code to the token endpoint of the server that issued it) unless the test
// allows endpoints on other origins (E-36).
func (c *client) mayReceive(endpoint string, sec secret) bool {
	if !c.isTokenEndpoint(endpoint) {
		return false
	}
	return sec.From == "client" || c.crossOriginToken || origin(endpoint) == origin(sec.From)
}

func (c *client) isTokenEndpoint(u string) bool {
	for _, e := range c.tokenEndpoints {
		if u == e {
			return true
		}
	}
	return false
}

// containsBasic reports whether an Authorization: Basic value carries v
// (RFC 6749 §2.3.1 form-encodes the parts).
func containsBasic(header, v string) bool {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	dec, err := decodeBase64(cred)
	if err != nil {
		return false
	}
	return strings.Contains(dec, v) || strings.Contains(dec, url.QueryEscape(v))
}

// want requires err to hold a T (errors.As) and returns it.
func want[T error](t *testing.T, err error) T {
	t.Helper()
	var target T
	if err == nil {
		t.Fatalf("no error, want %T", target)
	}
	if !errors.As(err, &target) {
		t.Fatalf("error %v (%T), want %T in its chain", err, err, target)
	}
	return target
}

// wantNoDNS requires that no name but localhost was looked up (nothing
// tried to leave the machine).
func (c *client) wantNoDNS() {
	c.t.Helper()
	if asked := c.resolver.Asked(); len(asked) > 0 {
		c.t.Errorf("the client tried to resolve %v", asked)
	}
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}

func stripQuery(u string) string {
	base, _, _ := strings.Cut(u, "?")
	base, _, _ = strings.Cut(base, "#")
	return base
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%v", err)
}
