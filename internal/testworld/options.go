package testworld

import (
	"crypto"
	"fmt"
	"slices"
	"strings"
	"time"
)

// PRMMode is how the resource server publishes Protected Resource Metadata
// (RFC 9728). Each mode serves PRM at exactly one URL (or none) so a test can
// tell which discovery path a client took.
type PRMMode int

const (
	// PRMHeader: the 401 carries resource_metadata=<rs>/.well-known/oauth-protected-resource/mcp
	// and PRM is served there (RFC 9728 §5.1). The default.
	PRMHeader PRMMode = iota
	// PRMPathOnly: no resource_metadata in the 401; PRM only at the
	// path-inserted well-known URL (RFC 9728 §3.1).
	PRMPathOnly
	// PRMRootOnly: no resource_metadata in the 401; PRM only at
	// <rs>/.well-known/oauth-protected-resource, with resource = the MCP URL
	// (MCP 2025-11-25 fallback order).
	PRMRootOnly
	// PRMNone: no PRM at all (MCP 2025-03-26): the AS is served on the RS
	// origin, which forces SameOrigin.
	PRMNone
)

func (m PRMMode) String() string {
	switch m {
	case PRMHeader:
		return "PRMHeader"
	case PRMPathOnly:
		return "PRMPathOnly"
	case PRMRootOnly:
		return "PRMRootOnly"
	case PRMNone:
		return "PRMNone"
	}
	return fmt.Sprintf("PRMMode(%d)", int(m))
}

// MetadataMode is how the authorization server publishes its metadata.
type MetadataMode int

const (
	// MetadataRFC8414: /.well-known/oauth-authorization-server, path-inserted
	// for path issuers (RFC 8414 §3.1). The default.
	MetadataRFC8414 MetadataMode = iota
	// MetadataOIDC: only OpenID Connect discovery:
	// /.well-known/openid-configuration, and for path issuers both the
	// path-inserted form and <issuer path>/.well-known/openid-configuration.
	MetadataOIDC
	// MetadataNone: no metadata; the legacy default endpoints /authorize,
	// /token, /register, /revoke on the AS origin (MCP 2025-03-26 fallback).
	MetadataNone
)

func (m MetadataMode) String() string {
	switch m {
	case MetadataRFC8414:
		return "MetadataRFC8414"
	case MetadataOIDC:
		return "MetadataOIDC"
	case MetadataNone:
		return "MetadataNone"
	}
	return fmt.Sprintf("MetadataMode(%d)", int(m))
}

// Client authentication methods (RFC 7591 §2, token_endpoint_auth_method).
const (
	AuthMethodBasic = "client_secret_basic"
	AuthMethodPost  = "client_secret_post"
	AuthMethodNone  = "none"
)

