package testworld

// The grants without a user, and private_key_jwt client authentication:
//
//   - client_credentials (RFC 6749 §4.4) for confidential pre-registered
//     clients, with the RFC 8707 resource;
//   - private_key_jwt (RFC 7523 §2.2, §3): the assertion's signature by the
//     registered key, iss = sub = client_id, aud = the issuer, exp, and a
//     jti that is never accepted twice;
//   - the jwt-bearer grant (RFC 7523 §2.1) with a workload identity token
//     (SEP-1933: signature by Options.WorkloadKey, iss, aud = the issuer,
//     exp; no client authentication needed) or with an ID-JAG from the
//     enterprise identity provider (SEP-990: typ oauth-id-jag+jwt, signed by
//     the IdP, aud = the issuer, resource, client_id = the authenticated
//     client, single use).

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Extension names on the wire.
const (
	// AuthMethodPrivateKeyJWT is RFC 7523 §2.2 client authentication.
	AuthMethodPrivateKeyJWT = "private_key_jwt"
	// GrantClientCredentials is RFC 6749 §4.4.
	GrantClientCredentials = "client_credentials"
	// GrantJWTBearer is RFC 7523 §2.1.
	GrantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	grantTokenExchange  = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeIDJAG      = "urn:ietf:params:oauth:token-type:id-jag"
	tokenTypeIDToken    = "urn:ietf:params:oauth:token-type:id_token"
	typIDJAG            = "oauth-id-jag+jwt"
)

// clockSkew is how far in the future an iat may be.
const clockSkew = 60 * time.Second

// GrantRecord is one token issued by /token, for assertions about how it
// was obtained. It holds no secret.
type GrantRecord struct {
	GrantType string
	// ClientID is the authenticated client ("" for a workload that did not
	// authenticate).
	ClientID string
	// AuthMethod is how the client authenticated: client_secret_basic,
	// client_secret_post, private_key_jwt, none; "" when it did not.
	AuthMethod string
	// Subject and AssertionID are the sub and jti of a jwt-bearer assertion.
	Subject, AssertionID string
	Scope, Resource      string
	// TokenType is Bearer or DPoP; JKT the RFC 7638 thumbprint a DPoP token
	// is bound to (cnf.jkt).
	TokenType, JKT string
}

// asExt is one authorization server's state for the extensions.
type asExt struct {
	mu            sync.Mutex
	assertionJTIs map[string]time.Time // private_key_jwt jti -> exp
	jagJTIs       map[string]time.Time // ID-JAG jti -> exp
	bound         map[string]string    // access or refresh token -> jkt
	grantInfo     map[string]extGrant  // access token -> assertion data, until issued() reads it
	dpop          dpopServer
}

type extGrant struct{ subject, jti string }

// worldExt is the world's state for the extensions.
type worldExt struct {
	idp    *idpServer
	rsDPoP dpopServer

	mu     sync.Mutex
	proofs []DPoPProof
	grants []GrantRecord
}

// GrantLog returns every token issued by /token so far, in order.
func (w *World) GrantLog() []GrantRecord {
	w.ext.mu.Lock()
	defer w.ext.mu.Unlock()
	return slices.Clone(w.ext.grants)
}

// startExtensions starts what the options ask for beyond the AS and RS.
func (w *World) startExtensions() error {
	if w.opts.Enterprise {
		return w.startIdP()
	}
	return nil
}

var supportedClientAlgs = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}

