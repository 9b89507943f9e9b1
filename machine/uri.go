package machine

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// URL rules. Everything here works on strings: url.Parse is used to
// validate and to read components, but a URL that must stay verbatim (a PRM
// resource, an issuer) is never re-serialized through *url.URL, which may
// re-escape a path or add a "/" (Q-15: that broke Entra). Built URLs take
// the path byte for byte from the input.

// maxURLLen bounds every URL the machine accepts (spec-checklist limits:
// URL ≤ 8 KiB).
const maxURLLen = 8 << 10

// Well-known path suffixes.
const (
	wellKnownPRM  = "/.well-known/oauth-protected-resource"   // RFC 9728 §3
	wellKnownAS   = "/.well-known/oauth-authorization-server" // RFC 8414 §3
	wellKnownOIDC = "/.well-known/openid-configuration"       // OIDC Discovery §4
)

// parseAbsoluteHTTP parses raw as an absolute http or https URL with a
// host. It returns the URL, or a reason it is not one.
func parseAbsoluteHTTP(raw string) (*url.URL, string) {
	if len(raw) > maxURLLen {
		return nil, "longer than " + strconv.Itoa(maxURLLen) + " bytes"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "not a url"
	}
	if u.Scheme != "http" && u.Scheme != "https" { // url.Parse lower-cases the scheme
		return nil, "not an absolute http or https url"
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, "no host"
	}
	// An IP literal in brackets must be an IPv6 address without zone (a
	// zone names a local interface: no place in OAuth URLs); a ':' or a
	// bracket anywhere else in the host is not a host (RFC 3986 §3.2.2).
	if h := u.Hostname(); strings.HasPrefix(u.Host, "[") {
		addr, err := netip.ParseAddr(h)
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return nil, "invalid ip literal"
		}
	} else if strings.ContainsAny(h, ":[]%") {
		return nil, "invalid host"
	}
	return u, ""
}

// splitRawURL returns the path and query of an absolute URL exactly as
// written in raw (after parseAbsoluteHTTP accepted it). The authority
// cannot contain '/', '?' or '#', so the first '/' after "://" starts the
// path (RFC 3986 §3).
func splitRawURL(raw string) (path, query string, hasQuery bool) {
	rest, _, _ := strings.Cut(raw, "#")
	rest, query, hasQuery = strings.Cut(rest, "?")
	if _, after, ok := strings.Cut(rest, "://"); ok {
		rest = after
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		path = rest[i:]
	}
	return path, query, hasQuery
}

// canonicalOrigin is scheme://host[:port] with scheme and host lower-cased
// and the default port dropped (RFC 3986 §6.2.2.1, §6.2.3).
func canonicalOrigin(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") { // IPv6 literal (parseAbsoluteHTTP refused zones)
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" && !isDefaultPort(u.Scheme, p) {
		host += ":" + p
	}
	return u.Scheme + "://" + host
}

func isDefaultPort(scheme, port string) bool {
	n, err := strconv.Atoi(port)
	if err != nil {
		return false
	}
	return (scheme == "http" && n == 80) || (scheme == "https" && n == 443)
}

// ResourceMetadataURLs returns the RFC 9728 §3.1 well-known URLs for an
// MCP server URL in the MCP 2025-11-25 probe order (A-PRM-03): the
// path-inserted URL ("" when the server URL has no path) then the root URL.
// Query and fragment of the server URL are dropped.
func ResourceMetadataURLs(serverURL string) (pathInserted, root string, err error) {
	u, reason := parseAbsoluteHTTP(serverURL)
	if u == nil {
		return "", "", newInsecureURLError(serverURL, reason)
	}
	if u.User != nil {
		return "", "", newInsecureURLError(serverURL, "has userinfo")
	}
	origin := canonicalOrigin(u)
	root = origin + wellKnownPRM
	// RFC 9728 §3.1: a terminating "/" after the host is removed before
	// inserting; the rest of the path is kept byte for byte.
	path, _, _ := splitRawURL(serverURL)
	if path == "" || path == "/" {
		return "", root, nil
	}
	return origin + wellKnownPRM + path, root, nil
}

// ServerMetadataURLs returns the candidates for an issuer in the
// A-ASM-03/04 order; one terminating "/" of the issuer path is removed first
// (RFC 8414 §3.1, Q-02). No path: [/.well-known/oauth-authorization-server,
// /.well-known/openid-configuration]. With path P:
// [/.well-known/oauth-authorization-server/P,
// /.well-known/openid-configuration/P, /P/.well-known/openid-configuration]
// — never the root document for an issuer that has a path.
func ServerMetadataURLs(issuer string) ([]string, error) {
	u, reason := parseAbsoluteHTTP(issuer)
	if u == nil {
		return nil, newInsecureURLError(issuer, reason)
	}
	if u.User != nil {
		return nil, newInsecureURLError(issuer, "has userinfo")
	}
	path, _, hasQuery := splitRawURL(issuer)
	if hasQuery || strings.Contains(issuer, "#") { // RFC 8414 §2: no query or fragment
		return nil, newInsecureURLError(issuer, "issuer has a query or fragment")
	}
	origin := canonicalOrigin(u)
	path = strings.TrimSuffix(path, "/") // one, not all (RFC 8414 §3.1)
	if path == "" {
		return []string{origin + wellKnownAS, origin + wellKnownOIDC}, nil
	}
	return []string{
		origin + wellKnownAS + path,   // RFC 8414 §3.1 path insertion
		origin + wellKnownOIDC + path, // RFC 8414 §5 compatibility
		origin + path + wellKnownOIDC, // OIDC Discovery §4.1 appending
	}, nil
}

