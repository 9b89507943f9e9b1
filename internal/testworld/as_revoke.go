package testworld

import "net/http"

// handleRevoke is token revocation (RFC 7009 §2). The client authenticates
// as at the token endpoint. Revoking a refresh token revokes its whole grant
// (§2.1: "SHOULD also invalidate all access tokens based on the same
// authorization grant"); revoking an access token revokes just that token.
// Unknown tokens get 200 (§2.2: the client cannot act on the difference).
func (as *authServer) handleRevoke(w http.ResponseWriter, r *http.Request) {
	form, oerr := readForm(w, r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	c, oerr := as.authenticateClient(r, form)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	tok := param(form, "token")
	if tok == "" {
		writeOAuthError(w, errInvalidRequest("token required"))
		return
	}
	s := as.store
	s.mu.Lock()
	t, ok := s.tokens[tok]
	switch {
	case ok && t.clientID != c.id:
		s.mu.Unlock()
		// §2.1: the AS verifies the token was issued to this client and
		// refuses otherwise.
		writeOAuthError(w, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", desc: "token was issued to another client"})
		return
	case ok && t.kind == refreshToken:
		s.revokeFamilyLocked(t.family)
	case ok:
		t.revoked = true
	}
	s.mu.Unlock()
	as.w.stats.add(func(st *Stats) { st.Revocations++ })
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
