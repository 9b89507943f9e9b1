package httpdriver_test

import (
	"context"
	"github.com/mcpauth/mcpauth/driver"
	"net/http"
	"sync"
	"testing"

	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
)

// fanOut runs n requests through c at once (released together) and
// returns the errors of those that did not get a 200.
func fanOut(t *testing.T, c *http.Client, u string, n int) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			status, body, err := postMCP(ctx, c, u, rpcBody(i+1))
			if err == nil && status != http.StatusOK {
				err = &statusError{status, string(body)}
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return "status " + itoa(e.status) + ": " + e.body }

// TestConcurrentRequests: 64 requests at once against a server that needs
// authorization cause one registration, one authorization and one code
// exchange, and all succeed; after expiry, 64 more cause one refresh.
func TestConcurrentRequests(t *testing.T) {
	const n = 64
	w := startWorld(t, testworld.Options{DCR: true, RotateRefresh: true})
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = n
	t.Cleanup(base.CloseIdleConnections)
	tr := newTransport(t, worldConfig(w), httpdriver.Options{Base: base})
	c := &http.Client{Transport: tr}

	for _, err := range fanOut(t, c, w.MCPURL(), n) {
		t.Errorf("request failed: %v", err)
	}
	st := w.Stats()
	if st.Registrations != 1 || st.Authorizations != 1 || st.CodesIssued != 1 || st.TokenRequests["authorization_code"] != 1 {
		t.Errorf("first wave: registrations %d, authorizations %d, codes %d, code grants %d; want 1 each",
			st.Registrations, st.Authorizations, st.CodesIssued, st.TokenRequests["authorization_code"])
	}
	if st.PRMRequests != 1 || st.MetadataRequests != 1 {
		t.Errorf("first wave: PRM %d, metadata %d; want 1 each", st.PRMRequests, st.MetadataRequests)
	}
	if st.Authorized != n {
		t.Errorf("first wave: %d authorized requests, want %d (each sent exactly once with the credential)", st.Authorized, n)
	}

	w.ExpireAccessTokens()
	for _, err := range fanOut(t, c, w.MCPURL(), n) {
		t.Errorf("request after expiry failed: %v", err)
	}
	st2 := w.Stats()
	if got := st2.TokenRequests["refresh_token"]; got != 1 {
		t.Errorf("second wave: %d refresh grants, want 1", got)
	}
	if st2.Authorizations != 1 || st2.Registrations != 1 || st2.InvalidGrants != 0 || st2.FamiliesRevoked != 0 {
		t.Errorf("second wave: %+v", st2)
	}
	if d := st2.Authorized - st.Authorized; d != n {
		t.Errorf("second wave: %d authorized requests, want %d", d, n)
	}
	if snap := tr.Session().Snapshot(); snap.Requests.Len() != 0 || snap.Requests.Parked() != 0 {
		t.Errorf("requests left in the machine: %v", snap)
	}
}

// TestConcurrentStepUp: many calls refused for the same missing scope at
// once cost one step-up authorization, and all succeed.
func TestConcurrentStepUp(t *testing.T) {
	const n = 16
	w := startWorld(t, testworld.Options{DCR: true, ToolScopes: map[string]string{"write": "mcp:write"}})
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = n
	t.Cleanup(base.CloseIdleConnections)
	tr := newTransport(t, worldConfig(w), httpdriver.Options{Base: base})
	c := &http.Client{Transport: tr}
	mustPost(t, c, w.MCPURL(), rpcBody(1))

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		go func() {
			<-start
			status, body, err := postMCP(ctx, c, w.MCPURL(), callBody(i+2, "write"))
			if err == nil && status != http.StatusOK {
				err = &statusError{status, string(body)}
			}
			errs <- err
		}()
	}
	close(start)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("write call: %v", err)
		}
	}
	if st := w.Stats(); st.Authorizations != 2 {
		t.Errorf("authorizations = %d, want 1 + one step-up", st.Authorizations)
	}
}

// TestSharedStoreSingleRefresh: two transports (two sessions of one
// program) over one store refresh an expired credential once between them;
// with rotating refresh tokens a second refresh would revoke the grant.
func TestSharedStoreSingleRefresh(t *testing.T) {
	const n = 16
	w := startWorld(t, testworld.Options{DCR: true, RotateRefresh: true})
	store := driver.NewMemoryStore()
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 2 * n
	t.Cleanup(base.CloseIdleConnections)
	a := &http.Client{Transport: newTransport(t, worldConfig(w), httpdriver.Options{Base: base, Store: store})}
	mustPost(t, a, w.MCPURL(), rpcBody(1))
	b := &http.Client{Transport: newTransport(t, worldConfig(w), httpdriver.Options{Base: base, Store: store})}
	mustPost(t, b, w.MCPURL(), rpcBody(1))
	if st := w.Stats(); st.Authorizations != 1 {
		t.Fatalf("the second transport authorized again: %+v", st)
	}

	w.ExpireAccessTokens()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	start := make(chan struct{})
	errs := make(chan error, 2*n)
	for i := range 2 * n {
		c := a
		if i%2 == 1 {
			c = b
		}
		go func() {
			<-start
			status, body, err := postMCP(ctx, c, w.MCPURL(), rpcBody(i+2))
			if err == nil && status != http.StatusOK {
				err = &statusError{status, string(body)}
			}
			errs <- err
		}()
	}
	close(start)
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Errorf("request: %v", err)
		}
	}
	st := w.Stats()
	if st.TokenRequests["refresh_token"] != 1 || st.FamiliesRevoked != 0 || st.InvalidGrants != 0 || st.Authorizations != 1 {
		t.Errorf("refresh grants %d (want 1), families revoked %d, invalid grants %d, authorizations %d",
			st.TokenRequests["refresh_token"], st.FamiliesRevoked, st.InvalidGrants, st.Authorizations)
	}
}
