package httpdriver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Destination policy: which hosts auxiliary requests may reach.
//
// Discovery lets a server steer the client: a 401's resource_metadata, the
// PRM's authorization_servers and the metadata's endpoints are all URLs a
// server chooses (spec-checklist E-19, E-36, E-63). On a user's machine that
// is what a browser does all day; in a server-side deployment (a hosted MCP
// client, a gateway) it is server-side request forgery: the client could be
// made to GET http://169.254.169.254/latest/meta-data/ or to POST a code and
// verifier to an internal service. The machine already refuses plain http
// to anything but loopback; a DestinationPolicy adds the address check that
// URL rules cannot do, because only the resolver knows where a name points.
//
// The default is no policy (every address is allowed, loopback included):
// local development servers and the conformance suite run on loopback.
// Server-side deployments plug NewPolicyClient(PublicOnly) into
// Requester.Client and HeadlessUserAgent.Client (docs/security.md).

// DestinationPolicy decides whether a connection to host may be made. host
// is the name from the URL (lower-cased, without a trailing dot) or an IP
// literal; ips are every address it resolved to (just the literal for an
// IP). It returns nil to allow the connection, or an error, preferably a
// *DestinationRefusedError, to refuse it. It is called once per new
// connection, before any byte is sent, and must be safe for concurrent use.
type DestinationPolicy func(ctx context.Context, host string, ips []netip.Addr) error

// DestinationRefusedError reports a connection a DestinationPolicy refused.
// Nothing was sent to the destination.
type DestinationRefusedError struct {
	Host   string     // the host as dialled: a name or an IP literal
	Addr   netip.Addr // the refused address; invalid when the name itself was refused
	Reason string     // why, e.g. "loopback address", "cloud metadata service"
}

// Retryable: the policy will refuse the same destination again.
func (e *DestinationRefusedError) Retryable() bool { return false }

func (e *DestinationRefusedError) Error() string {
	if e.Addr.IsValid() && e.Addr.String() != e.Host {
		return fmt.Sprintf("httpdriver: destination %s (%s) refused: %s", e.Host, e.Addr, e.Reason)
	}
	return fmt.Sprintf("httpdriver: destination %s refused: %s", e.Host, e.Reason)
}

// PublicOnly is the policy for server-side deployments: it allows only
// globally routable unicast addresses. It refuses
//
//   - loopback (127.0.0.0/8, ::1), unspecified (0.0.0.0/8, ::) and the rest
//     of ::/8;
//   - private (10/8, 172.16/12, 192.168/16) and unique-local (fc00::/7);
//   - link-local (169.254/16, fe80::/10), site-local (fec0::/10), scoped
//     addresses (fe80::1%eth0) and every multicast and broadcast address;
//   - shared address space / CGNAT (100.64/10), IETF protocol assignments
//     (192.0.0.0/24), documentation, benchmarking and reserved ranges;
//   - cloud metadata services by address (169.254.169.254, 169.254.170.2,
//     fd00:ec2::254, 100.100.100.200, 168.63.129.16 — the last is public
//     space, Azure's wire server) and by name (metadata.google.internal,
//     metadata.goog, any *.internal, *.localhost, *.local, localhost);
//   - IPv4 addresses wrapped in IPv6 (IPv4-mapped, NAT64 64:ff9b::/96 and
//     64:ff9b:1::/48, 6to4 2002::/16) whose IPv4 address is refused.
//
// A host is refused when any one of its addresses is: a name that resolves
// to a public and a private address is not used at all (an attacker who
// controls the DNS answer picks the order).
func PublicOnly(_ context.Context, host string, ips []netip.Addr) error {
	if reason := refusedName(host); reason != "" {
		return &DestinationRefusedError{Host: host, Reason: reason}
	}
	if len(ips) == 0 {
		return &DestinationRefusedError{Host: host, Reason: "no address"}
	}
	for _, ip := range ips {
		if reason := refusedAddr(ip); reason != "" {
			return &DestinationRefusedError{Host: host, Addr: ip, Reason: reason}
		}
	}
	return nil
}

