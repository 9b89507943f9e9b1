package machine

import (
	"net/url"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// startRefresh redeems the refresh token (RFC 6749 §6) with the same
// resource as the original grant (RFC 8707 §2, A-RES-02). Scope is not
// sent: a refresh keeps the granted scope and cannot widen it.
func (st *step) startRefresh() error {
	if err := st.to(states.CredentialExpiring); err != nil {
		return err
	}
	t := st.s.Credential
	form := url.Values{}
	form.Set("grant_type", "refresh_token")
	form.Set("refresh_token", t.RefreshToken)
	// The same resource as the original grant (A-RES-02): none only for a
	// 2025-03-26 server, which sent none then either.
	if res, err := st.resourceParam(); err == nil && res != "" {
		form.Set("resource", t.Resource)
	}
	return st.tokenRequest(effects.PurposeRefresh, form)
}

// refreshAnswered adopts the refreshed credential; invalid_grant forgets
// it and asks the user again; a transient failure keeps everything.
func (st *step) refreshAnswered(r FetchResponse) error {
	issuer := st.s.Discovery.Authorization.Issuer
	old := st.s.Credential
	tr, err := st.parseGrant(r)
	if retried, rerr := st.retryWithNonce(effects.PurposeRefresh, r, err); retried {
		return rerr
	}
	if err == nil {
		return st.adopt(st.tokensFrom(tr, old.Resource, old.Scope, old.RefreshToken))
	}
	terr := &TokenError{Grant: "refresh_token", Issuer: issuer, Err: err}
	if IsRetryable(err) {
		// The credential is kept (only invalid_grant erases it), and the
		// refresh did not run, so a later 401 may try it again.
		st.s.CureTried = false
		return st.fail(terr)
	}
	oe, isOAuth := err.(*OAuthError)
	if isOAuth && oe.InvalidGrant() {
		st.emit(effects.ForgetTokens{Server: st.s.Config.Server, IfVersion: st.s.CredentialVersion})
		st.s.CredentialVersion = 0
	}
	// any refusal of the refresh token means the user must authorize
	// again; the old credential is no longer offered to anyone.
	st.s.Credential = effects.Tokens{}
	st.s.Attempt.KeepOnFailure = false
	if st.s.Grant != GrantAuthorizationCode && st.s.Grant != "" {
		// A client without a user has nobody to ask: the next request
		// makes its grant again.
		return st.fail(terr)
	}
	if err := st.to(states.RefreshRejected); err != nil {
		return err
	}
	return st.authorize(unionScopes(st.s.RequestedScope, old.Scope))
}
