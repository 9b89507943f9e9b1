package httpdriver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
)

// bodyRecorder is a base RoundTripper that records the body and the
// Authorization header of every send before passing it on.
type bodyRecorder struct {
	next  http.RoundTripper
	mu    sync.Mutex
	sends []recordedSend
}

type recordedSend struct {
	body []byte
	auth string
}

func (b *bodyRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	b.mu.Lock()
	b.sends = append(b.sends, recordedSend{body: body, auth: r.Header.Get("Authorization")})
	b.mu.Unlock()
	return b.next.RoundTrip(r)
}

func (b *bodyRecorder) Sends() []recordedSend {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]recordedSend(nil), b.sends...)
}

// onlyReader hides every method but Read, so http.NewRequest sets no
// GetBody and no ContentLength.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// closeTracker records whether the request body was closed.
type closeTracker struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeTracker) Close() error { c.closed.Store(true); return nil }

// TestBodyReplayedAfter401: the request refused with 401 is sent again
// with the same body, whether or not the caller set GetBody.
func TestBodyReplayedAfter401(t *testing.T) {
	payload := callBody(7, "echo")
	cases := []struct {
		name    string
		request func(u string) (*http.Request, *atomic.Int32)
	}{
		{"no GetBody", func(u string) (*http.Request, *atomic.Int32) {
			req, _ := http.NewRequest(http.MethodPost, u, onlyReader{bytes.NewReader(payload)})
			if req.GetBody != nil {
				panic("test: GetBody set")
			}
			return req, nil
		}},
		{"GetBody", func(u string) (*http.Request, *atomic.Int32) {
			req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(payload))
			var calls atomic.Int32
			get := req.GetBody
			req.GetBody = func() (io.ReadCloser, error) { calls.Add(1); return get() }
			return req, &calls
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := startWorld(t, testworld.Options{DCR: true})
			base := http.DefaultTransport.(*http.Transport).Clone()
			t.Cleanup(base.CloseIdleConnections)
			rec := &bodyRecorder{next: base}
			tr := newTransport(t, worldConfig(w), httpdriver.Options{Base: rec})

			req, calls := tc.request(w.MCPURL())
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(got), `"text":"x"`) {
				t.Fatalf("response %d %s", resp.StatusCode, got)
			}
			sends := rec.Sends()
			if len(sends) != 2 {
				t.Fatalf("%d sends, want 2 (refused, then authorized)", len(sends))
			}
			if sends[0].auth != "" || !strings.HasPrefix(sends[1].auth, "Bearer ") {
				t.Errorf("authorization headers %q, %q: want none, then a bearer token", sends[0].auth, sends[1].auth)
			}
			for i, s := range sends {
				if !bytes.Equal(s.body, payload) {
					t.Errorf("send %d body %q, want %q", i+1, s.body, payload)
				}
			}
			// The first send takes the caller's body; each re-send a copy.
			if calls != nil && calls.Load() != int32(len(sends)-1) {
				t.Errorf("GetBody called %d times, want one per re-send (%d)", calls.Load(), len(sends)-1)
			}
		})
	}
}

// TestRoundTripClosesRequestBody: http.RoundTripper "must always close the
// body, including on errors"; with GetBody the transport sends copies, so
// the caller's own body must still be closed.
func TestRoundTripClosesRequestBody(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true})
	tr := newTransport(t, worldConfig(w), httpdriver.Options{})
	payload := callBody(1, "echo")
	body := &closeTracker{Reader: bytes.NewReader(payload)}
	req, _ := http.NewRequest(http.MethodPost, w.MCPURL(), body)
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(payload)), nil }
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	resp.Body.Close()
	if !body.closed.Load() {
		t.Errorf("request body not closed by RoundTrip")
	}
}

// TestRoundTripClosesRequestBodyWithoutGetBody is the same contract on the
// buffered path.
func TestRoundTripClosesRequestBodyWithoutGetBody(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true})
	tr := newTransport(t, worldConfig(w), httpdriver.Options{})
	body := &closeTracker{Reader: bytes.NewReader(callBody(1, "echo"))}
	req, _ := http.NewRequest(http.MethodPost, w.MCPURL(), body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	resp.Body.Close()
	if !body.closed.Load() {
		t.Errorf("request body not closed by RoundTrip")
	}
}

// TestRoundTripDoesNotModifyRequest: the caller's request keeps its headers
// (no credential is written into it).
func TestRoundTripDoesNotModifyRequest(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true})
	tr := newTransport(t, worldConfig(w), httpdriver.Options{})
	req, _ := http.NewRequest(http.MethodPost, w.MCPURL(), bytes.NewReader(rpcBody(1)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if req.Header.Get("Authorization") != "" || len(req.Header) != 2 {
		t.Errorf("caller's request modified: %v", req.Header)
	}
}

// TestForeignOriginGetsNoCredential: a request to another origin through
// the same transport never carries the MCP server's credential.
func TestForeignOriginGetsNoCredential(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true})
	var mu sync.Mutex
	var seen []http.Header
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		if r.URL.Path == "/challenge" {
			// Even a challenge from elsewhere starts nothing.
			rw.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+w.PRMURL()+`"`)
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(rw, "ok")
	}))
	t.Cleanup(other.Close)
	tr := newTransport(t, worldConfig(w), httpdriver.Options{})
	c := &http.Client{Transport: tr}
	mustPost(t, c, w.MCPURL(), rpcBody(1)) // authenticated now
	before := w.Stats()

	for _, path := range []string{"/", "/mcp", "/challenge"} {
		resp, err := c.Get(other.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
	}
	// The same host on another port is another origin too.
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 {
		t.Fatalf("other origin saw %d requests, want 3", len(seen))
	}
	for i, h := range seen {
		if v := h.Values("Authorization"); len(v) != 0 {
			t.Errorf("request %d to another origin carried Authorization %q", i+1, v)
		}
	}
	if after := w.Stats(); after.PRMRequests != before.PRMRequests || after.Authorizations != before.Authorizations {
		t.Errorf("a 401 from another origin started discovery or authorization")
	}
}

