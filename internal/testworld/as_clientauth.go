package testworld

import (
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
)

// authenticateClient authenticates the client of a token or revocation
// request by exactly one method, the one it is registered with:
//
//   - client_secret_basic: HTTP Basic where id and secret are each
//     application/x-www-form-urlencoded before joining with ":" (RFC 6749
//     §2.3.1). A client that skips that encoding fails as soon as its secret
//     holds a reserved character — which is the point of testing it.
//   - client_secret_post: client_id and client_secret in the body.
//   - none: client_id in the body, no secret (public client, RFC 6749 §2.1).
//
// Presenting two methods is invalid_request (OAuth 2.1 §2.4: "MUST NOT use
// more than one authentication method in each request").
func (as *authServer) authenticateClient(r *http.Request, form url.Values) (*client, *oauthError) {
	if as.acceptsAssertions() && (form.Has("client_assertion") || form.Has("client_assertion_type")) {
		return as.authenticateAssertion(r, form) // private_key_jwt (as_grants.go)
	}
	bodyID, bodySecret := param(form, "client_id"), param(form, "client_secret")
	var id, secret, method string
	hdrs := r.Header.Values("Authorization")
	switch {
	case len(hdrs) > 1:
		return nil, errInvalidRequest("more than one Authorization header")
	case len(hdrs) == 1:
		scheme, cred, _ := strings.Cut(hdrs[0], " ")
		if !strings.EqualFold(scheme, "Basic") {
			return nil, errInvalidClient("unsupported Authorization scheme at this endpoint", true)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return nil, errInvalidClient("malformed Basic credentials", true)
		}
		encID, encSecret, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, errInvalidClient("malformed Basic credentials", true)
		}
		var err1, err2 error
		id, err1 = url.QueryUnescape(encID)
		secret, err2 = url.QueryUnescape(encSecret)
		if err1 != nil || err2 != nil {
			return nil, errInvalidClient("Basic credentials are not form-url-encoded (RFC 6749 §2.3.1)", true)
		}
		if bodySecret != "" {
			return nil, errInvalidRequest("client authenticated with both client_secret_basic and client_secret_post")
		}
		if bodyID != "" && bodyID != id {
			return nil, errInvalidRequest("client_id in body differs from Basic credentials")
		}
		method = AuthMethodBasic
	case bodySecret != "":
		if bodyID == "" {
			return nil, errInvalidRequest("client_secret without client_id")
		}
		id, secret, method = bodyID, bodySecret, AuthMethodPost
	case bodyID != "":
		id, method = bodyID, AuthMethodNone
	default:
		return nil, errInvalidClient("no client authentication", false)
	}

	basic := method == AuthMethodBasic
	c, ok := as.lookupClient(id)
	if !ok {
		return nil, errInvalidClient("unknown client", basic)
	}
	if c.authMethod != method {
		return nil, errInvalidClient("client must authenticate with "+c.authMethod, basic)
	}
	if method != AuthMethodNone && subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1 {
		return nil, errInvalidClient("client authentication failed", basic)
	}
	return c, nil
}