// CheckSecureURL: absolute http(s) URL, no userinfo, no fragment; https
// required unless the host is a loopback host (localhost, 127.0.0.0/8, ::1)
// (A-TLS-01, design §4.7). Error *InsecureURLError{URL, Reason} (the URL is
// printed without its query).
func CheckSecureURL(raw string) error {
	u, reason := parseAbsoluteHTTP(raw)
	if u == nil {
		return newInsecureURLError(raw, reason)
	}
	if u.User != nil { // E-19, E-36: userinfo is a phishing and credential-leak vector
		return newInsecureURLError(raw, "has userinfo")
	}
	if strings.Contains(raw, "#") { // RFC 6749 §3.1.2, RFC 8707 §2: no fragment
		return newInsecureURLError(raw, "has a fragment")
	}
	// OAuth 2.1 §1.5, B-21-01; loopback exemption for development and the
	// conformance suite (E-66).
	if u.Scheme != "https" && !IsLoopbackHost(u.Hostname()) {
		return newInsecureURLError(raw, "https is required for a host that is not a loopback host")
	}
	return nil
}

// IsLoopbackHost reports whether host (a host name or IP literal, without
// port; IPv6 with or without brackets) is "localhost" or a loopback
// address (127.0.0.0/8, ::1, and IPv4-mapped forms of 127.0.0.0/8). Other
// names under .localhost are not trusted: resolvers differ (RFC 6761 §6.3).
func IsLoopbackHost(host string) bool {
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if equalFoldASCII(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || addr.Zone() != "" {
		return false
	}
	return addr.Unmap().IsLoopback()
}

// SameOrigin compares scheme, host and port after lower-casing scheme and
// host and dropping default ports (RFC 6454 §5). Unparsable or relative
// URLs are never the same origin as anything.
func SameOrigin(a, b string) bool {
	ua, _ := parseAbsoluteHTTP(a)
	ub, _ := parseAbsoluteHTTP(b)
	if ua == nil || ub == nil {
		return false
	}
	return canonicalOrigin(ua) == canonicalOrigin(ub)
}

// ResourceMatches checks a PRM resource against the MCP server URL (RFC
// 9728 §3.3, A-PRM-06): canonical comparison (lower-case scheme/host,
// default port removed, empty path == "/", Q-01/Q-15); exact by default;
// with allowPrefix, the same origin and the resource path is a prefix of
// the server path at a segment boundary (D-02). Never another origin
// (conformance auth/resource-mismatch). Error *ResourceMismatchError.
func ResourceMatches(resource, serverURL string, allowPrefix bool) error {
	mismatch := &ResourceMismatchError{Resource: printableURL(resource), Server: printableURL(serverURL)}
	r, _ := parseAbsoluteHTTP(resource)
	s, _ := parseAbsoluteHTTP(serverURL)
	if r == nil || s == nil || r.User != nil || s.User != nil {
		return mismatch
	}
	if strings.Contains(resource, "#") { // RFC 8707 §2: a resource has no fragment
		return mismatch
	}
	if canonicalOrigin(r) != canonicalOrigin(s) {
		return mismatch
	}
	rp, rq, _ := splitRawURL(resource)
	sp, sq, _ := splitRawURL(serverURL) // the server URL's fragment is never sent: ignored
	if rp == "" {
		rp = "/"
	}
	if sp == "" {
		sp = "/"
	}
	if rp == sp && rq == sq {
		return nil
	}
	if allowPrefix && (rq == "" || rq == sq) && !hasDotSegment(rp) && !hasDotSegment(sp) && pathPrefixAtSegment(rp, sp) {
		return nil
	}
	return mismatch
}

// pathPrefixAtSegment reports whether prefix is path or a prefix of path
// that ends at a "/" boundary ("/mcp" is a prefix of "/mcp/x", not of
// "/mcpx").
func pathPrefixAtSegment(prefix, path string) bool {
	if prefix == path {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

// hasDotSegment reports a "." or ".." segment, plain or percent-encoded:
// "/mcp/../admin" must not pass as being under "/mcp" (RFC 3986 §5.2.4).
func hasDotSegment(path string) bool {
	for _, seg := range strings.Split(path, "/") {
		seg = strings.ReplaceAll(strings.ToLower(seg), "%2e", ".")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// IssuerMatches: exact string equality (RFC 8414 §3.3, A-ASM-06); with
// tolerateEmptyPathSlash, "https://h" equals "https://h/" (only when the
// path is otherwise empty, Q-01; "/oauth2" != "/oauth2/").
func IssuerMatches(got, want string, tolerateEmptyPathSlash bool) bool {
	if got == want {
		return true
	}
	if !tolerateEmptyPathSlash {
		return false
	}
	short, long := got, want
	if len(short) > len(long) {
		short, long = long, short
	}
	if long != short+"/" {
		return false
	}
	// short must be exactly scheme://authority: nothing after the host.
	_, authority, ok := strings.Cut(short, "://")
	return ok && authority != "" && !strings.ContainsAny(authority, "/?#")
}

// CanonicalResource returns the MCP server's canonical URI for the RFC 8707
// resource parameter when no PRM named one (MCP 2025-06-18 Canonical Server
// URI): lower-case scheme and host, default port dropped, no fragment, no
// query, path kept, no trailing slash for an empty path.
func CanonicalResource(serverURL string) (string, error) {
	u, reason := parseAbsoluteHTTP(serverURL)
	if u == nil {
		return "", newInsecureURLError(serverURL, reason)
	}
	if u.User != nil {
		return "", newInsecureURLError(serverURL, "has userinfo")
	}
	path, _, _ := splitRawURL(serverURL)
	if path == "/" {
		path = ""
	}
	return canonicalOrigin(u) + path, nil
}