// normalizeExtensions fills the extensions' defaults and rejects
// contradictions.
func (o Options) normalizeExtensions() (Options, error) {
	pkjwt := slices.Contains(o.AuthMethods, AuthMethodPrivateKeyJWT)
	if len(o.ClientKeys) > 0 && !pkjwt {
		return o, errors.New("testworld: ClientKeys need AuthMethodPrivateKeyJWT in AuthMethods")
	}
	for id, key := range o.ClientKeys {
		if id == "" {
			return o, errors.New("testworld: empty client_id in ClientKeys")
		}
		if _, dup := o.PreRegistered[id]; dup {
			return o, fmt.Errorf("testworld: client %q both in PreRegistered and in ClientKeys", id)
		}
		if len(algsFor(key)) == 0 {
			return o, fmt.Errorf("testworld: ClientKeys[%q]: unsupported key type %T", id, key)
		}
	}
	if pkjwt {
		if len(o.ClientSigningAlgs) == 0 {
			o.ClientSigningAlgs = []string{"ES256"}
		} else {
			o.ClientSigningAlgs = slices.Clone(o.ClientSigningAlgs)
		}
		for _, a := range o.ClientSigningAlgs {
			if !slices.Contains(supportedClientAlgs, a) {
				return o, fmt.Errorf("testworld: unsupported client signing alg %q", a)
			}
		}
	}
	if (o.WorkloadIssuer == "") != (o.WorkloadKey == nil) {
		return o, errors.New("testworld: WorkloadIssuer and WorkloadKey go together")
	}
	if o.WorkloadKey != nil && len(algsFor(o.WorkloadKey)) == 0 {
		return o, fmt.Errorf("testworld: unsupported WorkloadKey type %T", o.WorkloadKey)
	}
	if o.Enterprise {
		if o.IdPClientID == "" {
			o.IdPClientID = "idp-client"
		}
		if o.EnterpriseClientID == "" {
			return o, errors.New("testworld: Enterprise needs EnterpriseClientID")
		}
		_, pre := o.PreRegistered[o.EnterpriseClientID]
		_, keyed := o.ClientKeys[o.EnterpriseClientID]
		if !pre && !keyed {
			return o, fmt.Errorf("testworld: EnterpriseClientID %q is not a pre-registered client", o.EnterpriseClientID)
		}
	}
	if (o.DPoPNonceAS || o.DPoPNonceRS || o.DPoPStubbornNonce) && !o.DPoP {
		return o, errors.New("testworld: DPoP nonce options need DPoP")
	}
	return o, nil
}

// jwtBearerEnabled says whether the AS serves the jwt-bearer grant.
func (as *authServer) jwtBearerEnabled() bool {
	return as.opts.WorkloadIssuer != "" || as.opts.Enterprise
}

// acceptsAssertions says whether private_key_jwt is one of the methods.
func (as *authServer) acceptsAssertions() bool {
	return slices.Contains(as.opts.AuthMethods, AuthMethodPrivateKeyJWT)
}

// extendClients registers the ClientKeys clients and gives pre-registered
// clients the extension grants the options enable.
func (as *authServer) extendClients() {
	o := as.opts
	for id := range o.ClientKeys {
		as.store.addClient(&client{
			id:          id,
			authMethod:  AuthMethodPrivateKeyJWT,
			grantTypes:  []string{"authorization_code", "refresh_token"},
			anyLoopback: true,
			issuedAt:    o.Now(),
		})
	}
	s := as.store
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clients {
		if o.ClientCredentials && c.authMethod != AuthMethodNone {
			c.grantTypes = append(c.grantTypes, GrantClientCredentials)
		}
		if as.jwtBearerEnabled() {
			c.grantTypes = append(c.grantTypes, GrantJWTBearer)
		}
	}
}

// extendMetadata advertises the extensions (RFC 8414 §2, RFC 9449 §5.1).
func (as *authServer) extendMetadata(m *asMetadata) {
	o := as.opts
	if o.ClientCredentials {
		m.GrantTypesSupported = append(m.GrantTypesSupported, GrantClientCredentials)
	}
	if as.jwtBearerEnabled() {
		m.GrantTypesSupported = append(m.GrantTypesSupported, GrantJWTBearer)
	}
	if as.acceptsAssertions() {
		m.TokenEndpointAuthSigningAlgValuesSupported = slices.Clone(o.ClientSigningAlgs)
	}
	if o.DPoP {
		m.DPoPSigningAlgValuesSupported = []string{"ES256"}
	}
}

