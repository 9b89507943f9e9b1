package httpdriver_test

// End-to-end tests of the extensions (issue 5) through httpdriver against
// testworld: client credentials (client_secret_basic, client_secret_post,
// private_key_jwt with EC, RSA and Ed25519 keys), workload identity from a
// rotated file, enterprise-managed authorization through the identity
// provider, and DPoP with and without nonces. Helpers here are prefixed
// with ext.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// extSecret has the characters RFC 6749 §2.3.1 form-encoding is about.
const extSecret = "s3cr+t/=&:%"

// extCCConfig is a client-credentials configuration for the world's server.
func extCCConfig(w *testworld.World, c effects.Client) machine.Config {
	return machine.Config{Server: w.MCPURL(), Grants: []machine.Grant{machine.GrantClientCredentials}, Clients: []effects.Client{c}}
}

// extPost sends one tools/list through c and returns the transport error.
func extPost(c *http.Client, u string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	status, _, err := postMCP(ctx, c, u, rpcBody(1))
	return status, err
}

// extWantOnlyGrant checks the world issued exactly the grants wanted (by
// grant_type) and nothing through a user.
func extWantGrants(t *testing.T, w *testworld.World, want map[string]int) {
	t.Helper()
	st := w.Stats()
	for g, n := range want {
		if st.TokenRequests[g] != n || st.GrantsIssued[g] != n {
			t.Errorf("%s: %d requests, %d issued; want %d", g, st.TokenRequests[g], st.GrantsIssued[g], n)
		}
	}
	if st.Authorizations != 0 || st.Registrations != 0 || st.TokenRequests["refresh_token"] != 0 || st.TokenRequests["authorization_code"] != 0 {
		t.Errorf("a grant without a user went through the user or a refresh: %+v", st)
	}
}

func TestExtClientCredentialsSecret(t *testing.T) {
	for _, method := range []string{testworld.AuthMethodBasic, testworld.AuthMethodPost} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			w := startWorld(t, testworld.Options{ClientCredentials: true, AuthMethods: []string{method}, PreRegistered: map[string]string{"svc": extSecret}})
			store := driver.NewMemoryStore()
			tr := newTransport(t, extCCConfig(w, effects.Client{ClientID: "svc", ClientSecret: extSecret}), httpdriver.Options{Store: store})
			listAndEcho(t, connectSDK(t, w, tr))

			extWantGrants(t, w, map[string]int{testworld.GrantClientCredentials: 1})
			log := w.GrantLog()
			if len(log) != 1 || log[0].ClientID != "svc" || log[0].AuthMethod != method || log[0].Resource != w.MCPURL() || log[0].TokenType != "Bearer" {
				t.Errorf("grant log %+v", log)
			}
			tok := storedTokens(t, store, w.MCPURL())
			if tok == nil || tok.Grant != string(machine.GrantClientCredentials) || tok.RefreshToken != "" || tok.ClientID != "svc" || tok.Resource != w.MCPURL() {
				t.Errorf("stored %v", tok)
			}
		})
	}
}

// extPEM generates a key of the kind and returns it with its PEM encoding.
func extPEM(t *testing.T, kind string) (crypto.Signer, []byte) {
	t.Helper()
	var key crypto.Signer
	var block *pem.Block
	var err error
	switch kind {
	case "EC P-256 (SEC 1)":
		var k *ecdsa.PrivateKey
		if k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err == nil {
			var der []byte
			der, err = x509.MarshalECPrivateKey(k)
			key, block = k, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}
		}
	case "RSA (PKCS #1)":
		var k *rsa.PrivateKey
		if k, err = rsa.GenerateKey(rand.Reader, 2048); err == nil {
			key, block = k, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
		}
	case "Ed25519 (PKCS #8)":
		var k ed25519.PrivateKey
		if _, k, err = ed25519.GenerateKey(rand.Reader); err == nil {
			var der []byte
			der, err = x509.MarshalPKCS8PrivateKey(k)
			key, block = k, &pem.Block{Type: "PRIVATE KEY", Bytes: der}
		}
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(block)
}

