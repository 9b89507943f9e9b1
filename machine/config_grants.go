package machine

import "slices"

// Grant is a way for the client to get a credential.
type Grant string

// The grants. The wire grant_type of each is in grantType.
const (
	// GrantAuthorizationCode: the user authorizes in a browser (OAuth 2.1
	// §4.1, PKCE). The default.
	GrantAuthorizationCode Grant = "authorization_code"
	// GrantClientCredentials: a machine client with no user (MCP extension
	// "OAuth client credentials", RFC 6749 §4.4).
	GrantClientCredentials Grant = "client_credentials"
	// GrantWorkloadIdentity: a workload presents the JWT its platform issued
	// (SEP-1933, RFC 7523 §2.1); the token comes from
	// effects.SourceWorkloadToken.
	GrantWorkloadIdentity Grant = "workload_identity"
	// GrantEnterprise: the enterprise identity provider exchanges the user's
	// ID token for an ID-JAG (RFC 8693), presented to the authorization
	// server as a JWT bearer assertion (SEP-990).
	GrantEnterprise Grant = "enterprise_managed"
)

const jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// grantType is the grant_type an authorization server must list for g.
func grantType(g Grant) string {
	switch g {
	case GrantWorkloadIdentity, GrantEnterprise:
		return jwtBearerGrant
	}
	return string(g)
}

// IdentityProvider configures enterprise-managed authorization (SEP-990):
// the identity provider's token endpoint and this client's id there. The
// user's ID token comes from effects.SourceIDToken.
type IdentityProvider struct {
	TokenEndpoint string
	ClientID      string
}

// DPoPMode says when tokens are bound to a key (RFC 9449).
type DPoPMode string

// The DPoP modes.
const (
	// DPoPAuto uses DPoP when the authorization server advertises
	// dpop_signing_alg_values_supported with DPoPAlg (the default).
	DPoPAuto DPoPMode = ""
	// DPoPAlways demands DPoP.
	DPoPAlways DPoPMode = "always"
	// DPoPNever never uses DPoP.
	DPoPNever DPoPMode = "never"
)

// chooseGrant picks the first configured grant the authorization server
// supports. RFC 8414 §2: an absent grant_types_supported means
// authorization_code and implicit.
func chooseGrant(configured []Grant, supported []string) (Grant, bool) {
	if len(configured) == 0 {
		configured = []Grant{GrantAuthorizationCode}
	}
	if len(supported) == 0 {
		supported = []string{"authorization_code", "implicit"}
	}
	for _, g := range configured {
		if slices.Contains(supported, grantType(g)) {
			return g, true
		}
	}
	return "", false
}
