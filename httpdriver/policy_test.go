package httpdriver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
)

// No test here connects anywhere but loopback: PublicOnly is exercised as a
// function on addresses, and the dialer tests allow only 127.0.0.1 through
// policies of their own.

func TestPublicOnlyAddresses(t *testing.T) {
	cases := []struct {
		addr   string
		reason string // "" = allowed
	}{
		// Allowed: global unicast, and the edges of refused ranges.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"172.15.255.255", ""},
		{"172.32.0.0", ""},
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"169.253.255.255", ""},
		{"2606:4700:4700::1111", ""},
		{"2a00:1450:4001:80b::200e", ""},
		{"64:ff9b::808:808", ""}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", ""},  // 6to4 of 8.8.8.8

		// Loopback and unspecified.
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "this-network"},
		{"::", "unspecified"},
		{"::127.0.0.1", "reserved"}, // IPv4-compatible (deprecated)
		// Private and unique-local.
		{"10.0.0.1", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"::ffff:10.1.2.3", "private"},
		{"fc00::1", "unique-local"},
		{"fdab:cdef::1", "unique-local"},
		// Link-local, site-local, scoped.
		{"169.254.0.1", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "scoped"},
		{"fec0::1", "site-local"},
		// CGNAT and other special ranges.
		{"100.64.0.1", "cgnat"},
		{"100.127.255.255", "cgnat"},
		{"192.0.0.8", "ietf protocol"},
		{"192.0.2.1", "documentation"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "broadcast"},
		{"2001:db8::1", "documentation"},
		{"100::1", "discard"},
		// Multicast.
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"ff05::2", "multicast"},
		// Cloud metadata.
		{"169.254.169.254", "cloud metadata"},
		{"::ffff:169.254.169.254", "cloud metadata"},
		{"169.254.170.2", "cloud metadata"},
		{"fd00:ec2::254", "cloud metadata"},
		{"100.100.100.200", "cloud metadata"},
		{"168.63.129.16", "cloud metadata"},
		// IPv4 inside IPv6 through a gateway.
		{"64:ff9b::a9fe:a9fe", "nat64 of a cloud metadata"},
		{"64:ff9b::7f00:1", "nat64 of a loopback"},
		{"64:ff9b::a00:1", "nat64 of a private"},
		{"64:ff9b:1::a00:1", "local-use nat64"},
		{"2002:7f00:1::", "6to4 of a loopback"},
		{"2002:a9fe:a9fe::1", "6to4 of a cloud metadata"},
	}
	for _, c := range cases {
		t.Run(c.addr, func(t *testing.T) {
			ip := netip.MustParseAddr(c.addr)
			err := httpdriver.PublicOnly(context.Background(), "h.example", []netip.Addr{ip})
			if c.reason == "" {
				if err != nil {
					t.Fatalf("PublicOnly(%s) = %v, want allowed", c.addr, err)
				}
				return
			}
			var re *httpdriver.DestinationRefusedError
			if !errors.As(err, &re) {
				t.Fatalf("PublicOnly(%s) = %v (%T), want *DestinationRefusedError", c.addr, err, err)
			}
			if !strings.Contains(re.Reason, c.reason) {
				t.Errorf("reason %q, want it to mention %q", re.Reason, c.reason)
			}
			if re.Addr != ip || re.Host != "h.example" {
				t.Errorf("error names %s (%s), want h.example (%s)", re.Host, re.Addr, ip)
			}
			if !strings.Contains(err.Error(), ip.String()) {
				t.Errorf("message %q does not name the address", err)
			}
		})
	}
}

