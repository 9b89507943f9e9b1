package machine

import (
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
	"slices"
)

// knownClient finds a client identity for a validated issuer without the
// store, in the priority order of A-REG-01: pre-registered configuration,
// then a Client ID Metadata Document, then one already in memory.
func (st *step) knownClient(m effects.ServerMetadata) (effects.Client, bool) {
	cfg := st.s.Config
	for _, c := range cfg.Clients {
		if c.Issuer == m.Issuer {
			return st.preRegistered(c, m), true
		}
	}
	for _, c := range cfg.Clients {
		if c.Issuer == "" && (st.s.AnyIssuerBoundTo == "" || st.s.AnyIssuerBoundTo == m.Issuer) {
			st.s.AnyIssuerBoundTo = m.Issuer
			return st.preRegistered(c, m), true
		}
	}
	// A-CIMD-03/04: the document URL is https with a path; the server must
	// say it fetches such documents (A-REG-03).
	if cfg.ClientMetadataURL != "" && m.ClientIDMetadataDocumentSupported && hasPath(cfg.ClientMetadataURL) {
		return effects.Client{
			Issuer:       m.Issuer,
			ClientID:     cfg.ClientMetadataURL,
			AuthMethod:   "none",
			RedirectURIs: []string{cfg.RedirectURI},
			Source:       effects.ClientMetadataURL,
		}, true
	}
	if st.s.HasClient && st.usable(st.s.Client, m.Issuer) {
		return st.s.Client, true
	}
	return effects.Client{}, false
}

// usable reports whether a stored registration can be used for this flow:
// bound to the issuer, its secret unexpired, and registered with the
// redirect URI in use (servers match redirect URIs exactly, port included).
func (st *step) usable(c effects.Client, issuer string) bool {
	if c.Issuer != issuer || c.ClientID == "" || !st.clientValid(c) {
		return false
	}
	uri := st.s.Config.RedirectURI
	return c.Source != effects.ClientDynamic || uri == "" || len(c.RedirectURIs) == 0 || slices.Contains(c.RedirectURIs, uri)
}

// preRegistered binds a configured client to the issuer (SEP-2352) and
// settles its authentication method from the metadata when the
// configuration left it open: never guessed beyond what the server says.
func (st *step) preRegistered(c effects.Client, m effects.ServerMetadata) effects.Client {
	c.Issuer = m.Issuer
	c.Source = effects.ClientPreRegistered
	if c.AuthMethod == "" {
		c.AuthMethod = chooseAuthMethod(c, m)
	}
	if len(c.RedirectURIs) == 0 && st.s.Config.RedirectURI != "" {
		c.RedirectURIs = []string{st.s.Config.RedirectURI}
	}
	return c
}

// chooseAuthMethod picks the client authentication for a configured client
// from the server's list. RFC 8414 §2: an absent list means
// client_secret_basic. A key is used for private_key_jwt (RFC 7523) when
// the server lists it and the key's algorithm (A-EXT-CC-05).
func chooseAuthMethod(c effects.Client, m effects.ServerMetadata) string {
	supported := m.TokenEndpointAuthMethodsSupported
	algs := m.TokenEndpointAuthSigningAlgValuesSupported
	if c.KeyID != "" && slices.Contains(supported, "private_key_jwt") && (len(algs) == 0 || slices.Contains(algs, c.KeyAlg)) {
		return "private_key_jwt"
	}
	if c.ClientSecret == "" {
		return "none"
	}
	if len(supported) == 0 || slices.Contains(supported, "client_secret_basic") {
		return "client_secret_basic"
	}
	if slices.Contains(supported, "client_secret_post") {
		return "client_secret_post"
	}
	return "" // nothing this client can do: refused, never guessed (E-37)
}

// AuthMethodError reports a configured client that cannot authenticate
// with any method the authorization server lists.
type AuthMethodError struct {
	Issuer    string
	Supported []string
}

func (e *AuthMethodError) Error() string {
	return "machine: the configured client cannot use any client authentication " + e.Issuer + " supports"
}

// clientValid reports whether a stored registration can still be used:
// its secret has not expired (RFC 7591 client_secret_expires_at).
func (st *step) clientValid(c effects.Client) bool {
	return c.SecretExpiresAt.IsZero() || st.env.Now.Before(c.SecretExpiresAt)
}

// clientLoaded takes the registration the store holds for the issuer, or
// registers a new client.
func (st *step) clientLoaded(in ClientLoaded) error {
	m := st.s.Discovery.Authorization
	if c := in.Client; c != nil && st.usable(*c, m.Issuer) {
		st.s.Client, st.s.HasClient = *c, true
		if err := st.to(states.ClientFound); err != nil {
			return err
		}
		return st.authorize(st.initialScope())
	}
	if m.RegistrationEndpoint == "" || st.s.Config.NoDynamicRegistration {
		return st.fail(&NoClientError{Issuer: m.Issuer})
	}
	if st.s.Config.RedirectURI == "" {
		return st.fail(&ConfigError{Field: "RedirectURI", Reason: "required to register a client"})
	}
	if err := st.to(states.RegistrationNeeded); err != nil {
		return err
	}
	return st.register()
}
