package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Serialized is the baseline of issue 6, item 3: the MCP Python SDK's
// OAuthClientProvider design, where one lock is held across each protected
// round trip (`async with self.context.lock:` around `response = yield
// request`, released once the response headers are in). It adds the
// bearer token it was given and never refreshes: the benchmarks that use it
// hold a valid token, so this is the seed's hot path with nothing else in
// it.
type Serialized struct {
	Base  http.RoundTripper
	Token string

	mu sync.Mutex
}

// RoundTrip implements http.RoundTripper: clone, add the credential, and
// send under the one lock.
func (s *Serialized) RoundTrip(req *http.Request) (*http.Response, error) {
	clone := req.Clone(req.Context())
	clone.Header.Set("Authorization", "Bearer "+s.Token)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Base.RoundTrip(clone)
}

// Bearer is the bare baseline of issue 6, item 2: a plain http.Transport
// with the same valid token set on each request, and nothing else.
type Bearer struct {
	Base  http.RoundTripper
	Token string
}

// RoundTrip implements http.RoundTripper.
func (b *Bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	clone := req.Clone(req.Context())
	clone.Header.Set("Authorization", "Bearer "+b.Token)
	return b.Base.RoundTrip(clone)
}

// NewBase returns a fresh http.Transport configured alike for every side
// of a comparison: an idle pool large enough for idle connections, and,
// when redirect is set, every dial to a host:port key goes to the address
// it maps to instead. Redirecting lets a transport keep talking to the
// testworld MCP URL (so its stored credential and discovery still apply)
// while the bytes go to another loopback server (a minimal or a slow one).
func NewBase(idle int, redirect map[string]string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = idle
	t.MaxIdleConnsPerHost = idle
	t.IdleConnTimeout = 5 * time.Minute
	if len(redirect) > 0 {
		d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := redirect[addr]; ok {
				addr = to
			}
			return d.DialContext(ctx, network, addr)
		}
	}
	return t
}

// ListTools is a JSON-RPC tools/list request: the stateless testworld MCP
// server needs no initialize first.
func ListTools(id int) []byte {
	return []byte(`{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"tools/list","params":{}}`)
}

// CallTool is a JSON-RPC tools/call request.
func CallTool(id int, tool string) []byte {
	return []byte(`{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"text":"x"}}}`)
}

// Post sends one MCP POST of body to url through c, reads the whole answer
// and requires want (a status code).
func Post(ctx context.Context, c *http.Client, url string, body []byte, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		if len(b) > 200 {
			b = b[:200]
		}
		return fmt.Errorf("bench: POST %s: status %d, want %d: %s", url, resp.StatusCode, want, b)
	}
	return nil
}