func TestExtClientCredentialsPrivateKeyJWT(t *testing.T) {
	for _, tc := range []struct{ kind, alg string }{
		{"EC P-256 (SEC 1)", "ES256"},
		{"RSA (PKCS #1)", "RS256"},
		{"Ed25519 (PKCS #8)", "EdDSA"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			key, pemBytes := extPEM(t, tc.kind)
			signer := driver.NewKeySigner()
			alg, err := signer.AddPEM("client", pemBytes)
			if err != nil || alg != tc.alg {
				t.Fatalf("AddPEM = %q, %v; want %s", alg, err, tc.alg)
			}
			w := startWorld(t, testworld.Options{
				ClientCredentials: true,
				AuthMethods:       []string{testworld.AuthMethodPrivateKeyJWT},
				ClientKeys:        map[string]crypto.PublicKey{"svc": key.Public()},
				ClientSigningAlgs: []string{"ES256", "RS256", "EdDSA"},
			})
			tr := newTransport(t, extCCConfig(w, effects.Client{ClientID: "svc", KeyID: "client", KeyAlg: alg}), httpdriver.Options{Signer: signer})
			c := &http.Client{Transport: tr}
			for i := range 3 {
				mustPost(t, c, w.MCPURL(), rpcBody(i))
			}
			extWantGrants(t, w, map[string]int{testworld.GrantClientCredentials: 1})
			st := w.Stats()
			if st.ClientAssertionsAccepted != 1 || st.ClientAssertionsRefused != 0 || st.JTIReplays != 0 {
				t.Errorf("assertions accepted %d refused %d replays %d", st.ClientAssertionsAccepted, st.ClientAssertionsRefused, st.JTIReplays)
			}
			if log := w.GrantLog(); len(log) != 1 || log[0].AuthMethod != testworld.AuthMethodPrivateKeyJWT || log[0].ClientID != "svc" {
				t.Errorf("grant log %+v", log)
			}
		})
	}

	// An algorithm the server does not list is never used: the client has
	// no other way to authenticate, so the server refuses it, and no
	// assertion was sent.
	t.Run("alg not listed", func(t *testing.T) {
		t.Parallel()
		key, pemBytes := extPEM(t, "Ed25519 (PKCS #8)")
		signer := driver.NewKeySigner()
		alg, err := signer.AddPEM("client", pemBytes)
		if err != nil {
			t.Fatal(err)
		}
		w := startWorld(t, testworld.Options{
			ClientCredentials: true,
			AuthMethods:       []string{testworld.AuthMethodPrivateKeyJWT},
			ClientKeys:        map[string]crypto.PublicKey{"svc": key.Public()},
			ClientSigningAlgs: []string{"ES256"},
		})
		tr := newTransport(t, extCCConfig(w, effects.Client{ClientID: "svc", KeyID: "client", KeyAlg: alg}), httpdriver.Options{Signer: signer})
		_, err = extPost(&http.Client{Transport: tr}, w.MCPURL())
		var te *machine.TokenError
		if !errors.As(err, &te) || te.Issuer != w.Issuer() {
			t.Fatalf("err = %v, want a *machine.TokenError from %s", err, w.Issuer())
		}
		if st := w.Stats(); st.ClientAssertionsAccepted+st.ClientAssertionsRefused != 0 {
			t.Errorf("an %s assertion was sent to a server that lists only ES256", alg)
		}
	})
}

// TestExtClientCredentialsFreshToken: a credential that expires is replaced
// by a new grant; there is no refresh token.
func TestExtClientCredentialsFreshToken(t *testing.T) {
	t.Run("before expiry (fake clock)", func(t *testing.T) {
		t.Parallel()
		clock := newFakeClock()
		w := startWorld(t, testworld.Options{ClientCredentials: true, AccessTTL: 10 * time.Minute, Now: clock.Now, PreRegistered: map[string]string{"svc": extSecret}})
		store := driver.NewMemoryStore()
		tr := newTransport(t, extCCConfig(w, effects.Client{ClientID: "svc", ClientSecret: extSecret}), httpdriver.Options{Store: store, Clock: clock})
		c := &http.Client{Transport: tr}
		mustPost(t, c, w.MCPURL(), rpcBody(1))
		first := storedTokens(t, store, w.MCPURL())
		if first.RefreshToken != "" || !first.ExpiresAt.Equal(clock.Now().Add(10*time.Minute)) {
			t.Fatalf("first credential %v", first)
		}
		mustPost(t, c, w.MCPURL(), rpcBody(2))
		// Within the refresh margin (one minute) of expiry: a new grant
		// before the request goes out, so the server never sees the old
		// token expire.
		clock.Advance(9*time.Minute + 30*time.Second)
		mustPost(t, c, w.MCPURL(), rpcBody(3))
		second := storedTokens(t, store, w.MCPURL())
		if second.AccessToken == first.AccessToken || second.Grant != string(machine.GrantClientCredentials) {
			t.Errorf("no new credential: %v", second)
		}
		extWantGrants(t, w, map[string]int{testworld.GrantClientCredentials: 2})
		if st := w.Stats(); st.Unauthorized != 1 {
			t.Errorf("401s = %d, want 1 (the first, unauthenticated request)", st.Unauthorized)
		}
	})
	t.Run("expired at the server", func(t *testing.T) {
		t.Parallel()
		w := startWorld(t, testworld.Options{ClientCredentials: true, PreRegistered: map[string]string{"svc": extSecret}})
		tr := newTransport(t, extCCConfig(w, effects.Client{ClientID: "svc", ClientSecret: extSecret}), httpdriver.Options{})
		c := &http.Client{Transport: tr}
		mustPost(t, c, w.MCPURL(), rpcBody(1))
		w.ExpireAccessTokens()
		mustPost(t, c, w.MCPURL(), rpcBody(2))
		extWantGrants(t, w, map[string]int{testworld.GrantClientCredentials: 2})
	})
}

const extWorkloadIssuer = "https://oidc.workload.example"

