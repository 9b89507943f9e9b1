package effects

import "time"

// Tokens is a credential for one protected resource, issued by one
// authorization server to one client. It is only ever sent to Resource's
// origin, and its refresh token only to the token endpoint of Issuer.
type Tokens struct {
	Resource     string    // the RFC 8707 resource the tokens were issued for, verbatim
	Issuer       string    // the validated issuer that issued them (SEP-2352 binding)
	ClientID     string    // the client they were issued to
	AccessToken  string    // secret
	TokenType    string    // "Bearer" (compared case-insensitively) or "DPoP"
	RefreshToken string    // secret; empty when none was issued
	Scope        string    // the granted scope, else the requested one
	ExpiresAt    time.Time // absolute expiry; zero when the server did not say
	// DPoPKeyID names the key the tokens are bound to (RFC 9449); empty for
	// bearer tokens.
	DPoPKeyID string
	// Grant is how they were obtained (machine.Grant), so a restarted
	// client without a user can obtain them again.
	Grant string
}

// ClientSource says where a client identity came from (MCP 2025-11-25
// Client Registration, priority order A-REG-01).
type ClientSource string

// The client sources, in the priority order of A-REG-01.
const (
	ClientPreRegistered ClientSource = "pre_registered"
	ClientMetadataURL   ClientSource = "client_id_metadata_document"
	ClientDynamic       ClientSource = "dynamic_registration"
)

// Client is a client identity at one authorization server (SEP-2352: kept
// per issuer, never presented to another).
type Client struct {
	Issuer          string // the validated issuer it belongs to; "" only in configuration, meaning "any"
	ClientID        string
	ClientSecret    string    // secret; empty for public clients
	SecretExpiresAt time.Time // RFC 7591 client_secret_expires_at; zero when it never expires
	AuthMethod      string    // token_endpoint_auth_method: client_secret_basic, client_secret_post or none
	RedirectURIs    []string
	Source          ClientSource
	// KeyID names the driver's key for private_key_jwt client
	// authentication (RFC 7523 §2.2), and KeyAlg its JWS algorithm.
	KeyID  string
	KeyAlg string
}

// ResourceMetadata is an RFC 9728 protected resource metadata document, as
// far as a client uses it.
type ResourceMetadata struct {
	Resource               string   // verbatim; sent byte for byte as the RFC 8707 resource
	AuthorizationServers   []string // issuer identifiers, in the server's order of preference
	ScopesSupported        []string
	BearerMethodsSupported []string
	ResourceName           string
}

// ServerMetadata is an RFC 8414 (or OpenID Connect Discovery) authorization
// server metadata document, as far as a client uses it.
type ServerMetadata struct {
	Issuer                                     string
	AuthorizationEndpoint                      string
	TokenEndpoint                              string
	RegistrationEndpoint                       string
	RevocationEndpoint                         string
	ScopesSupported                            []string
	ResponseTypesSupported                     []string
	GrantTypesSupported                        []string
	CodeChallengeMethodsSupported              []string
	TokenEndpointAuthMethodsSupported          []string
	TokenEndpointAuthSigningAlgValuesSupported []string
	DPoPSigningAlgValuesSupported              []string
	ClientIDMetadataDocumentSupported          bool
	AuthorizationResponseIssParameterSupported bool // RFC 9207
}

// Discovery is what discovery learned about one MCP server: where its
// metadata lives and which authorization server it trusts. Legacy is set
// when the server published no protected resource metadata (MCP
// 2025-03-26); Synthesized when the authorization server published no
// metadata and the default endpoints are used (A-LEG-04).
type Discovery struct {
	Server              string // the MCP server URL discovery started from
	ResourceMetadataURL string // where the PRM was found; empty in legacy mode
	Resource            ResourceMetadata
	Authorization       ServerMetadata
	Legacy              bool
	Synthesized         bool
}