// TestForeignOriginUntouched: "requests elsewhere pass through untouched"
// (package doc): a credential the caller set for another API stays.
func TestForeignOriginUntouched(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true})
	got := make(chan string, 1)
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
	}))
	t.Cleanup(other.Close)
	tr := newTransport(t, worldConfig(w), httpdriver.Options{})
	req, _ := http.NewRequest(http.MethodGet, other.URL, nil)
	req.Header.Set("Authorization", "Basic b3RoZXI6YXBp")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	resp.Body.Close()
	if h := <-got; h != "Basic b3RoZXI6YXBp" {
		t.Errorf("other origin saw Authorization %q, want the caller's own", h)
	}
}

// TestCallerCredentialReplaced: a caller-set Authorization header to the
// MCP server is replaced by the machine's credential, never combined.
func TestCallerCredentialReplaced(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true})
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	rec := &bodyRecorder{next: base}
	tr := newTransport(t, worldConfig(w), httpdriver.Options{Base: rec})
	req, _ := http.NewRequest(http.MethodPost, w.MCPURL(), bytes.NewReader(rpcBody(1)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer caller-supplied")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for i, s := range rec.Sends() {
		if strings.Contains(s.auth, "caller-supplied") {
			t.Errorf("send %d carried the caller's credential %q", i+1, s.auth)
		}
	}
}

// TestTransportContextCancel: a request whose context ends while it waits
// for the authorization returns the context's error, and the transport
// keeps working.
func TestTransportContextCancel(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true})
	entered := make(chan struct{})
	release := make(chan struct{})
	agent := blockingAgent{entered: entered, release: release, next: httpdriver.HeadlessUserAgent{}}
	tr := newTransport(t, worldConfig(w), httpdriver.Options{UserAgent: agent})
	c := &http.Client{Transport: tr}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := postMCP(ctx, c, w.MCPURL(), rpcBody(1))
		done <- err
	}()
	<-entered // the request is parked behind the authorization
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	close(release)
	mustPost(t, c, w.MCPURL(), rpcBody(2))
	if st := w.Stats(); st.Authorizations != 1 {
		t.Errorf("authorizations = %d, want 1", st.Authorizations)
	}
}

// blockingAgent waits for release before authorizing.
type blockingAgent struct {
	entered chan struct{}
	release chan struct{}
	next    httpdriver.HeadlessUserAgent
}

func (a blockingAgent) Authorize(ctx context.Context, authURL, redirectURI string) (string, error) {
	close(a.entered)
	select {
	case <-a.release:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return a.next.Authorize(ctx, authURL, redirectURI)
}

// TestNewTransportUnreadableStore: a record that cannot be decoded is
// reported, not silently dropped.
func TestNewTransportUnreadableStore(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true})
	store := driver.NewMemoryStore()
	if _, err := store.Put(context.Background(), "tokens:"+w.MCPURL(), []byte("{not json"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := httpdriver.NewTransport(context.Background(), worldConfig(w), httpdriver.Options{Store: store, UserAgent: httpdriver.HeadlessUserAgent{}})
	var re *driver.RecordError
	if !errors.As(err, &re) {
		t.Fatalf("NewTransport error %v, want *driver.RecordError", err)
	}
	// With a tracer it is the same error: one rule, whoever watches.
	tracer := newEffectTracer()
	_, err = httpdriver.NewTransport(context.Background(), worldConfig(w), httpdriver.Options{Store: store, Tracer: tracer, UserAgent: httpdriver.HeadlessUserAgent{}})
	if !errors.As(err, &re) {
		t.Fatalf("NewTransport with a tracer: error %v, want *driver.RecordError", err)
	}
	if errs := tracer.Errors(); len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), "unreadable") {
		t.Errorf("tracer errors %q, want the unreadable record", errs)
	}
	// Nothing overwrote the record on a guess.
	r, err := store.Get(context.Background(), "tokens:"+w.MCPURL())
	if err != nil || string(r.Value) != "{not json" {
		t.Errorf("unreadable record overwritten: %v %v", r, err)
	}
}

// TestRedirectToForeignOriginDropsCredential: when the MCP server redirects
// to another origin, the client follows without the credential.
func TestRedirectToForeignOriginDropsCredential(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true})
	seen := make(chan string, 1)
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Authorization")
		_, _ = io.WriteString(rw, "elsewhere")
	}))
	t.Cleanup(other.Close)
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	var redirected atomic.Bool
	redirecting := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == "/moved" {
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
				t.Errorf("the MCP origin got no credential")
			}
			redirected.Store(true)
			h := http.Header{"Location": {other.URL + "/landing"}}
			return &http.Response{StatusCode: http.StatusFound, Status: "302 Found", Header: h, Body: http.NoBody, Request: r, ProtoMajor: 1, ProtoMinor: 1}, nil
		}
		return base.RoundTrip(r)
	})
	tr := newTransport(t, worldConfig(w), httpdriver.Options{Base: redirecting})
	c := &http.Client{Transport: tr}
	mustPost(t, c, w.MCPURL(), rpcBody(1))
	resp, err := c.Get(w.ResourceOrigin() + "/moved")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !redirected.Load() || string(body) != "elsewhere" {
		t.Fatalf("redirect not followed: %q", body)
	}
	if h := <-seen; h != "" {
		t.Errorf("the other origin got Authorization %q", h)
	}
}