// tokenClient authenticates the client of a token request; a workload's
// jwt-bearer grant may come without any client authentication (SEP-1933),
// and then the client is nil.
func (as *authServer) tokenClient(r *http.Request, grant string, form url.Values) (*client, *oauthError) {
	if grant == GrantJWTBearer && as.jwtBearerEnabled() && len(r.Header.Values("Authorization")) == 0 &&
		!form.Has("client_id") && !form.Has("client_secret") && !form.Has("client_assertion") && !form.Has("client_assertion_type") {
		return nil, nil
	}
	return as.authenticateClient(r, form)
}

// authenticateAssertion is private_key_jwt (RFC 7523 §2.2, §3).
func (as *authServer) authenticateAssertion(r *http.Request, form url.Values) (*client, *oauthError) {
	refuse := func(e *oauthError) (*client, *oauthError) {
		as.w.stats.add(func(s *Stats) { s.ClientAssertionsRefused++ })
		return nil, e
	}
	switch {
	case len(r.Header.Values("Authorization")) > 0 || form.Has("client_secret"):
		return refuse(errInvalidRequest("more than one client authentication method"))
	case param(form, "client_assertion_type") != clientAssertionType:
		return refuse(errInvalidClient("client_assertion_type must be "+clientAssertionType, false))
	case param(form, "client_assertion") == "":
		return refuse(errInvalidRequest("client_assertion required"))
	}
	raw := param(form, "client_assertion")
	obj, err := jose.ParseSignedCompact(raw, joseAlgs(as.opts.ClientSigningAlgs))
	if err != nil {
		return refuse(errInvalidClient("client_assertion is not a compact JWS with a supported alg", false))
	}
	var unverified jwtClaims
	if json.Unmarshal(obj.UnsafePayloadWithoutVerification(), &unverified) != nil {
		return refuse(errInvalidClient("client_assertion claims are not a JSON object", false))
	}
	c, ok := as.lookupClient(unverified.Iss)
	key := as.opts.ClientKeys[unverified.Iss]
	if !ok || key == nil || c.authMethod != AuthMethodPrivateKeyJWT {
		return refuse(errInvalidClient("unknown client or not registered for private_key_jwt", false))
	}
	payload, err := obj.Verify(key)
	if err != nil {
		return refuse(errInvalidClient("client_assertion signature does not verify", false))
	}
	var cl jwtClaims
	if json.Unmarshal(payload, &cl) != nil {
		return refuse(errInvalidClient("client_assertion claims are not a JSON object", false))
	}
	now := as.w.now()
	switch {
	case cl.Iss != c.id || cl.Sub != c.id:
		return refuse(errInvalidClient("iss and sub must both be the client_id", false))
	case form.Has("client_id") && param(form, "client_id") != c.id:
		return refuse(errInvalidClient("client_id differs from the assertion's", false))
	case !cl.Aud.has(as.issuer):
		return refuse(errInvalidClient("aud must be the issuer", false))
	case cl.Exp == nil || !now.Before(time.Unix(*cl.Exp, 0)):
		return refuse(errInvalidClient("assertion expired or without exp", false))
	case cl.Iat != nil && time.Unix(*cl.Iat, 0).After(now.Add(clockSkew)):
		return refuse(errInvalidClient("assertion issued in the future", false))
	case cl.Jti == "":
		return refuse(errInvalidClient("assertion without jti", false))
	}
	if !as.ext.once(&as.ext.assertionJTIs, cl.Jti, time.Unix(*cl.Exp, 0), now) {
		as.w.stats.add(func(s *Stats) { s.JTIReplays++ })
		return refuse(errInvalidClient("assertion jti already used", false))
	}
	as.w.stats.add(func(s *Stats) { s.ClientAssertionsAccepted++ })
	return c, nil
}

// once records jti until exp and reports whether it was new.
func (e *asExt) once(set *map[string]time.Time, jti string, exp, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if *set == nil {
		*set = map[string]time.Time{}
	}
	for k, until := range *set {
		if now.After(until.Add(clockSkew)) {
			delete(*set, k)
		}
	}
	if _, seen := (*set)[jti]; seen {
		return false
	}
	(*set)[jti] = exp
	return true
}

func errUnsupportedGrant() *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "grant_type not supported"}
}