// Options configures a World. The zero value is a valid, spec-conforming
// world with no clients: enable DCR, CIMD or PreRegistered to let one in.
type Options struct {
	PRM      PRMMode
	Metadata MetadataMode
	// IssuerPath is "" or a path such as "/tenant1": the issuer is
	// <as-origin><IssuerPath> and the endpoints live under it. Not allowed
	// with MetadataNone (legacy endpoints are at the origin root).
	IssuerPath string
	// SameOrigin serves the AS on the RS listener. Forced when PRM==PRMNone.
	SameOrigin bool
	// DCR advertises and serves registration_endpoint (RFC 7591).
	DCR bool
	// CIMD advertises client_id_metadata_document_supported and accepts
	// https client_id URLs with a path as public clients (method none). The
	// document is not fetched.
	CIMD bool
	// PreRegistered maps client_id to client_secret; "" is a public client
	// (method none). A confidential pre-registered client is registered with
	// the first non-"none" entry of AuthMethods. Its redirect URIs are those
	// in PreRegisteredRedirectURIs, or else any loopback http URI.
	PreRegistered map[string]string
	// PreRegisteredRedirectURIs optionally pins the redirect URIs of
	// pre-registered clients (exact match).
	PreRegisteredRedirectURIs map[string][]string
	// AuthMethods is token_endpoint_auth_methods_supported; default
	// ["client_secret_basic","client_secret_post","none"]. DCR registers the
	// method the client asked for (RFC 7591 default client_secret_basic) if
	// listed, else the first listed.
	AuthMethods []string
	// ScopesSupported is PRM scopes_supported (nil = omitted).
	ScopesSupported []string
	// ASScopesSupported is AS metadata scopes_supported (nil = omitted). When
	// it lists "offline_access", refresh tokens are issued only to grants
	// that include that scope.
	ASScopesSupported []string
	// ChallengeScope is the scope attribute of the 401 challenge ("" = omitted).
	ChallengeScope string
	// ToolScopes maps a tool name to the scope needed to call it; a token
	// without it gets 403 insufficient_scope (RFC 6750 §3.1).
	ToolScopes map[string]string
	// AccessTTL is the access-token lifetime; default 1h. expires_in is sent
	// as integer seconds.
	AccessTTL time.Duration
	// RefreshTTL is the refresh-token lifetime; 0 = no expiry.
	RefreshTTL time.Duration
	// RotateRefresh: each refresh returns a new refresh token and invalidates
	// the old one; presenting an invalidated one is invalid_grant and revokes
	// the whole family (OAuth 2.1 §4.3.1, as Ory Hydra does).
	RotateRefresh bool
	// NoRefreshTokens: never issue refresh tokens.
	NoRefreshTokens bool
	// IssParameter advertises authorization_response_iss_parameter_supported
	// and adds iss to every authorization response (RFC 9207).
	IssParameter bool
	// LoopbackAnyPort accepts any port on a registered loopback-IP redirect
	// URI (RFC 8252 §7.3). Off by default: redirect URIs match exactly.
	LoopbackAnyPort bool
	// Now is the clock for code and token expiry; default time.Now.
	Now func() time.Time
	// Logf, if set, receives one line per request: server, method, path,
	// status. Never query strings, headers or bodies.
	Logf func(format string, args ...any)

	// The extensions (as_grants.go, idp.go, dpop.go); all off by default.

	// ClientCredentials advertises and serves the client_credentials grant
	// (RFC 6749 §4.4) to confidential pre-registered clients (PreRegistered
	// with a secret, ClientKeys).
	ClientCredentials bool
	// ClientKeys pre-registers clients that authenticate with
	// private_key_jwt (RFC 7523 §2.2, §3): client_id to public key
	// (*ecdsa.PublicKey, *rsa.PublicKey or ed25519.PublicKey). AuthMethods
	// must list AuthMethodPrivateKeyJWT.
	ClientKeys map[string]crypto.PublicKey
	// ClientSigningAlgs is token_endpoint_auth_signing_alg_values_supported,
	// advertised and enforced when AuthMethods lists private_key_jwt;
	// default ["ES256"].
	ClientSigningAlgs []string
	// WorkloadIssuer and WorkloadKey make the jwt-bearer grant (RFC 7523
	// §2.1) accept workload identity tokens (SEP-1933) signed by WorkloadKey
	// with iss WorkloadIssuer and aud the issuer; no client authentication
	// is required.
	WorkloadIssuer string
	WorkloadKey    crypto.PublicKey
	// Enterprise starts an enterprise identity provider on its own listener
	// (SEP-990): its RFC 8693 token exchange trades ID tokens it issued
	// (World.IssueIDToken) for ID-JAGs naming EnterpriseClientID, which the
	// AS accepts in the jwt-bearer grant from that client.
	Enterprise bool
	// IdPClientID is the client_id the identity provider requires in the
	// exchange (and the aud of its ID tokens); default "idp-client".
	IdPClientID string
	// EnterpriseClientID is the AS client the ID-JAGs are issued for (a
	// PreRegistered or ClientKeys client); required with Enterprise.
	EnterpriseClientID string
	// DPoP (RFC 9449): the AS advertises dpop_signing_alg_values_supported
	// ["ES256"], checks the proofs sent to /token and binds the tokens it
	// issues with one (cnf.jkt); the RS requires a fresh proof with every
	// DPoP-bound token and refuses such a token sent as Bearer.
	DPoP bool
	// DPoPNonceAS and DPoPNonceRS make the AS and the RS require their
	// server nonce in proofs (RFC 9449 §8, §9).
	DPoPNonceAS, DPoPNonceRS bool
	// DPoPStubbornNonce makes a server that requires nonces refuse every
	// proof with a fresh nonce: a server that never settles.
	DPoPStubbornNonce bool
}