// extWorkload is a world trusting a workload issuer, and a function minting
// its tokens.
func extWorkload(t *testing.T, o testworld.Options) (*testworld.World, func(sub, jti, aud string) string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	o.WorkloadIssuer, o.WorkloadKey = extWorkloadIssuer, key.Public()
	w := startWorld(t, o)
	return w, func(sub, jti, aud string) string {
		if aud == "" {
			aud = w.Issuer()
		}
		now := time.Now()
		tok, err := testworld.SignJWT(key, "JWT", map[string]any{
			"iss": extWorkloadIssuer, "sub": sub, "aud": aud, "jti": jti,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
}

// extWriteFile replaces a file the way a platform rotates a token:
// written aside, then renamed over.
func extWriteFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestExtWorkloadIdentityRotatedFile(t *testing.T) {
	t.Parallel()
	w, mint := extWorkload(t, testworld.Options{})
	path := filepath.Join(t.TempDir(), "token")
	extWriteFile(t, path, mint("spiffe://example.org/app", "wid-1", ""))
	cfg := machine.Config{Server: w.MCPURL(), Grants: []machine.Grant{machine.GrantWorkloadIdentity}}
	tr := newTransport(t, cfg, httpdriver.Options{Sources: map[string]driver.Source{effects.SourceWorkloadToken: driver.FileSource(path)}})
	c := &http.Client{Transport: tr}
	mustPost(t, c, w.MCPURL(), rpcBody(1))
	mustPost(t, c, w.MCPURL(), rpcBody(2))

	extWriteFile(t, path, mint("spiffe://example.org/app", "wid-2", ""))
	w.ExpireAccessTokens()
	mustPost(t, c, w.MCPURL(), rpcBody(3))

	log := w.GrantLog()
	if len(log) != 2 || log[0].AssertionID != "wid-1" || log[1].AssertionID != "wid-2" {
		t.Fatalf("grant log %+v, want the grants made with wid-1 then with the rotated wid-2", log)
	}
	for _, g := range log {
		if g.ClientID != "" || g.AuthMethod != "" || g.Subject != "spiffe://example.org/app" || g.GrantType != testworld.GrantJWTBearer {
			t.Errorf("grant %+v: want an unauthenticated jwt-bearer grant for the workload", g)
		}
	}
	extWantGrants(t, w, map[string]int{testworld.GrantJWTBearer: 2})
}

// TestExtWorkloadIdentityRefused: a refused workload token is a typed error
// after exactly one token request — no retry, not with another grant.
func TestExtWorkloadIdentityRefused(t *testing.T) {
	t.Parallel()
	w, mint := extWorkload(t, testworld.Options{ClientCredentials: true, PreRegistered: map[string]string{"svc": extSecret}})
	cfg := machine.Config{
		Server:  w.MCPURL(),
		Grants:  []machine.Grant{machine.GrantWorkloadIdentity, machine.GrantClientCredentials},
		Clients: []effects.Client{{ClientID: "svc", ClientSecret: extSecret}},
	}
	bad := mint("spiffe://example.org/app", "wid-bad", "https://another-as.example")
	tr := newTransport(t, cfg, httpdriver.Options{Sources: map[string]driver.Source{effects.SourceWorkloadToken: driver.StaticSource(bad)}})
	_, err := extPost(&http.Client{Transport: tr}, w.MCPURL())
	var te *machine.TokenError
	var oe *machine.OAuthError
	if !errors.As(err, &te) || te.Grant != testworld.GrantJWTBearer || te.Issuer != w.Issuer() || !errors.As(err, &oe) || oe.Code != "invalid_grant" {
		t.Fatalf("err = %v (%T), want a *machine.TokenError for jwt-bearer at %s with invalid_grant", err, err, w.Issuer())
	}
	time.Sleep(50 * time.Millisecond) // a retry in the background would show now
	st := w.Stats()
	if st.TokenRequests[testworld.GrantJWTBearer] != 1 || st.TokenRequests[testworld.GrantClientCredentials] != 0 || len(w.GrantLog()) != 0 {
		t.Errorf("token requests %v, want exactly one jwt-bearer and nothing else", st.TokenRequests)
	}
}

// extEnterprise is a world with an identity provider, and the transport of
// a client configured for enterprise-managed authorization.
func extEnterprise(t *testing.T, idToken func(w *testworld.World) string) (*testworld.World, *httpdriver.Transport) {
	t.Helper()
	w := startWorld(t, testworld.Options{Enterprise: true, EnterpriseClientID: "mcp-client", PreRegistered: map[string]string{"mcp-client": extSecret}})
	cfg := machine.Config{
		Server:           w.MCPURL(),
		Grants:           []machine.Grant{machine.GrantEnterprise},
		IdentityProvider: machine.IdentityProvider{TokenEndpoint: w.IdPTokenEndpoint(), ClientID: w.IdPClientID()},
		Clients:          []effects.Client{{ClientID: "mcp-client", ClientSecret: extSecret}},
	}
	tr := newTransport(t, cfg, httpdriver.Options{Sources: map[string]driver.Source{effects.SourceIDToken: driver.StaticSource(idToken(w))}})
	return w, tr
}

func TestExtEnterpriseManaged(t *testing.T) {
	t.Parallel()
	w, tr := extEnterprise(t, func(w *testworld.World) string { return w.IssueIDToken("alice@example.com") })
	listAndEcho(t, connectSDK(t, w, tr))
	st := w.Stats()
	if st.TokenExchanges != 1 || st.TokenExchangesRefused != 0 || st.Paths["POST /oauth2/token"] != 1 {
		t.Errorf("token exchanges %d (refused %d), want exactly one", st.TokenExchanges, st.TokenExchangesRefused)
	}
	extWantGrants(t, w, map[string]int{testworld.GrantJWTBearer: 1})
	log := w.GrantLog()
	if len(log) != 1 || log[0].Subject != "alice@example.com" || log[0].ClientID != "mcp-client" || log[0].AuthMethod != testworld.AuthMethodBasic {
		t.Errorf("grant log %+v", log)
	}
}

// TestExtEnterpriseRenewal: an expired enterprise credential is renewed
// through the identity provider: one more exchange, one more grant.
func TestExtEnterpriseRenewal(t *testing.T) {
	t.Parallel()
	w, tr := extEnterprise(t, func(w *testworld.World) string { return w.IssueIDToken("alice") })
	c := &http.Client{Transport: tr}
	mustPost(t, c, w.MCPURL(), rpcBody(1))
	w.ExpireAccessTokens()
	mustPost(t, c, w.MCPURL(), rpcBody(2))
	if st := w.Stats(); st.TokenExchanges != 2 {
		t.Errorf("token exchanges %d, want 2", st.TokenExchanges)
	}
	extWantGrants(t, w, map[string]int{testworld.GrantJWTBearer: 2})
}

// TestExtEnterpriseIdPRefuses: the identity provider's refusal is a typed
// error naming it, and the authorization server is never asked.
func TestExtEnterpriseIdPRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		idToken func(w *testworld.World) string
		refuse  string
		code    string
	}{
		{"refusing IdP", func(w *testworld.World) string { return w.IssueIDToken("alice") }, "access_denied", "access_denied"},
		{"ID token not from the IdP", func(*testworld.World) string { return "eyJhbGciOiJub25lIn0.e30." }, "", "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, tr := extEnterprise(t, tc.idToken)
			if tc.refuse != "" {
				w.RefuseTokenExchanges(tc.refuse)
			}
			_, err := extPost(&http.Client{Transport: tr}, w.MCPURL())
			var te *machine.TokenError
			var oe *machine.OAuthError
			if !errors.As(err, &te) || te.Issuer != w.IdPTokenEndpoint() || !errors.As(err, &oe) || oe.Code != tc.code {
				t.Fatalf("err = %v, want a *machine.TokenError naming %s with %s", err, w.IdPTokenEndpoint(), tc.code)
			}
			if !strings.Contains(err.Error(), w.IdPTokenEndpoint()) {
				t.Errorf("error %q does not name the identity provider", err)
			}
			st := w.Stats()
			if st.TokenExchangesRefused != 1 || st.TokenRequests[testworld.GrantJWTBearer] != 0 {
				t.Errorf("exchanges refused %d, jwt-bearer requests %d; want 1, 0", st.TokenExchangesRefused, st.TokenRequests[testworld.GrantJWTBearer])
			}
		})
	}
}

