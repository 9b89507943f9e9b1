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

// grantClient is the client identity of a grant without a user: the one
// in memory or configured for the issuer (saved, so a later run can make
// the grant again), or none for a workload (SEP-1933: the assertion
// identifies it; no client authentication unless one is configured).
func (st *step) grantClient(m effects.ServerMetadata, g Grant) (effects.Client, bool) {
	if st.s.HasClient && st.s.Client.Issuer == m.Issuer {
		return st.s.Client, true
	}
	if c, ok := st.knownClient(m); ok {
		st.emit(effects.SaveClient{Client: c})
		return c, true
	}
	if g == GrantWorkloadIdentity {
		return effects.Client{Issuer: m.Issuer, AuthMethod: "none", Source: effects.ClientPreRegistered}, true
	}
	return effects.Client{}, false
}

// beginGrantWithoutUser starts a grant that needs no user once the issuer
// is validated: client credentials and workload identity go straight to
// the token endpoint; enterprise-managed authorization first exchanges the
// user's ID token at the identity provider.
func (st *step) beginGrantWithoutUser(m effects.ServerMetadata, g Grant) error {
	c, ok := st.grantClient(m, g)
	if !ok {
		return st.fail(&NoClientError{Issuer: m.Issuer})
	}
	if c.AuthMethod == "" {
		return st.fail(&AuthMethodError{Issuer: m.Issuer, Supported: m.TokenEndpointAuthMethodsSupported})
	}
	st.s.Client, st.s.HasClient = c, true
	if g == GrantEnterprise {
		if err := st.to(states.IdentityExchangeStarted); err != nil {
			return err
		}
		return st.exchangeIdentity(st.initialScope())
	}
	if err := st.to(states.GrantReady); err != nil {
		return err
	}
	return st.requestGrant(st.initialScope(), "")
}

// exchangeIdentity asks the identity provider for an ID-JAG (RFC 8693 §2.1
// with the SEP-990 profile): the user's ID token (supplied by the driver)
// for a token whose audience is the authorization server and whose
// resource is the MCP server.
func (st *step) exchangeIdentity(scope string) error {
	idp := st.s.Config.IdentityProvider.TokenEndpoint
	if idp == "" {
		return st.fail(&ConfigError{Field: "IdentityProvider.TokenEndpoint", Reason: "required for enterprise-managed authorization"})
	}
	if err := CheckSecureURL(idp); err != nil {
		return st.fail(&ConfigError{Field: "IdentityProvider.TokenEndpoint", Reason: err.Error()})
	}
	resource, err := st.resourceParam()
	if err != nil {
		return st.fail(err)
	}
	st.s.Attempt.Scope = scope
	form := url.Values{}
	form.Set("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
	form.Set("subject_token_type", "urn:ietf:params:oauth:token-type:id_token")
	form.Set("requested_token_type", tokenTypeIDJAG)
	form.Set("audience", st.s.Discovery.Authorization.Issuer)
	if resource != "" {
		form.Set("resource", resource)
	}
	if scope != "" {
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
	return st.requestGrant(st.s.Attempt.Scope, x.Token)
}

// repeatGrant asks again for a credential that needs no user: when it
// expires (no refresh token is needed) or lacks scope (A-STEP-02).
func (st *step) repeatGrant(scope string) error {
	g := st.s.Grant
	t := states.GrantRepeated
	if g == GrantEnterprise {
		t = states.IdentityExchangeStarted
	}
	if err := st.to(t); err != nil {
		return err
	}
	st.s.Attempt.Grant = g
	m := st.s.Discovery.Authorization
	c, ok := st.grantClient(m, g)
	if !ok {
		return st.fail(&NoClientError{Issuer: m.Issuer})
	}
	st.s.Client, st.s.HasClient = c, true
	if g == GrantEnterprise {
		return st.exchangeIdentity(scope)
	}
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
	tr, err := st.parseGrant(r)
	if retried, rerr := st.retryWithNonce(effects.PurposeGrant, r, err); retried {
		return rerr
	}
	if err != nil {
		return st.fail(&TokenError{Grant: grantType(st.s.Attempt.Grant), Issuer: issuer, Err: err})
	}
	a := st.s.Attempt
	return st.adopt(st.tokensFrom(tr, a.ResourceParam, a.Scope, ""))
}