func TestPublicOnlyNames(t *testing.T) {
	public := []netip.Addr{netip.MustParseAddr("8.8.8.8")}
	cases := []struct {
		host   string
		ips    []netip.Addr
		reason string
	}{
		{"api.example.com", public, ""},
		{"metadata.google.internal", public, "cloud metadata"},
		{"metadata.goog", public, "cloud metadata"},
		{"metadata", public, "cloud metadata"},
		{"METADATA.Google.Internal.", public, "cloud metadata"},
		{"instance-data.ec2.internal", public, ".internal"},
		{"localhost", public, "loopback name"},
		{"LocalHost.", public, "loopback name"},
		{"evil.localhost", public, "loopback name"},
		{"printer.local", public, ".local"},
		// A name with one bad address is refused whole: the attacker who
		// answers the DNS query chooses the order.
		{"mixed.example.com", []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("10.0.0.1")}, "private"},
		{"mixed6.example.com", []netip.Addr{netip.MustParseAddr("2606:4700::1"), netip.MustParseAddr("::1")}, "loopback"},
		{"empty.example.com", nil, "no address"},
	}
	for _, c := range cases {
		err := httpdriver.PublicOnly(context.Background(), c.host, c.ips)
		if c.reason == "" {
			if err != nil {
				t.Errorf("PublicOnly(%s) = %v, want allowed", c.host, err)
			}
			continue
		}
		var re *httpdriver.DestinationRefusedError
		if !errors.As(err, &re) || !strings.Contains(re.Reason, c.reason) {
			t.Errorf("PublicOnly(%s, %v) = %v, want refusal mentioning %q", c.host, c.ips, err, c.reason)
		}
	}
}

// policyResolver is a fake resolver: answers maps a host to the answer of
// each successive lookup (the last one repeats).
type policyResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	calls   map[string]int
	err     error
}

func (r *policyResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	n := r.calls[host]
	r.calls[host]++
	if r.err != nil {
		return nil, r.err
	}
	as, ok := r.answers[host]
	if !ok || len(as) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	if n >= len(as) {
		n = len(as) - 1
	}
	return as[n], nil
}

// Total counts every lookup.
func (r *policyResolver) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		n += c
	}
	return n
}

func (r *policyResolver) Calls(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

// policyOnly allows exactly the given addresses (loopback ones in these
// tests) and records every decision.
type policyOnly struct {
	allow map[netip.Addr]bool
	mu    sync.Mutex
	seen  []string
}

func (p *policyOnly) Policy(_ context.Context, host string, ips []netip.Addr) error {
	p.mu.Lock()
	p.seen = append(p.seen, fmt.Sprintf("%s=%v", host, ips))
	p.mu.Unlock()
	for _, ip := range ips {
		if !p.allow[ip] {
			return &httpdriver.DestinationRefusedError{Host: host, Addr: ip, Reason: "not on the test allow list"}
		}
	}
	return nil
}

// policyServer is a loopback server on addr that counts connections and
// requests.
type policyServer struct {
	*httptest.Server
	conns, reqs atomic.Int32
	hosts       chan string
}

func startPolicyServer(t *testing.T, addr string) *policyServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	ps := &policyServer{hosts: make(chan string, 16)}
	ps.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.reqs.Add(1)
		select {
		case ps.hosts <- r.Host:
		default:
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	ps.Listener.Close()
	ps.Listener = ln
	ps.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			ps.conns.Add(1)
		}
	}
	ps.Start()
	t.Cleanup(ps.Close)
	return ps
}

