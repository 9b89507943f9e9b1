package machine

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// registrationRequest is the RFC 7591 §2 client metadata we send.
type registrationRequest struct {
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	ApplicationType         string   `json:"application_type"` // SEP-837, A-DCR-02
	Scope                   string   `json:"scope,omitempty"`
}

// register sends dynamic client registration (RFC 7591 §3.1).
func (st *step) register() error {
	cfg := st.s.Config
	grants := []string{"authorization_code"}
	if !cfg.NoRefreshTokens {
		grants = append(grants, "refresh_token") // SEP-2207, A-REF-02
	}
	body, err := json.Marshal(registrationRequest{
		ClientName:              cfg.ClientName,
		RedirectURIs:            []string{cfg.RedirectURI},
		GrantTypes:              grants,
		ResponseTypes:           []string{"code"},
		TokenEndpointAuthMethod: cfg.TokenEndpointAuthMethod,
		ApplicationType:         cfg.ApplicationType,
		Scope:                   st.initialScope(),
	})
	if err != nil {
		return st.fail(err)
	}
	st.fetch(effects.PurposeRegistration, "POST", st.s.Discovery.Authorization.RegistrationEndpoint, map[string][]string{
		"Accept":       {"application/json"},
		"Content-Type": {"application/json"},
	}, body)
	return nil
}

// registrationAnswered keeps the new client, bound to the issuer, and
// goes on to authorization.
func (st *step) registrationAnswered(r FetchResponse) error {
	issuer := st.s.Discovery.Authorization.Issuer
	reg, err := ParseRegistrationResponse(r.Status, contentType(r.Header), r.Body)
	if err != nil {
		return st.fail(&RegistrationError{Issuer: issuer, Err: err})
	}
	method := reg.TokenEndpointAuthMethod
	if method == "" {
		method = st.s.Config.TokenEndpointAuthMethod
	}
	if err := st.checkRegistration(reg, method); err != nil {
		return st.fail(&RegistrationError{Issuer: issuer, Err: err})
	}
	c := effects.Client{
		Issuer:       issuer,
		ClientID:     reg.ClientID,
		ClientSecret: reg.ClientSecret,
		AuthMethod:   method,
		RedirectURIs: []string{st.s.Config.RedirectURI},
		Source:       effects.ClientDynamic,
	}
	if reg.ClientSecretExpiresAt > 0 {
		c.SecretExpiresAt = time.Unix(reg.ClientSecretExpiresAt, 0).UTC()
	}
	st.s.Client, st.s.HasClient = c, true
	if err := st.to(states.ClientRegistered); err != nil {
		return err
	}
	st.emit(effects.SaveClient{Client: c})
	return st.authorize(st.initialScope())
}

// checkRegistration refuses a registration the client cannot use: one
// that no longer lists our redirect URI (RFC 7591 §3.2.1: the server may
// change metadata, and then the authorization request would be refused),
// one whose secret has already expired, or one that names a secret-based
// method without a secret.
func (st *step) checkRegistration(reg RegisteredClient, method string) error {
	bad := func(field, reason string) error {
		return &MalformedError{Document: "registration response", Field: field, Reason: reason}
	}
	if len(reg.RedirectURIs) > 0 && !slices.Contains(reg.RedirectURIs, st.s.Config.RedirectURI) {
		return bad("redirect_uris", "does not list the redirect URI that was registered")
	}
	if reg.ClientSecretExpiresAt > 0 && !st.env.Now.Before(time.Unix(reg.ClientSecretExpiresAt, 0)) {
		return bad("client_secret_expires_at", "the secret has already expired")
	}
	switch method {
	case "client_secret_basic", "client_secret_post":
		if reg.ClientSecret == "" {
			return bad("client_secret", "missing for "+method)
		}
	case "none":
	default:
		return bad("token_endpoint_auth_method", "not one this client can use")
	}
	return nil
}

// contentType returns the response's Content-Type, "" when absent.
func contentType(h map[string][]string) string {
	if v := h["Content-Type"]; len(v) > 0 {
		return v[0]
	}
	return ""
}
