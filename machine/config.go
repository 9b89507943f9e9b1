package machine

import (
	"net/url"
	"time"

	"github.com/mcpauth/mcpauth/effects"
)

// Protocol versions of the MCP authorization spec the machine knows.
const (
	Version20250326 = "2025-03-26"
	Version20250618 = "2025-06-18"
	Version20251125 = "2025-11-25"
	Version20260728 = "2026-07-28"
)

// Config is what the user of one authorization context decides. The zero
// value of every optional field is a safe default.
type Config struct {
	// Server is the MCP server URL the context authorizes (required).
	Server string
	// ProtocolVersion is the MCP protocol version spoken; it is sent as
	// MCP-Protocol-Version on discovery requests. Default Version20251125.
	ProtocolVersion string

	// RedirectURI is where the authorization response comes back (a
	// loopback URL for a native client, RFC 8252 §7.3). Required for the
	// authorization-code flow.
	RedirectURI string
	// ClientName is sent in dynamic registration. Default "mcpauth".
	ClientName string
	// ApplicationType is sent in dynamic registration (SEP-837); by default
	// "native" for loopback redirect URIs and "web" otherwise.
	ApplicationType string

	// Clients are pre-registered client identities (A-REG-02), each bound to
	// its Issuer (SEP-2352); an empty Issuer means "any issuer" and binds to
	// the first one that validates.
	Clients []effects.Client
	// ClientMetadataURL is this client's Client ID Metadata Document URL
	// (A-CIMD-*), used when the server advertises support; it must be https
	// with a path.
	ClientMetadataURL string
	// NoDynamicRegistration forbids RFC 7591 registration.
	NoDynamicRegistration bool
	// TokenEndpointAuthMethod is asked for in dynamic registration; default
	// "none" (a public native client).
	TokenEndpointAuthMethod string

	// Scopes, when set, replaces the scope selection strategy for the first
	// authorization.
	Scopes []string
	// NoRefreshTokens stops the client from asking for offline_access and
	// the refresh_token grant (SEP-2207).
	NoRefreshTokens bool
	// RefreshMargin is how long before expiry a credential is refreshed.
	// Default one minute.
	RefreshMargin time.Duration

	// ResourcePrefixMatch accepts a PRM resource that is a same-origin path
	// prefix of Server (RFC 9728 §3.3 allows no more; off by default).
	ResourcePrefixMatch bool
	// TolerateIssuerSlash accepts a metadata issuer that differs from the
	// issuer identifier only by one "/" on an empty path.
	TolerateIssuerSlash bool
	// AllowMissingPKCE proceeds (still with S256) when metadata omits
	// code_challenge_methods_supported; off by default (A-PKCE-05).
	AllowMissingPKCE bool

	// Grants are the ways the client may get a credential, in order of
	// preference; the first the authorization server supports is used.
	// Default: the authorization-code flow only.
	Grants []Grant
	// IdentityProvider configures GrantEnterprise.
	IdentityProvider IdentityProvider
	// DPoP says when tokens are bound to a key (RFC 9449); DPoPKeyID names
	// the driver's key (default "dpop"), DPoPAlg its algorithm (default
	// ES256).
	DPoP      DPoPMode
	DPoPKeyID string
	DPoPAlg   string

	// Limits bound every loop; zero fields take the defaults.
	Limits Limits
}

// Limits bound the work of one attempt and of one request (design §4.8).
type Limits struct {
	// StepsPerAttempt bounds the inputs one attempt may consume. Default 64.
	StepsPerAttempt int
	// AuthorizationServers bounds how many listed servers are tried. Default 4.
	AuthorizationServers int
	// StepUpsPerRequest bounds re-authorizations for more scope on one
	// request (MCP step-up retry limits). Default 2.
	StepUpsPerRequest int
	// ResendsPerRequest bounds how often one request is re-sent after a new
	// credential. Default 3.
	ResendsPerRequest int
}

func (c Config) withDefaults() Config {
	if c.ProtocolVersion == "" {
		c.ProtocolVersion = Version20251125
	}
	if c.ClientName == "" {
		c.ClientName = "mcpauth"
	}
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = "none"
	}
	if c.RefreshMargin == 0 {
		c.RefreshMargin = time.Minute
	}
	if c.Limits.StepsPerAttempt == 0 {
		c.Limits.StepsPerAttempt = 64
	}
	if c.Limits.AuthorizationServers == 0 {
		c.Limits.AuthorizationServers = 4
	}
	if c.Limits.StepUpsPerRequest == 0 {
		c.Limits.StepUpsPerRequest = 2
	}
	if c.Limits.ResendsPerRequest == 0 {
		c.Limits.ResendsPerRequest = 3
	}
	if c.DPoPKeyID == "" {
		c.DPoPKeyID = "dpop"
	}
	if c.DPoPAlg == "" {
		c.DPoPAlg = "ES256"
	}
	if c.ApplicationType == "" {
		c.ApplicationType = "web"
		if loopbackRedirect(c.RedirectURI) {
			c.ApplicationType = "native"
		}
	}
	return c
}

// loopbackRedirect reports whether a redirect URI is a loopback one (RFC
// 8252 §7.3), which makes the client a native application (SEP-837).
func loopbackRedirect(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "http" && IsLoopbackHost(u.Hostname())
}
