package testworld

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// handleAuthorize is the authorization endpoint (RFC 6749 §4.1.1 as profiled
// by OAuth 2.1 and MCP 2025-11-25). It approves automatically.
//
// Order matters: until client_id and redirect_uri are validated the AS must
// not redirect (RFC 6749 §4.1.2.1 — an open redirector otherwise), so those
// errors are a 400 page; every later error goes back to the client.
func (as *authServer) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	as.w.stats.add(func(s *Stats) { s.Authorizations++ })
	q := r.URL.Query()

	if len(q["client_id"]) != 1 || q.Get("client_id") == "" {
		authorizePage(w, "client_id missing or repeated")
		return
	}
	c, ok := as.lookupClient(q.Get("client_id"))
	if !ok {
		authorizePage(w, "unknown client_id")
		return
	}
	redirect := q.Get("redirect_uri")
	if len(q["redirect_uri"]) != 1 || redirect == "" {
		// OAuth 2.1 lets a client with one registered URI omit it; we are
		// stricter because MCP clients always send it.
		authorizePage(w, "redirect_uri missing or repeated")
		return
	}
	if !as.redirectAllowed(c, redirect) {
		authorizePage(w, "redirect_uri does not match a registered redirect URI")
		return
	}

	state := q.Get("state")
	fail := func(code, desc string) { as.redirect(w, r, redirect, errorParams(code, desc), state) }
	for k, vs := range q {
		if len(vs) > 1 && k != "resource" {
			fail("invalid_request", "parameter "+k+" repeated")
			return
		}
	}
	switch rt := q.Get("response_type"); {
	case rt == "":
		fail("invalid_request", "response_type required")
		return
	case rt != "code":
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	}
	if !c.allowsGrant("authorization_code") {
		fail("unauthorized_client", "client is not registered for authorization_code")
		return
	}
	if state == "" {
		fail("invalid_request", "state required")
		return
	}
	// OAuth 2.1 §4.1.1 / RFC 7636 §4.3: a missing method means "plain",
	// which we do not support; MCP requires S256.
	if q.Get("code_challenge_method") != "S256" {
		fail("invalid_request", "code_challenge_method must be S256")
		return
	}
	challenge := q.Get("code_challenge")
	if !validS256Challenge(challenge) {
		fail("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)")
		return
	}
	resource, oerr := singleResource(q)
	if oerr != nil {
		fail(oerr.code, oerr.desc)
		return
	}
	if resource != as.w.rs.mcpURL {
		fail("invalid_target", "resource is not a resource this server issues tokens for")
		return
	}
	scope, oerr := parseScope(q.Get("scope"))
	if oerr != nil {
		fail(oerr.code, oerr.desc)
		return
	}

	f := as.w.faults.takeAuthorize()
	if f.wrongState {
		state = newSecret("wrong-state-")
	}
	if f.err != "" {
		as.redirectWithIss(w, r, redirect, errorParams(f.err, "injected by testworld"), state, f.wrongIss)
		return
	}
	code := newSecret("code_")
	as.store.addCode(code, &authCode{
		clientID:    c.id,
		redirectURI: redirect,
		challenge:   challenge,
		resource:    resource,
		scope:       scope,
		expiresAt:   as.w.now().Add(codeTTL),
		family:      newSecret("fam_"),
	})
	as.w.stats.add(func(s *Stats) { s.CodesIssued++ })
	as.redirectWithIss(w, r, redirect, url.Values{"code": {code}}, state, f.wrongIss)
}

func errorParams(code, desc string) url.Values {
	return url.Values{"error": {code}, "error_description": {desc}}
}

func (as *authServer) redirect(w http.ResponseWriter, r *http.Request, to string, params url.Values, state string) {
	as.redirectWithIss(w, r, to, params, state, "")
}

// redirectWithIss sends the authorization response (RFC 6749 §4.1.2) to the
// validated redirect URI, keeping its own query (§3.1.2), with iss when
// advertised (RFC 9207 §2: on success and error alike) or injected.
func (as *authServer) redirectWithIss(w http.ResponseWriter, r *http.Request, to string, params url.Values, state, iss string) {
	u, err := url.Parse(to)
	if err != nil { // validated before; defensive
		authorizePage(w, "redirect_uri unparsable")
		return
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	if state != "" {
		q.Set("state", state)
	}
	switch {
	case iss != "":
		q.Set("iss", iss)
	case as.opts.IssParameter:
		q.Set("iss", as.issuer)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// authorizePage is the error page a user would see when the AS cannot trust
// the redirect URI (RFC 6749 §4.1.2.1: "MUST NOT automatically redirect").
func authorizePage(w http.ResponseWriter, msg string) {
	http.Error(w, "testworld: authorization request rejected: "+msg, http.StatusBadRequest)
}

// lookupClient finds a registered client, or — when CIMD is on — accepts an
// https URL client_id as a public client (draft-ietf-oauth-client-id-metadata-document;
// this AS does not fetch the document).
func (as *authServer) lookupClient(id string) (*client, bool) {
	if c, ok := as.store.client(id); ok {
		return c, true
	}
	if as.opts.CIMD && isCIMDClientID(id) {
		return &client{
			id:          id,
			authMethod:  AuthMethodNone,
			anyLoopback: true,
			allowHTTPS:  true,
			grantTypes:  []string{"authorization_code", "refresh_token"},
		}, true
	}
	return nil, false
}

// isCIMDClientID: an https URL with a host and a non-root path, no
// credentials, fragment or dot segments (CIMD draft §3).
func isCIMDClientID(id string) bool {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || strings.Contains(id, "#") {
		return false
	}
	if u.Path == "" || u.Path == "/" {
		return false
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// redirectAllowed is exact string matching (OAuth 2.1 §2.3.1), with RFC 8252
// §7.3 port variance for loopback IPs when LoopbackAnyPort is set. Clients
// without registered URIs (pre-registered, CIMD) accept any loopback http URI,
// and CIMD clients https too.
func (as *authServer) redirectAllowed(c *client, uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(uri, "#") {
		return false
	}
	if c.anyLoopback {
		switch {
		case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
			return true
		case c.allowHTTPS && u.Scheme == "https" && u.Host != "":
			return true
		}
		return false
	}
	for _, reg := range c.redirectURIs {
		if reg == uri {
			return true
		}
		if as.opts.LoopbackAnyPort && samePortless(reg, u) {
			return true
		}
	}
	return false
}

// samePortless: registered http loopback-IP URI equal to u except the port.
func samePortless(registered string, u *url.URL) bool {
	ru, err := url.Parse(registered)
	if err != nil || ru.Scheme != "http" || u.Scheme != "http" {
		return false
	}
	ip := net.ParseIP(ru.Hostname())
	if ip == nil || !ip.IsLoopback() {
		return false
	}
	return ru.Hostname() == u.Hostname() && ru.EscapedPath() == u.EscapedPath() &&
		ru.RawQuery == u.RawQuery && u.User == nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// validS256Challenge: BASE64URL(SHA256(verifier)) without padding is exactly
// 43 characters of the base64url alphabet (RFC 7636 §4.2).
func validS256Challenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	for _, c := range s {
		if !isBase64URLChar(c) {
			return false
		}
	}
	return true
}

func isBase64URLChar(c rune) bool {
	return ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-' || c == '_'
}