// extThumbprint is the RFC 7638 thumbprint of the signer's DPoP key.
func extThumbprint(t *testing.T, s *driver.KeySigner) string {
	t.Helper()
	jwk, err := s.PublicJWK("dpop")
	if err != nil {
		t.Fatal(err)
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

func extAth(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestExtDPoP: 50 requests with DPoP, with and without nonces at either
// server: every proof fresh, ath the hash of the token sent, htu without
// the request's query, the token bound to the client's key, each nonce
// challenge answered once; a rotated nonce costs one more challenge.
func TestExtDPoP(t *testing.T) {
	const requests = 50
	for _, tc := range []struct {
		name       string
		nonceAS    bool
		nonceRS    bool
		authorizer string // "cc" or "code"
		issuerPath string
	}{
		{name: "no nonces", authorizer: "cc"},
		{name: "AS nonce", nonceAS: true, authorizer: "cc"},
		{name: "RS nonce", nonceRS: true, authorizer: "cc"},
		{name: "both nonces", nonceAS: true, nonceRS: true, authorizer: "cc"},
		{name: "both nonces, authorization code", nonceAS: true, nonceRS: true, authorizer: "code"},
		{name: "AS nonce, issuer with a path", nonceAS: true, authorizer: "cc", issuerPath: "/tenant1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testworld.Options{DPoP: true, DPoPNonceAS: tc.nonceAS, DPoPNonceRS: tc.nonceRS, IssuerPath: tc.issuerPath}
			cfg := machine.Config{}
			if tc.authorizer == "cc" {
				o.ClientCredentials, o.PreRegistered = true, map[string]string{"svc": extSecret}
			} else {
				o.DCR = true
			}
			w := startWorld(t, o)
			if tc.authorizer == "cc" {
				cfg = extCCConfig(w, effects.Client{ClientID: "svc", ClientSecret: extSecret})
			} else {
				cfg = worldConfig(w)
			}
			signer := driver.NewKeySigner()
			store := driver.NewMemoryStore()
			tr := newTransport(t, cfg, httpdriver.Options{Signer: signer, Store: store})
			c := &http.Client{Transport: tr}
			for i := range requests {
				u := w.MCPURL()
				if i%2 == 1 {
					u += fmt.Sprintf("?attempt=%d#frag", i)
				}
				mustPost(t, c, u, rpcBody(i))
			}

			tok := storedTokens(t, store, w.MCPURL())
			jkt := extThumbprint(t, signer)
			if tok.TokenType != "DPoP" || tok.DPoPKeyID != "dpop" {
				t.Fatalf("stored credential %v, want a DPoP token bound to key dpop", tok)
			}
			log := w.GrantLog()
			if len(log) != 1 || log[0].JKT != jkt || log[0].TokenType != "DPoP" {
				t.Errorf("grant log %+v, want one DPoP token bound to %s", log, jkt)
			}
			extCheckProofs(t, w, jkt, tok.AccessToken)
			st := w.Stats()
			wantAS, wantRS := b2i(tc.nonceAS), b2i(tc.nonceRS)
			if st.ASNonceChallenges != wantAS || st.RSNonceChallenges != wantRS {
				t.Errorf("nonce challenges AS %d RS %d, want %d %d (each answered once, then remembered)", st.ASNonceChallenges, st.RSNonceChallenges, wantAS, wantRS)
			}
			var rs int
			for _, p := range w.DPoPProofs() {
				if p.Server == "rs" {
					rs++
				}
			}
			if rs != requests+wantRS {
				t.Errorf("%d proofs at the RS, want %d (one per request, one more per challenge)", rs, requests+wantRS)
			}
			if st.DPoPProofsRefused != 0 || st.JTIReplays != 0 {
				t.Errorf("proofs refused %d, jti replays %d", st.DPoPProofsRefused, st.JTIReplays)
			}

			// New nonces: one more challenge at the RS, answered once.
			w.RotateDPoPNonces()
			mustPost(t, c, w.MCPURL(), rpcBody(requests))
			if st := w.Stats(); st.RSNonceChallenges != 2*wantRS || st.ASNonceChallenges != wantAS {
				t.Errorf("after rotation: challenges AS %d RS %d, want %d %d", st.ASNonceChallenges, st.RSNonceChallenges, wantAS, 2*wantRS)
			}
			extCheckProofs(t, w, jkt, tok.AccessToken)
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// extCheckProofs checks every proof the servers saw: no jti twice, bound to
// jkt, htu without query or fragment, ath the hash of one of the access
// tokens.
func extCheckProofs(t *testing.T, w *testworld.World, jkt string, accessTokens ...string) {
	t.Helper()
	hashes := map[string]bool{}
	for _, tok := range accessTokens {
		hashes[extAth(tok)] = true
	}
	seen := map[string]bool{}
	for i, p := range w.DPoPProofs() {
		if seen[p.JTI] {
			t.Errorf("proof %d: jti %q repeated", i, p.JTI)
		}
		seen[p.JTI] = true
		if p.Outcome != testworld.ProofAccepted && p.Outcome != testworld.ProofNonce {
			t.Errorf("proof %d refused: %s", i, p.Outcome)
		}
		if p.JKT != jkt || p.Typ != "dpop+jwt" || p.Alg != "ES256" || p.HTM != "POST" {
			t.Errorf("proof %d: %+v", i, p)
		}
		switch p.Server {
		case "as":
			if p.HTU != w.Issuer()+"/token" || p.ATH != "" {
				t.Errorf("proof %d at the AS: htu %q ath %q", i, p.HTU, p.ATH)
			}
		case "rs":
			if p.HTU != w.MCPURL() || !hashes[p.ATH] {
				t.Errorf("proof %d at the RS: htu %q (want %q), ath %q (want the token's hash)", i, p.HTU, w.MCPURL(), p.ATH)
			}
		}
	}
}

// TestExtDPoPStubbornNonce: a server that demands a new nonce every time
// ends the request with an error — never a loop — and each challenge is
// answered at most once.
func TestExtDPoPStubbornNonce(t *testing.T) {
	t.Run("authorization server", func(t *testing.T) {
		t.Parallel()
		w := startWorld(t, testworld.Options{DPoP: true, DPoPNonceAS: true, DPoPStubbornNonce: true, ClientCredentials: true, PreRegistered: map[string]string{"svc": extSecret}})
		tr := newTransport(t, extCCConfig(w, effects.Client{ClientID: "svc", ClientSecret: extSecret}), httpdriver.Options{})
		_, err := extPost(&http.Client{Transport: tr}, w.MCPURL())
		var te *machine.TokenError
		var oe *machine.OAuthError
		if !errors.As(err, &te) || !errors.As(err, &oe) || oe.Code != "use_dpop_nonce" {
			t.Fatalf("err = %v, want a *machine.TokenError with use_dpop_nonce", err)
		}
		if st := w.Stats(); st.TokenRequests[testworld.GrantClientCredentials] != 2 || st.ASNonceChallenges != 2 {
			t.Errorf("token requests %d, challenges %d; want 2 and 2 (the challenge answered once)", st.TokenRequests[testworld.GrantClientCredentials], st.ASNonceChallenges)
		}
	})
	t.Run("resource server", func(t *testing.T) {
		t.Parallel()
		w := startWorld(t, testworld.Options{DPoP: true, DPoPNonceRS: true, DPoPStubbornNonce: true, ClientCredentials: true, PreRegistered: map[string]string{"svc": extSecret}})
		tr := newTransport(t, extCCConfig(w, effects.Client{ClientID: "svc", ClientSecret: extSecret}), httpdriver.Options{})
		status, err := extPost(&http.Client{Transport: tr}, w.MCPURL())
		var ue *machine.UnauthorizedError
		if !errors.As(err, &ue) {
			t.Fatalf("status %d, err = %v (%T), want a *machine.UnauthorizedError", status, err, err)
		}
		// Each credential is offered with at most two proofs: the first,
		// and the answer to its one nonce challenge.
		perToken := map[string]int{}
		for _, p := range w.DPoPProofs() {
			if p.Server == "rs" {
				perToken[p.ATH]++
			}
		}
		for ath, n := range perToken {
			if n > 2 {
				t.Errorf("token %s…: %d proofs, want at most 2", ath[:8], n)
			}
		}
		st := w.Stats()
		limit := 3 // machine.Limits.ResendsPerRequest default
		if grants := st.TokenRequests[testworld.GrantClientCredentials]; grants > limit+1 || st.RSNonceChallenges > 2*(limit+1) {
			t.Errorf("%d grants and %d RS challenges: the nonce answer is not bounded", grants, st.RSNonceChallenges)
		}
		t.Logf("stubborn RS: %d grants, %d RS challenges", st.TokenRequests[testworld.GrantClientCredentials], st.RSNonceChallenges)
	})
}

// TestExtDPoPRefreshKeepsTheKey: with the authorization-code flow, the
// refresh token is bound too and redeemed with a proof by the same key.
func TestExtDPoPRefreshKeepsTheKey(t *testing.T) {
	t.Parallel()
	w := startWorld(t, testworld.Options{DPoP: true, DPoPNonceAS: true, DCR: true})
	signer := driver.NewKeySigner()
	store := driver.NewMemoryStore()
	tr := newTransport(t, worldConfig(w), httpdriver.Options{Signer: signer, Store: store})
	c := &http.Client{Transport: tr}
	mustPost(t, c, w.MCPURL(), rpcBody(1))
	first := storedTokens(t, store, w.MCPURL())
	if first.RefreshToken == "" || first.TokenType != "DPoP" {
		t.Fatalf("first credential %v", first)
	}
	w.ExpireAccessTokens()
	mustPost(t, c, w.MCPURL(), rpcBody(2))
	st := w.Stats()
	if st.TokenRequests["refresh_token"] != 1 || st.GrantsIssued["refresh_token"] != 1 || st.Authorizations != 1 {
		t.Errorf("stats %+v: want one refresh and no new authorization", st)
	}
	log := w.GrantLog()
	jkt := extThumbprint(t, signer)
	if len(log) != 2 || log[0].JKT != jkt || log[1].JKT != jkt || log[1].GrantType != "refresh_token" {
		t.Errorf("grant log %+v, want both bound to %s", log, jkt)
	}
	extCheckProofs(t, w, jkt, first.AccessToken, storedTokens(t, store, w.MCPURL()).AccessToken)
}

// TestExtDPoPNonceRetryEachGrant: the authorization server's nonce
// challenge is answered once, with the same grant made again in full: the
// client authentication again (a new assertion), the workload token
// supplied again, the same ID-JAG (no second exchange).
func TestExtDPoPNonceRetryEachGrant(t *testing.T) {
	ec, ecPEM := extPEM(t, "EC P-256 (SEC 1)")
	wlKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// case is one grant: how to configure both sides, given the world
	// (the sources need its issuer), and what else to check.
	type setup struct {
		world func(o *testworld.Options)
		cfg   func(t *testing.T, w *testworld.World) (machine.Config, httpdriver.Options)
		check func(t *testing.T, st testworld.Stats)
	}
	ccConfig := func(c effects.Client) func(*testing.T, *testworld.World) (machine.Config, httpdriver.Options) {
		return func(_ *testing.T, w *testworld.World) (machine.Config, httpdriver.Options) {
			return extCCConfig(w, c), httpdriver.Options{}
		}
	}
	for _, tc := range []struct {
		name, grant string
		setup
	}{
		{"client_secret_basic", testworld.GrantClientCredentials, setup{
			world: func(o *testworld.Options) {
				o.ClientCredentials, o.PreRegistered, o.AuthMethods = true, map[string]string{"svc": extSecret}, []string{testworld.AuthMethodBasic}
			},
			cfg: ccConfig(effects.Client{ClientID: "svc", ClientSecret: extSecret}),
		}},
		{"client_secret_post", testworld.GrantClientCredentials, setup{
			world: func(o *testworld.Options) {
				o.ClientCredentials, o.PreRegistered, o.AuthMethods = true, map[string]string{"svc": extSecret}, []string{testworld.AuthMethodPost}
			},
			cfg: ccConfig(effects.Client{ClientID: "svc", ClientSecret: extSecret}),
		}},
		{"private_key_jwt", testworld.GrantClientCredentials, setup{
			world: func(o *testworld.Options) {
				o.ClientCredentials, o.AuthMethods = true, []string{testworld.AuthMethodPrivateKeyJWT}
				o.ClientKeys = map[string]crypto.PublicKey{"svc": ec.Public()}
			},
			cfg: func(t *testing.T, w *testworld.World) (machine.Config, httpdriver.Options) {
				signer := driver.NewKeySigner()
				alg, err := signer.AddPEM("client", ecPEM)
				if err != nil {
					t.Fatal(err)
				}
				return extCCConfig(w, effects.Client{ClientID: "svc", KeyID: "client", KeyAlg: alg}), httpdriver.Options{Signer: signer}
			},
			check: func(t *testing.T, st testworld.Stats) {
				if st.ClientAssertionsAccepted != 1 || st.ClientAssertionsRefused != 0 {
					t.Errorf("assertions accepted %d refused %d, want 1 0", st.ClientAssertionsAccepted, st.ClientAssertionsRefused)
				}
			},
		}},
		{"workload identity", testworld.GrantJWTBearer, setup{
			world: func(o *testworld.Options) { o.WorkloadIssuer, o.WorkloadKey = extWorkloadIssuer, wlKey.Public() },
			cfg: func(_ *testing.T, w *testworld.World) (machine.Config, httpdriver.Options) {
				src := func(context.Context) (string, error) {
					return testworld.SignJWT(wlKey, "JWT", map[string]any{"iss": extWorkloadIssuer, "sub": "app", "aud": w.Issuer(), "exp": time.Now().Add(time.Hour).Unix()})
				}
				return machine.Config{Server: w.MCPURL(), Grants: []machine.Grant{machine.GrantWorkloadIdentity}},
					httpdriver.Options{Sources: map[string]driver.Source{effects.SourceWorkloadToken: src}}
			},
		}},
		{"enterprise", testworld.GrantJWTBearer, setup{
			world: func(o *testworld.Options) {
				o.Enterprise, o.EnterpriseClientID, o.PreRegistered = true, "mcp-client", map[string]string{"mcp-client": extSecret}
			},
			cfg: func(_ *testing.T, w *testworld.World) (machine.Config, httpdriver.Options) {
				return machine.Config{
						Server:           w.MCPURL(),
						Grants:           []machine.Grant{machine.GrantEnterprise},
						IdentityProvider: machine.IdentityProvider{TokenEndpoint: w.IdPTokenEndpoint(), ClientID: w.IdPClientID()},
						Clients:          []effects.Client{{ClientID: "mcp-client", ClientSecret: extSecret}},
					},
					httpdriver.Options{Sources: map[string]driver.Source{effects.SourceIDToken: driver.StaticSource(w.IssueIDToken("alice"))}}
			},
			check: func(t *testing.T, st testworld.Stats) {
				if st.TokenExchanges != 1 {
					t.Errorf("token exchanges %d, want 1", st.TokenExchanges)
				}
			},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testworld.Options{DPoP: true, DPoPNonceAS: true}
			tc.world(&o)
			w := startWorld(t, o)
			cfg, opts := tc.cfg(t, w)
			tr := newTransport(t, cfg, opts)
			mustPost(t, &http.Client{Transport: tr}, w.MCPURL(), rpcBody(1))
			st := w.Stats()
			if st.ASNonceChallenges != 1 || st.TokenRequests[tc.grant] != 2 || st.GrantsIssued[tc.grant] != 1 || st.JTIReplays != 0 || st.DPoPProofsRefused != 0 {
				t.Errorf("AS challenges %d, %s requests %d issued %d, replays %d, refused proofs %d; want 1, 2, 1, 0, 0",
					st.ASNonceChallenges, tc.grant, st.TokenRequests[tc.grant], st.GrantsIssued[tc.grant], st.JTIReplays, st.DPoPProofsRefused)
			}
			if log := w.GrantLog(); len(log) != 1 || log[0].TokenType != "DPoP" {
				t.Errorf("grant log %+v", log)
			}
			if tc.check != nil {
				tc.check(t, st)
			}
		})
	}
}

// TestExtDPoPConcurrent: 32 requests at once after the RS changed its
// nonce: each is challenged at most once and answers once, and no proof
// repeats a jti.
func TestExtDPoPConcurrent(t *testing.T) {
	t.Parallel()
	w := startWorld(t, testworld.Options{DPoP: true, DPoPNonceRS: true, ClientCredentials: true, PreRegistered: map[string]string{"svc": extSecret}})
	signer := driver.NewKeySigner()
	store := driver.NewMemoryStore()
	tr := newTransport(t, extCCConfig(w, effects.Client{ClientID: "svc", ClientSecret: extSecret}), httpdriver.Options{Signer: signer, Store: store})
	c := &http.Client{Transport: tr}
	mustPost(t, c, w.MCPURL(), rpcBody(0))
	w.RotateDPoPNonces()
	const n = 32
	errs := make(chan error, n)
	for i := range n {
		go func() {
			status, err := extPost(c, w.MCPURL()+fmt.Sprintf("?i=%d", i))
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("status %d", status)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("request: %v", err)
		}
	}
	extCheckProofs(t, w, extThumbprint(t, signer), storedTokens(t, store, w.MCPURL()).AccessToken)
	st := w.Stats()
	if st.RSNonceChallenges < 2 || st.RSNonceChallenges > n+1 || st.TokenRequests[testworld.GrantClientCredentials] != 1 {
		t.Errorf("RS challenges %d (want 2..%d), grants %d (want 1)", st.RSNonceChallenges, n+1, st.TokenRequests[testworld.GrantClientCredentials])
	}
}

// TestExtDPoPRefreshAnswersNonce: a refresh challenged for a new nonce is
// answered once.
func TestExtDPoPRefreshAnswersNonce(t *testing.T) {
	t.Parallel()
	w := startWorld(t, testworld.Options{DPoP: true, DPoPNonceAS: true, DCR: true})
	tr := newTransport(t, worldConfig(w), httpdriver.Options{})
	c := &http.Client{Transport: tr}
	mustPost(t, c, w.MCPURL(), rpcBody(1))
	w.RotateDPoPNonces()
	w.ExpireAccessTokens()
	mustPost(t, c, w.MCPURL(), rpcBody(2))
	st := w.Stats()
	if st.ASNonceChallenges != 2 || st.TokenRequests["refresh_token"] != 2 || st.GrantsIssued["refresh_token"] != 1 || st.Authorizations != 1 {
		t.Errorf("AS challenges %d, refresh requests %d issued %d, authorizations %d; want 2, 2, 1, 1",
			st.ASNonceChallenges, st.TokenRequests["refresh_token"], st.GrantsIssued["refresh_token"], st.Authorizations)
	}
}

// TestExtClientKeyIDMisconfigured: a client key id the signer does not
// hold must not be replaced by a freshly generated key (driver.KeySigner:
// generation is "right for DPoP keys ... never for client authentication
// keys"): the error names the key and no assertion is sent.
func TestExtClientKeyIDMisconfigured(t *testing.T) {
	t.Parallel()
	key, pemBytes := extPEM(t, "EC P-256 (SEC 1)")
	signer := driver.NewKeySigner() // as the README configures it
	if _, err := signer.AddPEM("client", pemBytes); err != nil {
		t.Fatal(err)
	}
	w := startWorld(t, testworld.Options{
		ClientCredentials: true,
		AuthMethods:       []string{testworld.AuthMethodPrivateKeyJWT},
		ClientKeys:        map[string]crypto.PublicKey{"svc": key.Public()},
	})
	tr := newTransport(t, extCCConfig(w, effects.Client{ClientID: "svc", KeyID: "clinet", KeyAlg: "ES256"}), httpdriver.Options{Signer: signer})
	_, err := extPost(&http.Client{Transport: tr}, w.MCPURL())
	if err == nil {
		t.Fatal("a request with an unknown client key succeeded")
	}
	if st := w.Stats(); st.ClientAssertionsRefused != 0 || !strings.Contains(err.Error(), `"clinet"`) {
		t.Errorf("a key was made up for the unknown client key id: %d assertions refused by the AS; error %v", st.ClientAssertionsRefused, err)
	}
}

// TestExtWorkloadSourceUnreadable: a workload token that cannot be read
// sends nothing, and the caller can tell why (driver.SourceError).
func TestExtWorkloadSourceUnreadable(t *testing.T) {
	t.Parallel()
	w, _ := extWorkload(t, testworld.Options{})
	cfg := machine.Config{Server: w.MCPURL(), Grants: []machine.Grant{machine.GrantWorkloadIdentity}}
	missing := filepath.Join(t.TempDir(), "no-token-yet")
	tr := newTransport(t, cfg, httpdriver.Options{Sources: map[string]driver.Source{effects.SourceWorkloadToken: driver.FileSource(missing)}})
	_, err := extPost(&http.Client{Transport: tr}, w.MCPURL())
	if err == nil {
		t.Fatal("a request without a workload token succeeded")
	}
	if st := w.Stats(); st.TokenRequests[testworld.GrantJWTBearer] != 0 {
		t.Errorf("%d jwt-bearer requests without a token", st.TokenRequests[testworld.GrantJWTBearer])
	}
	var se *driver.SourceError
	if !errors.As(err, &se) || se.Source != effects.SourceWorkloadToken {
		t.Errorf("a failing driver.Source reaches the caller as %T %q, want a *driver.SourceError among its causes", err, err)
	}
}