// extensionGrant serves client_credentials and jwt-bearer when enabled,
// and answers as for any unknown grant otherwise.
func (as *authServer) extensionGrant(c *client, grant string, form url.Values) (tokenResponse, *oauthError) {
	switch {
	case grant == GrantClientCredentials && as.opts.ClientCredentials:
		return as.clientCredentials(c, form)
	case grant == GrantJWTBearer && as.jwtBearerEnabled():
		return as.jwtBearer(c, form)
	}
	return tokenResponse{}, errUnsupportedGrant()
}

// clientCredentials is RFC 6749 §4.4.2; no refresh token (§4.4.3).
func (as *authServer) clientCredentials(c *client, form url.Values) (tokenResponse, *oauthError) {
	if c == nil || c.authMethod == AuthMethodNone {
		return tokenResponse{}, errUnauthorizedClient("client_credentials needs a confidential client")
	}
	if !c.allowsGrant(GrantClientCredentials) {
		return tokenResponse{}, errUnauthorizedClient("client is not registered for client_credentials")
	}
	resource, scope, oerr := as.grantTarget(form)
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	return as.issueGrant(c, scope, resource, extGrant{}), nil
}

// grantTarget reads the RFC 8707 resource (required, this RS) and scope.
func (as *authServer) grantTarget(form url.Values) (string, []string, *oauthError) {
	resource, oerr := singleResource(form)
	if oerr != nil {
		return "", nil, oerr
	}
	if resource != as.w.rs.mcpURL {
		return "", nil, errInvalidTarget("resource is not a resource this server issues tokens for")
	}
	scope, oerr := parseScope(param(form, "scope"))
	if oerr != nil {
		return "", nil, oerr
	}
	return resource, scope, nil
}

// jwtBearer is RFC 7523 §2.1 with a workload identity token or an ID-JAG.
func (as *authServer) jwtBearer(c *client, form url.Values) (tokenResponse, *oauthError) {
	assertion := param(form, "assertion")
	if assertion == "" {
		return tokenResponse{}, errInvalidRequest("assertion required")
	}
	resource, scope, oerr := as.grantTarget(form)
	if oerr != nil {
		return tokenResponse{}, oerr
	}
	hdr, unverified, err := peekJWT(assertion)
	if err != nil {
		return tokenResponse{}, errInvalidGrant("assertion is not a compact JWS")
	}
	switch {
	case hdr.Typ == typIDJAG:
		return as.idJAGGrant(c, assertion, resource, scope)
	case as.opts.WorkloadIssuer != "" && unverified.Iss == as.opts.WorkloadIssuer:
		return as.workloadGrant(c, assertion, resource, scope)
	}
	return tokenResponse{}, errInvalidGrant("assertion from an untrusted issuer")
}

// workloadGrant checks a workload identity token (SEP-1933).
func (as *authServer) workloadGrant(c *client, assertion, resource string, scope []string) (tokenResponse, *oauthError) {
	cl, err := verifyJWT(assertion, as.opts.WorkloadKey)
	if err != nil {
		return tokenResponse{}, errInvalidGrant("workload token signature does not verify")
	}
	now := as.w.now()
	switch {
	case cl.Iss != as.opts.WorkloadIssuer:
		return tokenResponse{}, errInvalidGrant("workload token from another issuer")
	case cl.Sub == "":
		return tokenResponse{}, errInvalidGrant("workload token without sub")
	case !cl.Aud.has(as.issuer):
		return tokenResponse{}, errInvalidGrant("workload token aud is not this issuer")
	case cl.Exp == nil || !now.Before(time.Unix(*cl.Exp, 0)):
		return tokenResponse{}, errInvalidGrant("workload token expired or without exp")
	case cl.Nbf != nil && now.Add(clockSkew).Before(time.Unix(*cl.Nbf, 0)):
		return tokenResponse{}, errInvalidGrant("workload token not yet valid")
	}
	if c != nil && !c.allowsGrant(GrantJWTBearer) {
		return tokenResponse{}, errUnauthorizedClient("client is not registered for jwt-bearer")
	}
	holder := c
	if holder == nil {
		holder = &client{id: "workload:" + cl.Sub}
	}
	return as.issueGrant(holder, scope, resource, extGrant{subject: cl.Sub, jti: cl.Jti}), nil
}

