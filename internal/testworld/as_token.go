package testworld

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// tokenResponse is RFC 6749 §5.1. scope is always present (the granted set,
// possibly narrower than requested — §3.3 then makes it REQUIRED anyway).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
}

// handleToken is the token endpoint (RFC 6749 §3.2).
func (as *authServer) handleToken(w http.ResponseWriter, r *http.Request) {
	form, formErr := readForm(w, r)
	grant := param(form, "grant_type")
	as.w.stats.add(func(s *Stats) { s.TokenRequests[grant]++ })

	// Injected failures come before any processing: a 5xx must not burn the
	// code, so a client retry can still succeed.
	if f := as.w.faults.takeToken(); f.status != 0 || f.body != nil {
		writeTokenFault(w, f)
		return
	}
	if formErr != nil {
		as.tokenError(w, formErr)
		return
	}
	jkt, oerr := as.tokenProof(w, r) // DPoP (dpop.go): "" unless a proof was sent
	if oerr != nil {
		as.tokenError(w, oerr)
		return
	}
	c, oerr := as.tokenClient(r, grant, form) // as_grants.go: a workload may go unauthenticated
	if oerr != nil {
		as.tokenError(w, oerr)
		return
	}
	var resp tokenResponse
	switch grant {
	case "authorization_code":
		resp, oerr = as.exchangeCode(c, form)
	case "refresh_token":
		if oerr = as.refreshKey(form, jkt); oerr == nil {
			resp, oerr = as.refresh(c, form)
		}
	case GrantClientCredentials, GrantJWTBearer:
		resp, oerr = as.extensionGrant(c, grant, form)
	case "":
		oerr = errInvalidRequest("grant_type required")
	default:
		oerr = &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "grant_type not supported"}
	}
	if oerr != nil {
		as.tokenError(w, oerr)
		return
	}
	resp = as.issued(grant, c, resp, jkt)
	writeJSON(w, http.StatusOK, resp)
}

func (as *authServer) tokenError(w http.ResponseWriter, e *oauthError) {
	if e.code == "invalid_grant" {
		as.w.stats.add(func(s *Stats) { s.InvalidGrants++ })
	}
	writeOAuthError(w, e)
}

func writeTokenFault(w http.ResponseWriter, f tokenFault) {
	status := f.status
	if status == 0 {
		status = http.StatusOK
	}
	if f.body != nil {
		writeRawJSON(w, status, f.body)
		return
	}
	code := "invalid_request"
	switch {
	case status == http.StatusServiceUnavailable:
		code = "temporarily_unavailable"
	case status >= 500:
		code = "server_error"
	case status == http.StatusUnauthorized:
		code = "invalid_client"
	}
	writeOAuthError(w, &oauthError{status: status, code: code, desc: "injected by testworld"})
}

// exchangeCode is the authorization_code grant (RFC 6749 §4.1.3, RFC 7636
// §4.6, RFC 8707 §2.2). The code is burnt by the first attempt that names it,
// successful or not; a second use revokes every token issued from it (RFC
// 6749 §4.1.2).
func (as *authServer) exchangeCode(c *client, form url.Values) (tokenResponse, *oauthError) {
	code, verifier, redirect := param(form, "code"), param(form, "code_verifier"), param(form, "redirect_uri")
	switch {
	case code == "":
		return tokenResponse{}, errInvalidRequest("code required")
	case verifier == "":
		return tokenResponse{}, errInvalidRequest("code_verifier required (PKCE)")
	case redirect == "":
		return tokenResponse{}, errInvalidRequest("redirect_uri required")
	}
	resource, oerr := singleResource(form)
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	if !c.allowsGrant("authorization_code") {
		return tokenResponse{}, errUnauthorizedClient("client is not registered for authorization_code")
	}

	s := as.store
	s.mu.Lock()
	defer s.mu.Unlock()
	ac, ok := s.codes[code]
	switch {
	case !ok:
		return tokenResponse{}, errInvalidGrant("unknown authorization code")
	case ac.used:
		s.revokeFamilyLocked(ac.family)
		as.w.stats.add(func(st *Stats) { st.FamiliesRevoked++ })
		return tokenResponse{}, errInvalidGrant("authorization code already used; tokens issued from it are revoked")
	}
	ac.used = true
	now := as.w.now()
	switch {
	case ac.clientID != c.id:
		return tokenResponse{}, errInvalidGrant("authorization code was issued to another client")
	case !now.Before(ac.expiresAt):
		return tokenResponse{}, errInvalidGrant("authorization code expired")
	case ac.redirectURI != redirect:
		return tokenResponse{}, errInvalidGrant("redirect_uri differs from the authorization request")
	case !verifierMatches(verifier, ac.challenge):
		return tokenResponse{}, errInvalidGrant("code_verifier does not match code_challenge")
	case resource != ac.resource:
		return tokenResponse{}, errInvalidTarget("resource differs from the authorization request")
	}
	return as.issueLocked(c, ac.scope, ac.scope, ac.resource, ac.family, as.mayRefresh(c, ac.scope), now), nil
}

