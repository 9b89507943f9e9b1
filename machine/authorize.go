package machine

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// authorize builds the authorization request (OAuth 2.1 §4.1.1, A-AUTHZ-01)
// and asks the user agent to open it: PKCE S256 with a fresh verifier,
// a fresh state, the RFC 8707 resource and the selected scope.
func (st *step) authorize(scope string) error {
	if st.s.Config.RedirectURI == "" {
		return st.fail(&ConfigError{Field: "RedirectURI", Reason: "required for the authorization-code flow"})
	}
	verifier, err := randomToken(st.env.Rand, 32) // RFC 7636 §4.1: 43 characters
	if err != nil {
		return st.fail(err)
	}
	state, err := randomToken(st.env.Rand, 16)
	if err != nil {
		return st.fail(err)
	}
	resource, err := st.resourceParam()
	if err != nil {
		return st.fail(err)
	}
	a := &st.s.Attempt
	a.Verifier, a.StateParam, a.Scope, a.ResourceParam = verifier, state, scope, resource
	st.s.RequestedScope = scope

	q := url.Values{}
	q.Set("response_type", "code")
	q.Set("client_id", st.s.Client.ClientID)
	q.Set("redirect_uri", st.s.Config.RedirectURI)
	q.Set("code_challenge", s256(verifier))
	q.Set("code_challenge_method", "S256")
	q.Set("state", state)
	if resource != "" {
		q.Set("resource", resource)
	}
	if scope != "" {
		q.Set("scope", scope)
		// OpenID Connect Core §11: offline_access is ignored without consent.
		if slices.Contains(strings.Fields(scope), "offline_access") {
			q.Set("prompt", "consent")
		}
	}
	endpoint := st.s.Discovery.Authorization.AuthorizationEndpoint
	sep := "?"
	if strings.Contains(endpoint, "?") {
		sep = "&"
	}
	st.emit(
		effects.OpenURL{URL: endpoint + sep + q.Encode()},
		effects.AwaitCallback{RedirectURI: st.s.Config.RedirectURI},
	)
	return nil
}

// resourceParam is the RFC 8707 resource of this flow: the validated PRM
// resource byte for byte, or, without PRM, the canonical server URI from
// MCP 2025-06-18 on (A-RES-02..09); nothing for a 2025-03-26 server.
func (st *step) resourceParam() (string, error) {
	if !st.s.Discovery.Legacy && st.s.Discovery.Resource.Resource != "" {
		return st.s.Discovery.Resource.Resource, nil
	}
	if st.s.Config.ProtocolVersion == Version20250326 {
		return "", nil
	}
	return CanonicalResource(st.s.Config.Server)
}

// randomToken draws n bytes of entropy as base64url without padding.
func randomToken(r io.Reader, n int) (string, error) {
	if r == nil {
		return "", &EntropyError{Err: io.ErrUnexpectedEOF}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", &EntropyError{Err: err}
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// s256 is the PKCE code challenge of a verifier (RFC 7636 §4.2).
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// callbackReceived checks the authorization response and exchanges its
// code. Order matters (RFC 9207 §2.4, A-AUTHZ-08): state and iss are
// checked before the error or code is acted on.
func (st *step) callbackReceived(in CallbackReceived) error {
	p, err := ParseCallbackQuery(in.Query)
	if err != nil {
		return st.fail(err)
	}
	a := st.s.Attempt
	// RFC 6749 §10.12: compare in constant time, the state is a secret.
	if subtle.ConstantTimeCompare([]byte(p.State), []byte(a.StateParam)) != 1 {
		return st.fail(&StateMismatchError{})
	}
	m := st.s.Discovery.Authorization
	switch {
	case p.HasIss && p.Iss != m.Issuer: // A-AUTHZ-05/07: exact, no normalisation
		return st.fail(&IssuerResponseError{Want: m.Issuer, Got: p.Iss})
	case !p.HasIss && m.AuthorizationResponseIssParameterSupported: // A-AUTHZ-04
		return st.fail(&IssuerResponseError{Want: m.Issuer, Missing: true})
	}
	if p.Error != "" {
		return st.fail(&AuthorizationDeniedError{Code: p.Error, Description: p.ErrorDescription})
	}
	if err := st.to(states.CallbackReceived); err != nil {
		return err
	}
	form := url.Values{}
	form.Set("grant_type", "authorization_code")
	form.Set("code", p.Code)
	form.Set("redirect_uri", st.s.Config.RedirectURI)
	form.Set("code_verifier", a.Verifier)
	if a.ResourceParam != "" {
		form.Set("resource", a.ResourceParam) // the same value as on the authorization request
	}
	return st.tokenRequest(effects.PurposeToken, form)
}