// refusedName returns why PublicOnly refuses a host name whatever it
// resolves to, or "".
func refusedName(host string) string {
	h := normalizeHost(host)
	switch {
	case h == "localhost" || strings.HasSuffix(h, ".localhost"):
		return "loopback name (rfc 6761)"
	case h == "metadata" || h == "metadata.goog" || h == "metadata.google.internal":
		return "cloud metadata service"
	case strings.HasSuffix(h, ".internal"):
		return "private-use name (.internal)"
	case strings.HasSuffix(h, ".local"):
		return "link-local name (.local, rfc 6762)"
	}
	return ""
}

// metadataAddrs are cloud instance-metadata and platform services.
var metadataAddrs = map[netip.Addr]bool{
	netip.MustParseAddr("169.254.169.254"): true, // AWS, GCP, Azure, OCI, DigitalOcean, OpenStack
	netip.MustParseAddr("169.254.170.2"):   true, // AWS ECS task metadata and credentials
	netip.MustParseAddr("169.254.170.23"):  true, // AWS EKS pod identity agent
	netip.MustParseAddr("fd00:ec2::254"):   true, // AWS IMDS over IPv6
	netip.MustParseAddr("fd00:ec2::23"):    true, // AWS EKS pod identity agent over IPv6
	netip.MustParseAddr("100.100.100.200"): true, // Alibaba Cloud
	netip.MustParseAddr("168.63.129.16"):   true, // Azure wire server (public space)
	netip.MustParseAddr("192.0.0.192"):     true, // Oracle Cloud Classic
}

// specialPrefixes are the IANA special-purpose ranges that are not
// globally reachable and that netip's predicates do not cover (RFC 6890 and
// its registries).
var specialPrefixes = []struct {
	p      netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (cgnat)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "ietf protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use nat64 address"}, // before ::/8, which holds it
	{netip.MustParsePrefix("::/8"), "reserved address"},
	{netip.MustParsePrefix("100::/64"), "discard-only address"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation address"},
	{netip.MustParsePrefix("fec0::/10"), "site-local address"},
}

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// refusedAddr returns why PublicOnly refuses an address, or "".
func refusedAddr(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid address"
	}
	if ip.Zone() != "" {
		return "scoped address"
	}
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	if metadataAddrs[ip] {
		return "cloud metadata service"
	}
	switch {
	case ip.IsUnspecified():
		return "unspecified address"
	case ip.IsLoopback():
		return "loopback address"
	case ip.Is4() && ip.IsPrivate():
		return "private address"
	case ip.IsPrivate():
		return "unique-local address"
	case ip.IsLinkLocalUnicast():
		return "link-local address"
	case ip.IsMulticast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast():
		return "multicast address"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast address"
	}
	// IPv4 inside IPv6: a NAT64 or 6to4 gateway would carry the
	// connection to the embedded IPv4 address, which decides.
	b := ip.As16()
	switch {
	case nat64Prefix.Contains(ip):
		if r := refusedAddr(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})); r != "" {
			return "nat64 of a " + r
		}
		return ""
	case sixToFour.Contains(ip):
		if r := refusedAddr(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})); r != "" {
			return "6to4 of a " + r
		}
		return ""
	}
	for _, s := range specialPrefixes {
		if s.p.Contains(ip) {
			return s.reason
		}
	}
	return ""
}

// Resolver looks up the addresses of a host; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// PolicyDialer makes connections only to destinations its Policy allows.
// It resolves the host itself, asks the policy with every address, and
// then connects to those addresses only, by IP: the name is never resolved
// a second time, so a DNS answer that changes between the check and the
// connection (DNS rebinding) cannot bypass the policy. The socket's peer
// address is checked once more just before connect.
type PolicyDialer struct {
	// Policy decides; required (a nil Policy refuses every destination).
	Policy DestinationPolicy
	// Resolver looks host names up; default net.DefaultResolver.
	Resolver Resolver
	// Dialer connects; default a net.Dialer with a 10 s timeout and 30 s
	// keep-alive. Its Control and ControlContext still run.
	Dialer *net.Dialer
}