// idJAGGrant checks an ID-JAG (SEP-990) presented by an authenticated
// client.
func (as *authServer) idJAGGrant(c *client, assertion, resource string, scope []string) (tokenResponse, *oauthError) {
	idp := as.w.ext.idp
	if idp == nil {
		return tokenResponse{}, errInvalidGrant("no identity provider is trusted")
	}
	if c == nil {
		return tokenResponse{}, errInvalidClient("the ID-JAG grant needs client authentication", false)
	}
	if !c.allowsGrant(GrantJWTBearer) {
		return tokenResponse{}, errUnauthorizedClient("client is not registered for jwt-bearer")
	}
	cl, err := verifyJWT(assertion, idp.key.Public())
	if err != nil {
		return tokenResponse{}, errInvalidGrant("ID-JAG signature does not verify")
	}
	now := as.w.now()
	switch {
	case cl.Iss != idp.issuer:
		return tokenResponse{}, errInvalidGrant("ID-JAG from another issuer")
	case !cl.Aud.has(as.issuer):
		return tokenResponse{}, errInvalidGrant("ID-JAG aud is not this issuer")
	case cl.ClientID != c.id:
		return tokenResponse{}, errInvalidGrant("ID-JAG was issued for another client")
	case cl.Resource != resource:
		return tokenResponse{}, errInvalidTarget("ID-JAG resource differs from the requested resource")
	case cl.Sub == "":
		return tokenResponse{}, errInvalidGrant("ID-JAG without sub")
	case cl.Exp == nil || !now.Before(time.Unix(*cl.Exp, 0)):
		return tokenResponse{}, errInvalidGrant("ID-JAG expired or without exp")
	case cl.Jti == "":
		return tokenResponse{}, errInvalidGrant("ID-JAG without jti")
	}
	if !as.ext.once(&as.ext.jagJTIs, cl.Jti, time.Unix(*cl.Exp, 0), now) {
		as.w.stats.add(func(s *Stats) { s.JTIReplays++ })
		return tokenResponse{}, errInvalidGrant("ID-JAG already used")
	}
	if len(scope) == 0 {
		scope, _ = parseScope(cl.Scope)
	}
	return as.issueGrant(c, scope, resource, extGrant{subject: cl.Sub, jti: cl.Jti}), nil
}

// issueGrant issues an access token without a refresh token.
func (as *authServer) issueGrant(c *client, scope []string, resource string, info extGrant) tokenResponse {
	s := as.store
	s.mu.Lock()
	resp := as.issueLocked(c, scope, scope, resource, newSecret("fam_"), false, as.w.now())
	s.mu.Unlock()
	if info != (extGrant{}) {
		as.ext.mu.Lock()
		if as.ext.grantInfo == nil {
			as.ext.grantInfo = map[string]extGrant{}
		}
		as.ext.grantInfo[resp.AccessToken] = info
		as.ext.mu.Unlock()
	}
	return resp
}

// issued binds a token response to the DPoP key that asked for it (RFC
// 9449 §5: token_type DPoP; the RS checks cnf.jkt from our memory) and
// records it.
func (as *authServer) issued(grant string, c *client, resp tokenResponse, jkt string) tokenResponse {
	as.ext.mu.Lock()
	info := as.ext.grantInfo[resp.AccessToken]
	delete(as.ext.grantInfo, resp.AccessToken)
	if jkt != "" {
		if as.ext.bound == nil {
			as.ext.bound = map[string]string{}
		}
		as.ext.bound[resp.AccessToken] = jkt
		if resp.RefreshToken != "" {
			as.ext.bound[resp.RefreshToken] = jkt
		}
		resp.TokenType = "DPoP"
	}
	as.ext.mu.Unlock()
	rec := GrantRecord{
		GrantType: grant, Subject: info.subject, AssertionID: info.jti,
		Scope: resp.Scope, Resource: as.tokenResource(resp.AccessToken), TokenType: resp.TokenType, JKT: jkt,
	}
	if c != nil {
		rec.ClientID, rec.AuthMethod = c.id, c.authMethod
	}
	as.w.ext.mu.Lock()
	as.w.ext.grants = append(as.w.ext.grants, rec)
	as.w.ext.mu.Unlock()
	as.w.stats.add(func(s *Stats) { s.GrantsIssued[grant]++ })
	return resp
}

