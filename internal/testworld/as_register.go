package testworld

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// registrationResponse is RFC 7591 §3.2.1: the client information plus the
// metadata as registered (which may differ from what was asked).
type registrationResponse struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"` // REQUIRED iff a secret is issued
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	ApplicationType         string   `json:"application_type,omitempty"`
}

func errClientMetadata(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_client_metadata", desc: desc}
}

func errRedirectURI(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_redirect_uri", desc: desc}
}

// handleRegister is dynamic client registration (RFC 7591 §3). Unknown
// members are ignored (§2); known members of the wrong type are rejected.
func (as *authServer) handleRegister(w http.ResponseWriter, r *http.Request) {
	if status := as.w.faults.takeRegistration(); status != 0 {
		code := "invalid_client_metadata"
		if status >= 500 {
			code = "server_error"
		}
		writeOAuthError(w, &oauthError{status: status, code: code, desc: "injected by testworld"})
		return
	}
	c, oerr := as.parseRegistration(w, r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	as.store.addClient(c)
	as.w.stats.add(func(s *Stats) { s.Registrations++ })

	resp := registrationResponse{
		ClientID:                c.id,
		ClientSecret:            c.secret,
		ClientIDIssuedAt:        c.issuedAt.Unix(),
		TokenEndpointAuthMethod: c.authMethod,
		RedirectURIs:            c.redirectURIs,
		GrantTypes:              c.grantTypes,
		ResponseTypes:           []string{"code"},
		ClientName:              c.name,
		Scope:                   c.scope,
		ApplicationType:         c.applicationType,
	}
	if c.secret != "" {
		never := int64(0)
		resp.ClientSecretExpiresAt = &never
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (as *authServer) parseRegistration(w http.ResponseWriter, r *http.Request) (*client, *oauthError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, errInvalidRequest("Content-Type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		return nil, errInvalidRequest("body too large or unreadable")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errClientMetadata("body is not a JSON object")
	}

	var redirects []string
	if !decodeMember(raw, "redirect_uris", &redirects) {
		return nil, errClientMetadata("redirect_uris must be an array of strings")
	}
	if len(redirects) == 0 {
		return nil, errRedirectURI("redirect_uris required")
	}
	for _, u := range redirects {
		if !registrableRedirect(u) {
			return nil, errRedirectURI("redirect URI must be https, loopback http, or a private-use scheme, without fragment")
		}
	}

	var method, name, scope, appType string
	grants := []string{"authorization_code"} // RFC 7591 §2 default
	responseTypes := []string{"code"}        // RFC 7591 §2 default
	method = AuthMethodBasic                 // RFC 7591 §2 default
	ok := decodeMember(raw, "token_endpoint_auth_method", &method) &&
		decodeMember(raw, "grant_types", &grants) &&
		decodeMember(raw, "response_types", &responseTypes) &&
		decodeMember(raw, "client_name", &name) &&
		decodeMember(raw, "scope", &scope) &&
		decodeMember(raw, "application_type", &appType)
	if !ok {
		return nil, errClientMetadata("a metadata member has the wrong JSON type")
	}
	for _, g := range grants {
		if g != "authorization_code" && g != "refresh_token" {
			return nil, errClientMetadata("unsupported grant_type " + g)
		}
	}
	if !slices.Contains(grants, "authorization_code") {
		return nil, errClientMetadata("grant_types must include authorization_code")
	}
	if len(responseTypes) != 1 || responseTypes[0] != "code" {
		// RFC 7591 §2.1: response_types must agree with grant_types.
		return nil, errClientMetadata("response_types must be [\"code\"]")
	}
	if appType != "" && appType != "web" && appType != "native" {
		return nil, errClientMetadata("application_type must be web or native")
	}
	if _, oerr := parseScope(scope); oerr != nil {
		return nil, errClientMetadata("scope contains an invalid character")
	}
	// The AS may replace a requested method it does not support (RFC 7591 §2).
	if !slices.Contains(as.opts.AuthMethods, method) {
		method = as.opts.AuthMethods[0]
	}

	c := &client{
		id:              newSecret("client_"),
		authMethod:      method,
		redirectURIs:    redirects,
		grantTypes:      slices.Compact(grants),
		name:            name,
		scope:           scope,
		applicationType: appType,
		issuedAt:        as.w.now(),
	}
	if method != AuthMethodNone {
		c.secret = newSecret("secret_")
	}
	return c, nil
}

// decodeMember decodes raw[key] into dst if present and not null; false when
// the member has the wrong type.
func decodeMember(raw map[string]json.RawMessage, key string, dst any) bool {
	v, ok := raw[key]
	if !ok || string(v) == "null" {
		return true
	}
	return json.Unmarshal(v, dst) == nil
}

// registrableRedirect follows RFC 8252 §7 and OAuth 2.1 §2.3.1: https with a
// host; http only to a loopback host; or a private-use scheme in reverse
// domain form (containing a dot). Never a fragment; never script-ish schemes.
func registrableRedirect(s string) bool {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(s, "#") {
		return false
	}
	switch u.Scheme {
	case "https":
		return u.Host != ""
	case "http":
		return isLoopbackHost(u.Hostname())
	case "javascript", "data", "file", "vbscript":
		return false
	}
	return strings.Contains(u.Scheme, ".")
}
