package machine

import "fmt"

// Dynamic client registration responses (RFC 7591 §3.2.1 success, §3.2.2
// error).

// RegisteredClient is a successful registration response. ClientSecret is
// a secret.
type RegisteredClient struct {
	ClientID, ClientSecret, TokenEndpointAuthMethod string
	ClientIDIssuedAt, ClientSecretExpiresAt         int64 // 0 = absent / never
	RedirectURIs, GrantTypes                        []string
}

// registrationMembers are the members the parser reads; a member that
// differs from one of them only by case is refused (E-14).
var registrationMembers = []string{
	"client_id", "client_secret", "token_endpoint_auth_method",
	"client_id_issued_at", "client_secret_expires_at", "redirect_uris", "grant_types",
	"error", "error_description", "error_uri",
}

// registrationSecretMembers are withheld from error text.
var registrationSecretMembers = []string{"client_secret", "registration_access_token"}

// ParseRegistrationResponse reads a registration response. Success is HTTP
// 201 (RFC 7591 §3.2.1; 200 is accepted too, E-38) with a JSON object that
// has a client_id string and no error member. TokenEndpointAuthMethod is
// the method the server registered, which may differ from the one asked
// for ("" when the server did not say; RFC 7591 §2 then means
// client_secret_basic); the client must use the returned values (Q-12,
// E-40). A secret returned with method "none" is dropped. Whether
// the returned redirect_uris still contain the client's own is the flow's
// check (B-7591-05).
//
// Errors: *OAuthError for an error response (invalid_redirect_uri,
// invalid_client_metadata, …) or any other status (Code "" then);
// *MalformedError for a 200/201 body that is not a valid response. No error
// ever contains the client secret.
func ParseRegistrationResponse(status int, contentType string, body []byte) (RegisteredClient, error) {
	o, decErr := decodeResponseObject(docRegistration, classifyBody(contentType, body, false), body, registrationMembers)
	if decErr == nil {
		if e := oauthErrorFrom(o, status, registrationSecretMembers); e != nil {
			return RegisteredClient{}, e
		}
	}
	if status != 201 && status != 200 {
		return RegisteredClient{}, statusError(status)
	}
	if decErr != nil {
		return RegisteredClient{}, decErr
	}
	bad := func(field, reason string) (RegisteredClient, error) {
		return RegisteredClient{}, &MalformedError{Document: docRegistration, Field: field, Reason: reason}
	}

	var c RegisteredClient
	id, ok, err := o.str("client_id")
	if err != nil {
		return RegisteredClient{}, err
	}
	if !ok || id == "" { // RFC 7591 §3.2.1: REQUIRED (E-16)
		return bad("client_id", "missing")
	}
	c.ClientID = id
	secret, _, err := o.strMax("client_secret", maxTokenLen)
	if err != nil {
		return RegisteredClient{}, err
	}
	if secret != "" && !isVisibleASCII(secret, false) { // it travels in a header (Basic) or a form
		return bad("client_secret", "contains characters other than visible ascii")
	}
	c.ClientSecret = secret
	if c.TokenEndpointAuthMethod, _, err = o.str("token_endpoint_auth_method"); err != nil {
		return RegisteredClient{}, err
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{
		{"client_id_issued_at", &c.ClientIDIssuedAt},
		{"client_secret_expires_at", &c.ClientSecretExpiresAt},
	} {
		n, _, err := o.integer(f.name) // E-15: a string is a type error
		if err != nil {
			return RegisteredClient{}, err
		}
		if n < 0 {
			return bad(f.name, "negative")
		}
		*f.dst = n
	}
	if c.RedirectURIs, _, err = o.strs("redirect_uris"); err != nil {
		return RegisteredClient{}, err
	}
	if c.GrantTypes, _, err = o.strs("grant_types"); err != nil {
		return RegisteredClient{}, err
	}
	if c.TokenEndpointAuthMethod == "none" {
		// a public client has no secret; one returned anyway is
		// never sent anywhere (Vercel downgrades to none).
		c.ClientSecret = ""
		c.ClientSecretExpiresAt = 0
	}
	return c, nil
}

// String shows the client with its secret redacted (design §4.10).
func (c RegisteredClient) String() string {
	return fmt.Sprintf("RegisteredClient{ClientID:%q ClientSecret:%s TokenEndpointAuthMethod:%q ClientIDIssuedAt:%d ClientSecretExpiresAt:%d RedirectURIs:%q GrantTypes:%q}",
		c.ClientID, redactedIf(c.ClientSecret), c.TokenEndpointAuthMethod, c.ClientIDIssuedAt, c.ClientSecretExpiresAt, c.RedirectURIs, c.GrantTypes)
}

// GoString is String, for %#v.
func (c RegisteredClient) GoString() string { return c.String() }