func (as *authServer) tokenResource(tok string) string {
	s := as.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[tok]; ok {
		return t.resource
	}
	return ""
}

// boundKey returns the thumbprint a token is bound to ("" for a bearer
// token).
func (as *authServer) boundKey(tok string) string {
	as.ext.mu.Lock()
	defer as.ext.mu.Unlock()
	return as.ext.bound[tok]
}

// refreshKey: a refresh token bound to a DPoP key is only redeemed with a
// proof by that key (RFC 9449 §5).
func (as *authServer) refreshKey(form url.Values, jkt string) *oauthError {
	if bound := as.boundKey(param(form, "refresh_token")); bound != "" && bound != jkt {
		return errInvalidGrant("refresh token is bound to another DPoP key")
	}
	return nil
}

// ---- JWT helpers ----

// audience is the aud claim: one string or an array (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

func (a audience) has(v string) bool { return slices.Contains(a, v) }

// jwtClaims are the claims the servers read.
type jwtClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      audience `json:"aud"`
	Exp      *int64   `json:"exp"`
	Nbf      *int64   `json:"nbf"`
	Iat      *int64   `json:"iat"`
	Jti      string   `json:"jti"`
	ClientID string   `json:"client_id"`
	Resource string   `json:"resource"`
	Scope    string   `json:"scope"`
}

type jwtHeader struct {
	Alg string          `json:"alg"`
	Typ string          `json:"typ"`
	JWK json.RawMessage `json:"jwk"`
}

// peekJWT decodes a compact JWS's header and claims without verifying.
func peekJWT(raw string) (jwtHeader, jwtClaims, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return jwtHeader{}, jwtClaims{}, errors.New("not a compact JWS")
	}
	var h jwtHeader
	var c jwtClaims
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
		return jwtHeader{}, jwtClaims{}, errors.New("not a compact JWS")
	}
	return h, c, nil
}

// verifyJWT checks a compact JWS's signature by key, with an algorithm of
// the key's family only, and returns its claims.
func verifyJWT(raw string, key crypto.PublicKey) (jwtClaims, error) {
	obj, err := jose.ParseSignedCompact(raw, algsFor(key))
	if err != nil {
		return jwtClaims{}, err
	}
	payload, err := obj.Verify(key)
	if err != nil {
		return jwtClaims{}, err
	}
	var c jwtClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return jwtClaims{}, err
	}
	return c, nil
}

// algsFor lists the JWS algorithms a public key can verify.
func algsFor(key crypto.PublicKey) []jose.SignatureAlgorithm {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return []jose.SignatureAlgorithm{jose.ES256}
		case 384:
			return []jose.SignatureAlgorithm{jose.ES384}
		case 521:
			return []jose.SignatureAlgorithm{jose.ES512}
		}
	case *rsa.PublicKey:
		return []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512}
	case ed25519.PublicKey:
		return []jose.SignatureAlgorithm{jose.EdDSA}
	}
	return nil
}

func joseAlgs(names []string) []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(names))
	for i, n := range names {
		out[i] = jose.SignatureAlgorithm(n)
	}
	return out
}

// SignJWT signs claims (marshalled to JSON) as a compact JWS with key, its
// default algorithm (ES256/ES384/ES512, RS256, EdDSA) and header typ. Tests
// use it to mint workload identity tokens, ID tokens and forgeries.
func SignJWT(key crypto.Signer, typ string, claims any) (string, error) {
	algs := algsFor(key.Public())
	if len(algs) == 0 {
		return "", fmt.Errorf("testworld: SignJWT: unsupported key type %T", key)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: algs[0], Key: key}, opts)
	if err != nil {
		return "", err
	}
	obj, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}
