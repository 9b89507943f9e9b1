package testworld

import (
	"net/http"
	"slices"
)

// authServer is one OAuth 2.1 authorization server. A world has one current
// AS, plus older ones after MigrateTo.
type authServer struct {
	w      *World
	opts   Options // normalized; only the AS fields matter here
	origin string
	issuer string // origin + IssuerPath (RFC 8414 §2: no query, no fragment)
	store  *store
	ext    asExt // the extensions' state (as_grants.go, dpop.go)
}

func newAuthServer(w *World, o Options, origin string) *authServer {
	as := &authServer{w: w, opts: o, origin: origin, issuer: origin + o.IssuerPath, store: newStore()}
	for id, secret := range o.PreRegistered {
		c := &client{
			id:          id,
			secret:      secret,
			authMethod:  AuthMethodNone,
			grantTypes:  []string{"authorization_code", "refresh_token"},
			anyLoopback: true,
			issuedAt:    o.Now(),
		}
		if secret != "" {
			c.authMethod = confidentialMethod(o.AuthMethods)
		}
		if uris, ok := o.PreRegisteredRedirectURIs[id]; ok {
			c.redirectURIs, c.anyLoopback = slices.Clone(uris), false
		}
		as.store.addClient(c)
	}
	as.extendClients()
	return as
}

// Endpoint paths live under the issuer path (legacy MetadataNone: the origin
// root, MCP 2025-03-26 "Fallbacks for Servers without Metadata Discovery").
func (as *authServer) path(endpoint string) string { return as.opts.IssuerPath + endpoint }
func (as *authServer) url(endpoint string) string  { return as.origin + as.path(endpoint) }

// routes registers the AS endpoints. Method-qualified patterns give 405 with
// Allow for a wrong method; anything not registered is 404, which covers
// "every other well-known URL".
func (as *authServer) routes(mux *http.ServeMux) {
	for _, p := range as.metadataPaths() {
		mux.Handle("GET "+p, as.delayed(as.handleMetadata))
	}
	mux.Handle("GET "+as.path("/authorize"), as.delayed(as.handleAuthorize))
	mux.Handle("POST "+as.path("/token"), as.delayed(as.handleToken))
	mux.Handle("POST "+as.path("/revoke"), as.delayed(as.handleRevoke))
	if as.opts.DCR {
		mux.Handle("POST "+as.path("/register"), as.delayed(as.handleRegister))
	}
}

// delayed applies Fault.Delay before the handler, for timeout tests.
func (as *authServer) delayed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sleep(r.Context(), as.w.faults.takeDelay())
		if r.Context().Err() != nil {
			return // the client gave up; nothing to answer
		}
		h(w, r)
	})
}