func policyGet(ctx context.Context, c *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// TestPolicyDialerUsesCheckedAddress: the name is resolved once per
// connection and the connection goes to the address the policy saw, by IP.
func TestPolicyDialerUsesCheckedAddress(t *testing.T) {
	srv := startPolicyServer(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	res := &policyResolver{answers: map[string][][]netip.Addr{
		"api.example.test": {{netip.MustParseAddr("127.0.0.1")}},
	}}
	pol := &policyOnly{allow: map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true}}
	d := &httpdriver.PolicyDialer{Policy: pol.Policy, Resolver: res}
	tr := d.Transport()
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	if err := policyGet(context.Background(), c, "http://API.Example.Test.:"+port+"/x"); err != nil {
		t.Fatalf("GET through an allowed name: %v", err)
	}
	if got := <-srv.hosts; !strings.HasPrefix(strings.ToLower(got), "api.example.test") {
		t.Errorf("Host header %q: the URL's name must still be sent", got)
	}
	if n := res.Calls("api.example.test"); n != 1 {
		t.Errorf("resolved %d times for one connection, want 1 (normalised name)", n)
	}
	if tr.Proxy != nil {
		t.Errorf("policy transport uses a proxy: the policy would judge the proxy")
	}
}

// TestPolicyDialerDNSRebinding: a name that resolves to an allowed address
// once and to a refused one afterwards gets its first connection and no
// other; the refused address never sees a connection, and nothing resolves
// the name behind the policy's back.
func TestPolicyDialerDNSRebinding(t *testing.T) {
	good := startPolicyServer(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(good.Listener.Addr().String())
	evil := startPolicyServer(t, "127.0.0.3:"+port) // same port, another loopback address
	res := &policyResolver{answers: map[string][][]netip.Addr{
		"rebind.example.test": {{netip.MustParseAddr("127.0.0.1")}, {netip.MustParseAddr("127.0.0.3")}},
	}}
	pol := &policyOnly{allow: map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true}}
	tr := (&httpdriver.PolicyDialer{Policy: pol.Policy, Resolver: res}).Transport()
	tr.DisableKeepAlives = true // every request dials
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	u := "http://rebind.example.test:" + port + "/"
	if err := policyGet(context.Background(), c, u); err != nil {
		t.Fatalf("first GET: %v", err)
	}
	for i := 0; i < 3; i++ {
		err := policyGet(context.Background(), c, u)
		var re *httpdriver.DestinationRefusedError
		if !errors.As(err, &re) || re.Addr != netip.MustParseAddr("127.0.0.3") {
			t.Fatalf("GET after rebinding: %v, want *DestinationRefusedError for 127.0.0.3", err)
		}
	}
	if n := evil.conns.Load(); n != 0 {
		t.Errorf("the rebound address got %d connections", n)
	}
	if n := good.reqs.Load(); n != 1 {
		t.Errorf("allowed server got %d requests, want 1", n)
	}
	if n := res.Calls("rebind.example.test"); n != 4 {
		t.Errorf("%d lookups for 4 dials, want exactly one per dial", n)
	}
}

// TestPolicyIPLiteral: an IP literal is judged without a lookup.
func TestPolicyIPLiteral(t *testing.T) {
	srv := startPolicyServer(t, "127.0.0.1:0")
	res := &policyResolver{err: errors.New("no lookup expected")}
	tr := (&httpdriver.PolicyDialer{Policy: httpdriver.PublicOnly, Resolver: res}).Transport()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	err := policyGet(context.Background(), c, srv.URL+"/")
	var re *httpdriver.DestinationRefusedError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "loopback") {
		t.Fatalf("GET %s: %v, want loopback refused", srv.URL, err)
	}
	if srv.conns.Load() != 0 {
		t.Errorf("refused destination got a connection")
	}
	if n := res.Total(); n != 0 {
		t.Errorf("an IP literal was looked up %d times", n)
	}
	// IPv6 literal in brackets.
	err = policyGet(context.Background(), c, "http://[::1]:1/")
	if !errors.As(err, &re) || re.Addr != netip.MustParseAddr("::1") {
		t.Errorf("GET [::1]: %v, want ::1 refused", err)
	}
}

// TestPolicyResolverFailure: a lookup error is an error (not a refusal),
// and nothing is dialled.
func TestPolicyResolverFailure(t *testing.T) {
	res := &policyResolver{} // knows no host
	called := false
	pol := func(context.Context, string, []netip.Addr) error { called = true; return nil }
	tr := (&httpdriver.PolicyDialer{Policy: pol, Resolver: res}).Transport()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	err := policyGet(context.Background(), c, "http://nowhere.example.test:1/")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		t.Fatalf("GET unknown host: %v, want a *net.DNSError", err)
	}
	var re *httpdriver.DestinationRefusedError
	if errors.As(err, &re) {
		t.Errorf("a lookup failure reported as a refusal: %v", err)
	}
	if called {
		t.Errorf("policy called without addresses")
	}
}