// DialContext implements the http.Transport DialContext hook.
func (d *PolicyDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("httpdriver: dial %s: %w", address, err)
	}
	host = normalizeHost(host)
	ips, err := d.resolve(ctx, network, host)
	if err != nil {
		return nil, err
	}
	if d.Policy == nil {
		return nil, &DestinationRefusedError{Host: host, Reason: "no destination policy configured"}
	}
	if err := d.Policy(ctx, host, ips); err != nil {
		return nil, err
	}
	dialer := d.dialer(host, ips)
	var errs []error
	for _, ip := range ips {
		conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// resolve returns the addresses of host: the literal itself for an IP,
// otherwise the resolver's answer for the network's address family.
func (d *PolicyDialer) resolve(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	family := "ip"
	switch network {
	case "tcp4", "udp4":
		family = "ip4"
	case "tcp6", "udp6":
		family = "ip6"
	}
	r := d.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupNetIP(ctx, family, host)
	if err != nil {
		return nil, fmt.Errorf("httpdriver: resolving %s: %w", host, err)
	}
	return ips, nil
}

// dialer returns a copy of the configured dialer whose ControlContext
// refuses any peer address that is not one the policy saw and allowed.
func (d *PolicyDialer) dialer(host string, allowed []netip.Addr) *net.Dialer {
	var nd net.Dialer
	if d.Dialer != nil {
		nd = *d.Dialer
	} else {
		nd = net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	}
	inner, innerCtx := nd.Control, nd.ControlContext
	nd.Control = nil
	nd.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &DestinationRefusedError{Host: host, Reason: "unparsable peer address"}
		}
		ok := false
		for _, ip := range allowed {
			if ip.Unmap() == ap.Addr().Unmap() && ip.Zone() == ap.Addr().Zone() {
				ok = true
				break
			}
		}
		if !ok {
			return &DestinationRefusedError{Host: host, Addr: ap.Addr(), Reason: "address was not checked by the policy"}
		}
		switch {
		case innerCtx != nil:
			return innerCtx(ctx, network, address, c)
		case inner != nil:
			return inner(network, address, c)
		}
		return nil
	}
	return &nd
}

// Transport returns an http.Transport with http.DefaultTransport's
// timeouts and limits whose every connection goes through d. It uses no
// proxy: through a proxy the policy would judge the proxy, not the
// destination.
func (d *PolicyDialer) Transport() *http.Transport {
	var t *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	} else {
		t = &http.Transport{
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	t.Proxy = nil
	t.DialContext = d.DialContext
	t.DialTLSContext = nil // TLS is layered by the transport over DialContext
	t.MaxResponseHeaderBytes = MaxAuxiliaryHeader
	return t
}

// NewPolicyTransport returns (&PolicyDialer{Policy: policy}).Transport().
func NewPolicyTransport(policy DestinationPolicy) *http.Transport {
	return (&PolicyDialer{Policy: policy}).Transport()
}

// NewPolicyClient returns an http.Client over NewPolicyTransport(policy),
// for Requester{Client: …} and HeadlessUserAgent{Client: …}. Requester
// sets its own redirect rules and timeout on a copy; every redirect hop is
// a new dial and so is checked again.
func NewPolicyClient(policy DestinationPolicy) *http.Client {
	return &http.Client{Transport: NewPolicyTransport(policy)}
}

// normalizeHost lower-cases a host and drops one trailing dot and IPv6
// brackets, so "LOCALHOST." and "localhost" are judged alike.
func normalizeHost(host string) string {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	host = strings.TrimSuffix(host, ".")
	return strings.ToLower(host)
}
