package httpdriver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestStepUp: a 403 insufficient_scope costs one more authorization, for
// the union of the scopes held and the one challenged, and the call then
// succeeds.
func TestStepUp(t *testing.T) {
	w := startWorld(t, testworld.Options{
		DCR:             true,
		ScopesSupported: []string{"mcp:read"},
		ToolScopes:      map[string]string{"write": "mcp:write"},
	})
	log := newSecretLog()
	store := driver.NewMemoryStore()
	tr := newTransport(t, worldConfig(w), httpdriver.Options{
		Store:     store,
		UserAgent: spyAgent{next: httpdriver.HeadlessUserAgent{}, log: log},
	})
	cs := connectSDK(t, w, tr)
	listAndEcho(t, cs)
	if st := w.Stats(); st.Authorizations != 1 {
		t.Fatalf("authorizations before step-up = %d, want 1", st.Authorizations)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "write", Arguments: map[string]any{}})
	if err != nil {
		t.Fatalf("CallTool write: %v", err)
	}
	if res.IsError || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "written" {
		t.Fatalf("CallTool write = %+v", res)
	}
	st := w.Stats()
	if st.Authorizations != 2 || st.Forbidden != 1 || st.Registrations != 1 {
		t.Errorf("authorizations %d (want 2), 403s %d (want 1), registrations %d (want 1)", st.Authorizations, st.Forbidden, st.Registrations)
	}
	urls := log.AuthURLs()
	if len(urls) != 2 {
		t.Fatalf("authorization URLs: %d, want 2", len(urls))
	}
	for i, want := range []string{"mcp:read", "mcp:read mcp:write"} {
		u, err := url.Parse(urls[i])
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Query().Get("scope"); got != want {
			t.Errorf("authorization %d asked for scope %q, want %q", i+1, got, want)
		}
	}
	if tok := storedTokens(t, store, w.MCPURL()); tok == nil || tok.Scope != "mcp:read mcp:write" {
		t.Errorf("stored credential %v, want scope \"mcp:read mcp:write\"", tok)
	}
	// The wider credential serves every tool from now on.
	wantEcho(t, cs, "after step-up")
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "write", Arguments: map[string]any{}}); err != nil {
		t.Fatalf("second CallTool write: %v", err)
	}
	if st := w.Stats(); st.Authorizations != 2 || st.Forbidden != 1 {
		t.Errorf("after step-up: authorizations %d, 403s %d; want 2 and 1", st.Authorizations, st.Forbidden)
	}
}

// alwaysForbidden answers every tools/call of tool with 403
// insufficient_scope, as a server whose authorization server never grants
// the scope would; other requests go to next.
func alwaysForbidden(t *testing.T, next http.RoundTripper, tool, scope string) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Body != nil && r.Body != http.NoBody {
			b, err := io.ReadAll(r.Body)
			r.Body.Close()
			if err != nil {
				return nil, err
			}
			if bytes.Contains(b, []byte(`"name":"`+tool+`"`)) {
				if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
					t.Errorf("step-up resend without a credential")
				}
				h := http.Header{}
				h.Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+scope+`"`)
				h.Set("Content-Type", "application/json")
				return &http.Response{
					StatusCode: http.StatusForbidden, Status: "403 Forbidden", Header: h,
					Body: io.NopCloser(strings.NewReader(`{"error":"insufficient_scope"}`)), Request: r,
					Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				}, nil
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		return next.RoundTrip(r)
	})
}

// TestStepUpLimit: a server that keeps refusing for lack of scope ends the
// request with *machine.StepUpLimitError after the allowed step-ups.
func TestStepUpLimit(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true})
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	tr := newTransport(t, worldConfig(w), httpdriver.Options{Base: alwaysForbidden(t, base, "write", "mcp:admin")})
	c := &http.Client{Transport: tr}
	mustPost(t, c, w.MCPURL(), rpcBody(1))

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, _, err := postMCP(ctx, c, w.MCPURL(), callBody(2, "write"))
	var limit *machine.StepUpLimitError
	if !errors.As(err, &limit) {
		t.Fatalf("error %v (%T), want *machine.StepUpLimitError", err, err)
	}
	if limit.Scope != "mcp:admin" || limit.Limit != 2 {
		t.Errorf("StepUpLimitError %+v, want scope mcp:admin, limit 2", limit)
	}
	if st := w.Stats(); st.Authorizations != 3 {
		t.Errorf("authorizations = %d, want 1 + 2 step-ups", st.Authorizations)
	}
	// Other requests are unaffected.
	mustPost(t, c, w.MCPURL(), rpcBody(3))

	// Through the SDK the error stays inspectable.
	cs := connectSDK(t, w, tr)
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "write", Arguments: map[string]any{}})
	if !errors.As(err, &limit) {
		t.Errorf("SDK CallTool error %v, want *machine.StepUpLimitError in its chain", err)
	}
}

// TestStepUpStaleForbidden: a 403 that answers a send made with a
// credential the step-up has since replaced is answered by sending again
// with the wider credential, not by another authorization.
func TestStepUpStaleForbidden(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true, ToolScopes: map[string]string{"write": "mcp:write"}})
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	holding := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		var body []byte
		if r.Body != nil {
			body, _ = io.ReadAll(r.Body)
			r.Body.Close()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		resp, err := base.RoundTrip(r)
		if err == nil && resp.StatusCode == http.StatusForbidden && bytes.Contains(body, []byte(`"id":100`)) {
			once.Do(func() {
				close(held)
				<-release // answer only after the other call stepped up
			})
		}
		return resp, err
	})
	tr := newTransport(t, worldConfig(w), httpdriver.Options{Base: holding})
	c := &http.Client{Transport: tr}
	mustPost(t, c, w.MCPURL(), rpcBody(1))

	done := make(chan []byte, 1)
	go func() { done <- mustPostNoFatal(c, w.MCPURL(), callBody(100, "write")) }()
	<-held
	mustPost(t, c, w.MCPURL(), callBody(2, "write")) // steps up
	if st := w.Stats(); st.Authorizations != 2 {
		t.Fatalf("authorizations after the step-up = %d, want 2", st.Authorizations)
	}
	close(release)
	if b := <-done; b == nil {
		t.Errorf("the held call failed")
	}
	if st := w.Stats(); st.Authorizations != 2 {
		t.Errorf("authorizations = %d, want 2: the stale 403 started another step-up", st.Authorizations)
	}
}

// mustPostNoFatal is mustPost for other goroutines: nil on failure.
func mustPostNoFatal(c *http.Client, u string, body []byte) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	status, b, err := postMCP(ctx, c, u, body)
	if err != nil || status != http.StatusOK {
		return nil
	}
	return b
}
