package machine

import (
	"net/url"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// UnsupportedGrantError reports an authorization server that supports none
// of the configured grants.
type UnsupportedGrantError struct {
	Issuer     string
	Configured []Grant
	Supported  []string
}

func (e *UnsupportedGrantError) Error() string {
	return "machine: " + e.Issuer + " supports none of the configured grants"
}

// beginGrantWithoutUser starts a grant that needs no user once the issuer
// is validated: client credentials and workload identity go straight to
// the token endpoint; enterprise-managed authorization first exchanges the
// user's ID token at the identity provider.
func (st *step) beginGrantWithoutUser(m effects.ServerMetadata, g Grant) error {
	c, ok := st.knownClient(m)
	switch {
	case ok:
		st.s.Client, st.s.HasClient = c, true
	case g == GrantWorkloadIdentity:
		// SEP-1933: the assertion identifies the workload; no client
		// authentication unless one is configured.
		st.s.Client, st.s.HasClient = effects.Client{Issuer: m.Issuer, AuthMethod: "none", Source: effects.ClientPreRegistered}, true
	default:
		return st.fail(&NoClientError{Issuer: m.Issuer})
	}
	if g != GrantEnterprise {
		if err := st.to(states.GrantReady); err != nil {
			return err
		}
		return st.requestGrant(st.initialScope(), "")
	}
	idp := st.s.Config.IdentityProvider.TokenEndpoint
	if idp == "" {
		return st.fail(&ConfigError{Field: "IdentityProvider.TokenEndpoint", Reason: "required for enterprise-managed authorization"})
	}
	if err := CheckSecureURL(idp); err != nil {
		return st.fail(&ConfigError{Field: "IdentityProvider.TokenEndpoint", Reason: err.Error()})
	}
	if err := st.to(states.IdentityExchangeStarted); err != nil {
		return err
	}
	resource, err := st.resourceParam()
	if err != nil {
		return st.fail(err)
	}
	// RFC 8693 §2.1 with the SEP-990 profile: the user's ID token (supplied
	// by the driver) for an ID-JAG whose audience is the authorization
	// server and whose resource is the MCP server.
	form := url.Values{}
	form.Set("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
	form.Set("subject_token_type", "urn:ietf:params:oauth:token-type:id_token")
	form.Set("requested_token_type", tokenTypeIDJAG)
	form.Set("audience", m.Issuer)
	if resource != "" {
		form.Set("resource", resource)
	}
	if scope := st.initialScope(); scope != "" {
		form.Set("scope", scope)
	}
	return st.sendTokenRequest(effects.PurposeIdentityExchange, idp, form)
}

// identityExchanged takes the ID-JAG and presents it to the authorization
// server (RFC 7523 §2.1).
func (st *step) identityExchanged(r FetchResponse) error {
	x, err := ParseTokenExchangeResponse(r.Status, contentType(r.Header), r.Body)
	if err != nil {
		return st.fail(&TokenError{Grant: "token-exchange", Issuer: st.s.Config.IdentityProvider.TokenEndpoint, Err: err})
	}
	if err := st.to(states.IdentityExchanged); err != nil {
		return err
	}
	return st.requestGrant(st.initialScope(), x.Token)
}

// repeatGrant asks again for a credential that needs no user: when it
// expires (no refresh token is needed) or lacks scope (A-STEP-02).
func (st *step) repeatGrant(scope string) error {
	g := st.s.Grant
	if err := st.to(states.GrantRepeated); err != nil {
		return err
	}
	st.s.Attempt.Grant = g
	return st.requestGrant(scope, "")
}

// requestGrant sends the grant: client_credentials (RFC 6749 §4.4.2) or
// jwt-bearer (RFC 7523 §2.1) with the ID-JAG, or with the workload's token
// that the driver supplies. resource goes with it (A-RES-02).
func (st *step) requestGrant(scope, assertion string) error {
	g := st.s.Attempt.Grant
	resource, err := st.resourceParam()
	if err != nil {
		return st.fail(err)
	}
	st.s.Attempt.Scope, st.s.Attempt.ResourceParam = scope, resource
	st.s.RequestedScope = scope
	form := url.Values{}
	form.Set("grant_type", grantType(g))
	if assertion != "" {
		form.Set("assertion", assertion)
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	return st.tokenRequest(effects.PurposeGrant, form)
}

// grantAnswered adopts the credential a grant without a user returned. A
// refusal is final for this attempt: no retry with the same or another
// grant (SEP-1933), but a typed error naming the server that refused.
func (st *step) grantAnswered(r FetchResponse) error {
	issuer := st.s.Discovery.Authorization.Issuer
	tr, err := ParseTokenResponse(r.Status, contentType(r.Header), r.Body)
	if retried, rerr := st.retryWithNonce(effects.PurposeGrant, r, err); retried {
		return rerr
	}
	if err != nil {
		return st.fail(&TokenError{Grant: grantType(st.s.Attempt.Grant), Issuer: issuer, Err: err})
	}
	a := st.s.Attempt
	return st.adopt(st.tokensFrom(tr, a.ResourceParam, a.Scope, ""))
}