// refresh is the refresh_token grant (RFC 6749 §6, OAuth 2.1 §4.3).
func (as *authServer) refresh(c *client, form url.Values) (tokenResponse, *oauthError) {
	rt := param(form, "refresh_token")
	if rt == "" {
		return tokenResponse{}, errInvalidRequest("refresh_token required")
	}
	resource, oerr := singleResource(form)
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	requested, oerr := parseScope(param(form, "scope"))
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	if !c.allowsGrant("refresh_token") {
		return tokenResponse{}, errUnauthorizedClient("client is not registered for refresh_token")
	}
	if as.w.faults.takeInvalidGrantOnRefresh() {
		return tokenResponse{}, errInvalidGrant("injected by testworld")
	}

	s := as.store
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[rt]
	now := as.w.now()
	switch {
	case !ok || t.kind != refreshToken:
		return tokenResponse{}, errInvalidGrant("unknown refresh token")
	case t.clientID != c.id:
		return tokenResponse{}, errInvalidGrant("refresh token was issued to another client")
	case t.rotated:
		// Replay of a rotated-out token: either the client lost a race
		// with itself or the token leaked. Revoke the grant (Hydra does).
		s.revokeFamilyLocked(t.family)
		as.w.stats.add(func(st *Stats) { st.FamiliesRevoked++ })
		return tokenResponse{}, errInvalidGrant("refresh token reused; grant revoked")
	case t.revoked:
		return tokenResponse{}, errInvalidGrant("refresh token revoked")
	case !t.expiresAt.IsZero() && !now.Before(t.expiresAt):
		return tokenResponse{}, errInvalidGrant("refresh token expired")
	case resource != t.resource:
		return tokenResponse{}, errInvalidTarget("resource differs from the original grant")
	}
	// RFC 6749 §6: the requested scope "MUST NOT include any scope not
	// originally granted"; omitted means the original scope.
	scope := t.scope
	if len(requested) > 0 {
		for _, sc := range requested {
			if !slices.Contains(t.scope, sc) {
				return tokenResponse{}, errInvalidScope("refresh cannot widen the granted scope")
			}
		}
		scope = requested
	}
	if as.opts.RotateRefresh {
		t.rotated = true
	}
	return as.issueLocked(c, scope, t.scope, t.resource, t.family, as.opts.RotateRefresh, now), nil
}

// mayRefresh says whether a grant gets a refresh token: not when disabled,
// not to a client that did not register the refresh_token grant, and — when
// the AS advertises offline_access — only if the grant includes it.
func (as *authServer) mayRefresh(c *client, scope []string) bool {
	if as.opts.NoRefreshTokens || !c.allowsGrant("refresh_token") {
		return false
	}
	if slices.Contains(as.opts.ASScopesSupported, "offline_access") {
		return slices.Contains(scope, "offline_access")
	}
	return true
}

// issueLocked mints an access token with scope and, if withRefresh, a refresh
// token carrying the whole grant (grantScope). s.mu must be held.
func (as *authServer) issueLocked(c *client, scope, grantScope []string, resource, family string, withRefresh bool, now time.Time) tokenResponse {
	s := as.store
	at := newSecret("at_")
	s.tokens[at] = &token{
		kind: accessToken, clientID: c.id, scope: scope, resource: resource,
		family: family, expiresAt: now.Add(as.opts.AccessTTL),
	}
	resp := tokenResponse{
		AccessToken: at,
		TokenType:   "Bearer",
		ExpiresIn:   int64(as.opts.AccessTTL / time.Second),
		Scope:       strings.Join(scope, " "),
	}
	if withRefresh {
		rt := newSecret("rt_")
		t := &token{kind: refreshToken, clientID: c.id, scope: grantScope, resource: resource, family: family}
		if as.opts.RefreshTTL > 0 {
			t.expiresAt = now.Add(as.opts.RefreshTTL)
		}
		s.tokens[rt] = t
		resp.RefreshToken = rt
	}
	return resp
}

// verifierMatches checks RFC 7636 §4.1 syntax (43–128 unreserved characters)
// and §4.6 S256: BASE64URL(SHA256(ASCII(verifier))) == challenge, in
// constant time.
func verifierMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	for _, c := range verifier {
		if !isBase64URLChar(c) && c != '.' && c != '~' {
			return false
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// introspect is how the RS validates a bearer token: it must be a live access
// token of this AS, issued for resource. reason is safe to show.
func (as *authServer) introspect(tok, resource string) (scope []string, reason string, ok bool) {
	s := as.store
	s.mu.Lock()
	defer s.mu.Unlock()
	t, found := s.tokens[tok]
	switch {
	case !found || t.kind != accessToken:
		return nil, "unknown token", false
	case t.revoked:
		return nil, "token revoked or expired", false
	case !as.w.now().Before(t.expiresAt):
		return nil, "token expired", false
	case t.resource != resource:
		return nil, "token not issued for this resource", false
	}
	return slices.Clone(t.scope), "", true
}
