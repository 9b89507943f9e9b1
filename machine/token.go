package machine

import (
	"strings"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// codeExchanged judges the answer to the authorization-code grant.
func (st *step) codeExchanged(r FetchResponse) error {
	issuer := st.s.Discovery.Authorization.Issuer
	tr, err := st.parseGrant(r)
	if retried, rerr := st.retryWithNonce(effects.PurposeToken, r, err); retried {
		return rerr
	}
	if err != nil {
		if oe, ok := err.(*OAuthError); ok && oe.Code == "invalid_client" && st.s.Client.Source == effects.ClientDynamic {
			// The server no longer knows the registration: forget it so the
			// next attempt registers again.
			st.emit(effects.ForgetClient{Issuer: issuer})
			st.s.Client, st.s.HasClient = effects.Client{}, false
		}
		return st.fail(&TokenError{Grant: "authorization_code", Issuer: issuer, Err: err})
	}
	a := st.s.Attempt
	t := st.tokensFrom(tr, a.ResourceParam, a.Scope, "")
	return st.adopt(t)
}

// parseGrant reads a token response to a grant and refuses a DPoP-bound
// token when no proof was sent: it could only be sent as Bearer, which a
// resource server must refuse (RFC 9449 §7.1).
func (st *step) parseGrant(r FetchResponse) (TokenResponse, error) {
	tr, err := ParseTokenResponse(r.Status, contentType(r.Header), r.Body)
	if err == nil && tr.TokenType == "DPoP" && !st.usesDPoP() {
		return tr, &MalformedError{Document: "token response", Field: "token_type", Reason: "a DPoP-bound token, but no proof was sent"}
	}
	if err == nil && !isB64Token(tr.AccessToken) {
		// RFC 6750 §2.1 (and RFC 9449 §7.1): the credential is a b64token;
		// anything else could split or inject into the Authorization header.
		return tr, &MalformedError{Document: "token response", Field: "access_token", Reason: "not a b64token (RFC 6750 §2.1)"}
	}
	return tr, err
}

// isB64Token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// tokensFrom makes the stored credential from a token response.
func (st *step) tokensFrom(tr TokenResponse, resource, requestedScope, oldRefresh string) effects.Tokens {
	if resource == "" {
		resource = st.s.Config.Server
	}
	t := effects.Tokens{
		Resource:     resource,
		Issuer:       st.s.Discovery.Authorization.Issuer,
		ClientID:     st.s.Client.ClientID,
		AccessToken:  tr.AccessToken,
		TokenType:    tr.TokenType,
		RefreshToken: tr.RefreshToken,
		Scope:        tr.Scope,
	}
	if t.RefreshToken == "" {
		t.RefreshToken = oldRefresh // an omitted refresh token stays valid
	}
	if t.Scope == "" {
		t.Scope = requestedScope // RFC 6749 §5.1: omitted means as requested
	}
	if g := st.s.Attempt.Grant; g != "" {
		t.Grant = string(g)
	} else {
		t.Grant = string(st.s.Grant)
	}
	if st.usesDPoP() && tr.TokenType == "DPoP" {
		t.DPoPKeyID = st.s.Config.DPoPKeyID // RFC 9449 §5: bound to the proof's key
	}
	if tr.HasExpiresIn {
		t.ExpiresAt = st.env.Now.Add(time.Duration(tr.ExpiresIn) * time.Second).UTC()
	}
	return t
}

// adopt makes t the credential: it is saved first (a rotated refresh token
// is persisted before any request uses the new access token), then the
// parked requests are sent with it.
func (st *step) adopt(t effects.Tokens) error {
	st.emit(effects.SaveTokens{Server: st.s.Config.Server, Tokens: t, IfVersion: st.s.CredentialVersion})
	st.s.CredentialVersion++
	st.s.Credential = t
	st.s.RefreshAt = refreshAt(st.env.Now, t.ExpiresAt, st.s.Config.RefreshMargin)
	st.s.Generation++
	if g := st.s.Attempt.Grant; g != "" {
		st.s.Grant = g
	}
	if err := st.to(states.TokenIssued); err != nil {
		return err
	}
	st.wake()
	st.releaseParked(nil)
	return nil
}

// wake asks for a tick when the credential is due for refresh.
func (st *step) wake() {
	t := st.s.Credential
	if t.ExpiresAt.IsZero() || (t.RefreshToken == "" && !st.s.canRepeatGrant()) {
		return
	}
	at := st.s.RefreshAt
	if at.IsZero() {
		at = t.ExpiresAt.Add(-st.s.Config.RefreshMargin)
	}
	// A credential already due (a lifetime of zero, a late restart) is
	// renewed when a request needs it, never by a timer that would fire at
	// once and again after every renewal.
	if !at.After(st.env.Now) {
		return
	}
	st.emit(effects.WakeAt{At: at})
}
