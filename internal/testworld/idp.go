package testworld

// The enterprise identity provider of enterprise-managed authorization
// (SEP-990, Options.Enterprise): its own listener, an RFC 8693 token
// exchange at /oauth2/token that trades an ID token it issued
// (World.IssueIDToken) for an ID-JAG — a JWT with typ oauth-id-jag+jwt,
// signed by the IdP, naming the authorization server (aud), the MCP server
// (resource) and the client there (client_id) — which the AS accepts in the
// jwt-bearer grant (as_grants.go).
//
// The IdP knows the MCP client as a public client (IdPClientID, sent as
// client_id). It checks: grant_type, client_id, subject_token_type id_token,
// requested_token_type id-jag, the ID token (signature, iss, aud =
// IdPClientID, exp, sub), audience = the current AS issuer, resource = the
// MCP URL.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

const (
	idpTokenPath = "/oauth2/token"
	idTokenTTL   = time.Hour
	idJAGTTL     = 5 * time.Minute
)

type idpServer struct {
	w        *World
	issuer   string // its origin
	clientID string
	key      *ecdsa.PrivateKey

	mu     sync.Mutex
	refuse string // when set, every exchange is refused with this error code
}

func (w *World) startIdP() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("testworld: identity provider key: %w", err)
	}
	mux := http.NewServeMux()
	l, err := listen("idp", mux, w.stats, w.opts.Logf)
	if err != nil {
		return fmt.Errorf("testworld: listen: %w", err)
	}
	idp := &idpServer{w: w, issuer: l.origin, clientID: w.opts.IdPClientID, key: key}
	mux.HandleFunc("POST "+idpTokenPath, idp.handleExchange)
	w.mu.Lock()
	w.listeners = append(w.listeners, l)
	w.ext.idp = idp
	w.mu.Unlock()
	return nil
}

func (w *World) identityProvider() *idpServer {
	if w.ext.idp == nil {
		panic("testworld: no identity provider: set Options.Enterprise")
	}
	return w.ext.idp
}

// IdPIssuer is the identity provider's issuer (its origin). It panics
// unless Options.Enterprise.
func (w *World) IdPIssuer() string { return w.identityProvider().issuer }

// IdPTokenEndpoint is the identity provider's token exchange endpoint.
func (w *World) IdPTokenEndpoint() string { return w.identityProvider().issuer + idpTokenPath }

// IdPClientID is the client_id the identity provider knows the client by.
func (w *World) IdPClientID() string { return w.identityProvider().clientID }

// IssueIDToken returns an ID token the identity provider issued for subject
// (aud IdPClientID, valid for an hour by the world's clock): what the user's
// single sign-on left with the client.
func (w *World) IssueIDToken(subject string) string {
	idp := w.identityProvider()
	now := w.now()
	tok, err := SignJWT(idp.key, "JWT", map[string]any{
		"iss": idp.issuer, "sub": subject, "aud": idp.clientID,
		"iat": now.Unix(), "exp": now.Add(idTokenTTL).Unix(),
	})
	if err != nil {
		panic("testworld: IssueIDToken: " + err.Error())
	}
	return tok
}

// RefuseTokenExchanges makes the identity provider refuse every exchange
// with this error code (400; invalid_client is 401); "" restores it.
func (w *World) RefuseTokenExchanges(code string) {
	idp := w.identityProvider()
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.refuse = code
}

// exchangeResponse is RFC 8693 §2.2.1.
type exchangeResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

func (idp *idpServer) handleExchange(w http.ResponseWriter, r *http.Request) {
	resp, oerr := idp.exchange(w, r)
	if oerr != nil {
		idp.w.stats.add(func(s *Stats) { s.TokenExchangesRefused++ })
		writeOAuthError(w, oerr)
		return
	}
	idp.w.stats.add(func(s *Stats) { s.TokenExchanges++ })
	writeJSON(w, http.StatusOK, resp)
}

func (idp *idpServer) exchange(w http.ResponseWriter, r *http.Request) (exchangeResponse, *oauthError) {
	form, oerr := readForm(w, r)
	if oerr != nil {
		return exchangeResponse{}, oerr
	}
	idp.mu.Lock()
	refuse := idp.refuse
	idp.mu.Unlock()
	if refuse != "" {
		e := &oauthError{status: http.StatusBadRequest, code: refuse, desc: "refused by testworld"}
		if refuse == "invalid_client" {
			e.status = http.StatusUnauthorized
		}
		return exchangeResponse{}, e
	}
	switch {
	case param(form, "grant_type") != grantTokenExchange:
		return exchangeResponse{}, errUnsupportedGrant()
	case len(r.Header.Values("Authorization")) > 0 || form.Has("client_secret"):
		return exchangeResponse{}, errInvalidClient("the client is public at this identity provider", false)
	case param(form, "client_id") != idp.clientID:
		return exchangeResponse{}, errInvalidClient("unknown client", false)
	case param(form, "subject_token_type") != tokenTypeIDToken:
		return exchangeResponse{}, errInvalidRequest("subject_token_type must be " + tokenTypeIDToken)
	case param(form, "requested_token_type") != tokenTypeIDJAG:
		return exchangeResponse{}, errInvalidRequest("requested_token_type must be " + tokenTypeIDJAG)
	case param(form, "subject_token") == "":
		return exchangeResponse{}, errInvalidRequest("subject_token required")
	}
	idTok, err := verifyJWT(param(form, "subject_token"), idp.key.Public())
	now := idp.w.now()
	switch {
	case err != nil:
		return exchangeResponse{}, errInvalidGrant("subject_token is not an ID token of this identity provider")
	case idTok.Iss != idp.issuer || !idTok.Aud.has(idp.clientID) || idTok.Sub == "":
		return exchangeResponse{}, errInvalidGrant("subject_token has the wrong issuer, audience or no subject")
	case idTok.Exp == nil || !now.Before(time.Unix(*idTok.Exp, 0)):
		return exchangeResponse{}, errInvalidGrant("subject_token expired")
	}
	if aud := form["audience"]; len(aud) != 1 || aud[0] != idp.w.Issuer() {
		return exchangeResponse{}, errInvalidTarget("audience must be the authorization server's issuer")
	}
	resource, oerr := singleResource(form)
	if oerr != nil {
		return exchangeResponse{}, oerr
	}
	if resource != idp.w.MCPURL() {
		return exchangeResponse{}, errInvalidTarget("resource is not the MCP server")
	}
	scope, oerr := parseScope(param(form, "scope"))
	if oerr != nil {
		return exchangeResponse{}, oerr
	}
	claims := map[string]any{
		"iss": idp.issuer, "sub": idTok.Sub, "aud": idp.w.Issuer(),
		"client_id": idp.w.opts.EnterpriseClientID, "resource": resource,
		"jti": newSecret("jag_"), "iat": now.Unix(), "exp": now.Add(idJAGTTL).Unix(),
	}
	if len(scope) > 0 {
		claims["scope"] = strings.Join(scope, " ")
	}
	jag, err := SignJWT(idp.key, typIDJAG, claims)
	if err != nil {
		return exchangeResponse{}, &oauthError{status: http.StatusInternalServerError, code: "server_error", desc: "cannot sign"}
	}
	return exchangeResponse{
		AccessToken: jag, IssuedTokenType: tokenTypeIDJAG, TokenType: "N_A",
		ExpiresIn: int64(idJAGTTL / time.Second), Scope: strings.Join(scope, " "),
	}, nil
}