// TestPolicyNilRefuses: a dialer without a policy fails closed.
func TestPolicyNilRefuses(t *testing.T) {
	srv := startPolicyServer(t, "127.0.0.1:0")
	c := &http.Client{Transport: (&httpdriver.PolicyDialer{}).Transport(), Timeout: 5 * time.Second}
	var re *httpdriver.DestinationRefusedError
	if err := policyGet(context.Background(), c, srv.URL); !errors.As(err, &re) {
		t.Fatalf("GET with nil policy: %v, want refusal", err)
	}
	if srv.conns.Load() != 0 {
		t.Errorf("nil policy let a connection through")
	}
}

// TestPolicyClientInRequester: NewPolicyClient(PublicOnly) plugged into the
// Requester refuses a loopback destination (what an SSRF through a
// resource_metadata URL would reach) with the typed error, before any
// byte is sent; a custom policy's own error type comes back too.
func TestPolicyClientInRequester(t *testing.T) {
	srv := startPolicyServer(t, "127.0.0.1:0")
	r := &httpdriver.Requester{Client: httpdriver.NewPolicyClient(httpdriver.PublicOnly), Timeout: 5 * time.Second}
	_, err := r.Fetch(context.Background(), effects.Fetch{Seq: 1, Method: http.MethodGet, URL: srv.URL + "/.well-known/oauth-protected-resource"})
	var re *httpdriver.DestinationRefusedError
	if !errors.As(err, &re) {
		t.Fatalf("Fetch: %v (%T), want *DestinationRefusedError", err, err)
	}
	// A POST carrying secrets is refused the same way.
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	_, err = r.Fetch(context.Background(), effects.Fetch{Seq: 2, Method: http.MethodPost, URL: "http://localhost:" + port + "/token", Body: []byte("code=secret-code")})
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "loopback") {
		t.Fatalf("Fetch localhost: %v, want loopback refused", err)
	}
	if strings.Contains(err.Error(), "secret-code") {
		t.Errorf("error leaks the body: %v", err)
	}
	if srv.conns.Load() != 0 || srv.reqs.Load() != 0 {
		t.Errorf("refused destination saw %d connections, %d requests", srv.conns.Load(), srv.reqs.Load())
	}

	type customRefusal struct{ error }
	custom := func(_ context.Context, host string, _ []netip.Addr) error {
		return customRefusal{fmt.Errorf("host %s is not on the list", host)}
	}
	r = &httpdriver.Requester{Client: httpdriver.NewPolicyClient(custom), Timeout: 5 * time.Second}
	_, err = r.Fetch(context.Background(), effects.Fetch{Seq: 3, Method: http.MethodGet, URL: srv.URL})
	var cr customRefusal
	if !errors.As(err, &cr) {
		t.Errorf("custom policy error lost: %v (%T)", err, err)
	}
}

// TestPolicyDefaultAllowsLoopback documents the default: a Requester
// without a policy reaches loopback (development servers, the conformance
// suite).
func TestPolicyDefaultAllowsLoopback(t *testing.T) {
	srv := startPolicyServer(t, "127.0.0.1:0")
	r := &httpdriver.Requester{Timeout: 5 * time.Second}
	resp, err := r.Fetch(context.Background(), effects.Fetch{Seq: 1, Method: http.MethodGet, URL: srv.URL})
	if err != nil || resp.Status != 200 {
		t.Fatalf("default Requester to loopback: %v %d", err, resp.Status)
	}
}

// TestPolicyControlChains: a caller's own Dialer.Control still runs, after
// the policy's address check.
func TestPolicyControlChains(t *testing.T) {
	srv := startPolicyServer(t, "127.0.0.1:0")
	var ran atomic.Int32
	d := &httpdriver.PolicyDialer{
		Policy: (&policyOnly{allow: map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true}}).Policy,
		Dialer: &net.Dialer{Timeout: time.Second, Control: func(string, string, syscall.RawConn) error {
			ran.Add(1)
			return nil
		}},
	}
	tr := d.Transport()
	t.Cleanup(tr.CloseIdleConnections)
	if err := policyGet(context.Background(), &http.Client{Transport: tr, Timeout: 5 * time.Second}, srv.URL); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 1 {
		t.Errorf("caller's Control ran %d times, want 1", ran.Load())
	}
}