const (
	defaultAccessTTL = time.Hour
	codeTTL          = 60 * time.Second // RFC 6749 §4.1.2: "maximum ... of 10 minutes RECOMMENDED"; we are stricter
)

var defaultAuthMethods = []string{AuthMethodBasic, AuthMethodPost, AuthMethodNone}

// normalize fills defaults and rejects contradictory settings, so that every
// handler can trust the options it reads.
func (o Options) normalize() (Options, error) {
	if o.PRM < PRMHeader || o.PRM > PRMNone {
		return o, fmt.Errorf("testworld: unknown PRM mode %d", int(o.PRM))
	}
	if o.Metadata < MetadataRFC8414 || o.Metadata > MetadataNone {
		return o, fmt.Errorf("testworld: unknown metadata mode %d", int(o.Metadata))
	}
	if o.PRM == PRMNone {
		o.SameOrigin = true
	}
	if err := validIssuerPath(o.IssuerPath); err != nil {
		return o, err
	}
	if o.Metadata == MetadataNone && o.IssuerPath != "" {
		return o, fmt.Errorf("testworld: IssuerPath %q with MetadataNone: legacy endpoints live at the origin root", o.IssuerPath)
	}
	if len(o.AuthMethods) == 0 {
		o.AuthMethods = slices.Clone(defaultAuthMethods)
	} else {
		o.AuthMethods = slices.Clone(o.AuthMethods)
	}
	for _, m := range o.AuthMethods {
		// private_key_jwt only with keys to check assertions against (as_grants.go).
		if !slices.Contains(defaultAuthMethods, m) && (m != AuthMethodPrivateKeyJWT || len(o.ClientKeys) == 0) {
			return o, fmt.Errorf("testworld: unsupported auth method %q", m)
		}
	}
	for id, secret := range o.PreRegistered {
		if id == "" {
			return o, fmt.Errorf("testworld: empty pre-registered client_id")
		}
		if secret == "" && !slices.Contains(o.AuthMethods, AuthMethodNone) {
			return o, fmt.Errorf("testworld: public pre-registered client %q but %q not in AuthMethods", id, AuthMethodNone)
		}
		if secret != "" && confidentialMethod(o.AuthMethods) == "" {
			return o, fmt.Errorf("testworld: confidential pre-registered client %q but no secret method in AuthMethods", id)
		}
	}
	if o.AccessTTL == 0 {
		o.AccessTTL = defaultAccessTTL
	}
	if o.AccessTTL < time.Second {
		return o, fmt.Errorf("testworld: AccessTTL %v below one second cannot be expressed in expires_in", o.AccessTTL)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o.normalizeExtensions()
}

// confidentialMethod is the method a pre-registered client with a secret is
// registered with: the first secret-based method the AS supports.
func confidentialMethod(methods []string) string {
	for _, m := range methods {
		if m != AuthMethodNone && m != AuthMethodPrivateKeyJWT {
			return m
		}
	}
	return ""
}

// validIssuerPath keeps the issuer path to plain segments, so it is safe both
// in URLs and in http.ServeMux patterns and cannot shadow a well-known URL.
func validIssuerPath(p string) error {
	if p == "" {
		return nil
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return fmt.Errorf("testworld: IssuerPath %q must be like /tenant1", p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." || seg == ".well-known" {
			return fmt.Errorf("testworld: IssuerPath %q has a reserved segment %q", p, seg)
		}
	}
	for _, r := range p {
		ok := r == '/' || r == '-' || r == '.' || r == '_' || r == '~' ||
			('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
		if !ok {
			return fmt.Errorf("testworld: IssuerPath %q: character %q not allowed", p, r)
		}
	}
	return nil
}
