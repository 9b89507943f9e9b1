package main

// The extension flags of login, token and tools (issue 5, item 6) against
// the test world: client credentials (client_secret_basic and
// private_key_jwt), renewal without a refresh token, workload identity from
// a token file (and a variable), enterprise-managed authorization, DPoP.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// extSecret has the characters RFC 6749 §2.3.1 form-encoding is about.
const extSecret = "s3cr+t/=&:% with space"

// writeFile writes content to a fresh file under dir (mode 0600) and
// returns its path; a second write replaces it the way a platform rotates
// a token (aside, then renamed over).
func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantGrants checks how many tokens the world issued by grant_type, and
// that nothing went through a user or a refresh.
func wantGrants(t *testing.T, w *testworld.World, grantType string, n int) {
	t.Helper()
	st := w.Stats()
	if st.GrantsIssued[grantType] != n || st.TokenRequests[grantType] != n {
		t.Errorf("%s: %d requested, %d issued; want %d", grantType, st.TokenRequests[grantType], st.GrantsIssued[grantType], n)
	}
	if st.Authorizations != 0 || st.Registrations != 0 || st.TokenRequests["refresh_token"] != 0 || st.TokenRequests["authorization_code"] != 0 {
		t.Errorf("a grant without a user went through the user or a refresh: %+v", st)
	}
}

func TestLoginClientCredentialsBasic(t *testing.T) {
	w := startWorld(t, testworld.Options{
		ClientCredentials: true,
		AuthMethods:       []string{testworld.AuthMethodBasic},
		PreRegistered:     map[string]string{"svc": extSecret},
	})
	te := newTestEnv(t)
	te.vars["MCPAUTH_CLIENT_SECRET"] = extSecret
	server := w.MCPURL()

	login := mustRun(t, te, "login", "--grant", "client_credentials", "--client-id", "svc", server)
	for _, want := range []string{"signed in to " + server, "svc  (pre-registered, client_secret_basic)", "grant          client_credentials",
		"refresh token  none needed", "tools          2", "requesting a token from the authorization server… done (1 request, "} {
		if !strings.Contains(login.stdout+login.stderr, want) {
			t.Errorf("login lacks %q:\n%s", want, login.transcript)
		}
	}
	if strings.Contains(login.stderr, "browser") {
		t.Errorf("a client-credentials login mentions a browser:\n%s", login.transcript)
	}
	tok := storedTokens(t, te, server)
	if tok.Grant != string(machine.GrantClientCredentials) || tok.RefreshToken != "" || tok.ClientID != "svc" {
		t.Fatalf("stored %v", tok)
	}
	assertNoSecret(t, login, extSecret, tok.AccessToken)

	// The access token expires at the server: token makes the grant again
	// (no refresh token, no flags: the grant is stored with the sign-in).
	w.ExpireAccessTokens()
	r := mustRun(t, te, "token", server)
	fresh := storedTokens(t, te, server)
	if fresh.AccessToken == tok.AccessToken || r.stdout != fresh.AccessToken+"\n" {
		t.Errorf("token did not print a renewed access token:\n%s", r.transcript)
	}
	wantGrants(t, w, testworld.GrantClientCredentials, 2)
	if log := w.GrantLog(); len(log) != 2 || log[1].AuthMethod != testworld.AuthMethodBasic || log[1].ClientID != "svc" {
		t.Errorf("grant log %+v", log)
	}

	status := mustRun(t, te, "status")
	for _, want := range []string{"grant          client_credentials (made again when the access token expires)", "refresh token  none needed"} {
		if !strings.Contains(status.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, status.transcript)
		}
	}
	assertNoSecret(t, status, extSecret, fresh.AccessToken)

	before := w.Stats().Revocations
	mustRun(t, te, "logout", server)
	if got := w.Stats().Revocations - before; got != 1 {
		t.Errorf("logout made %d revocations, want 1 (the access token; there is no refresh token)", got)
	}
	if recs := readStore(t, te.storePath()); len(recs) != 0 {
		t.Errorf("the store still holds %v after logout", keysOf(recs))
	}
}

// clientKeyPEM makes an EC P-256 key and writes it as a SEC 1 PEM file.
func clientKeyPEM(t *testing.T) (crypto.PublicKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "svc.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return k.Public(), path
}

func TestLoginClientCredentialsPrivateKeyJWT(t *testing.T) {
	pub, keyFile := clientKeyPEM(t)
	w := startWorld(t, testworld.Options{
		ClientCredentials: true,
		AuthMethods:       []string{testworld.AuthMethodPrivateKeyJWT},
		ClientKeys:        map[string]crypto.PublicKey{"svc": pub},
	})
	te := newTestEnv(t)
	server := w.MCPURL()

	login := mustRun(t, te, "login", "--grant", "client_credentials", "--client-id", "svc", "--client-key", keyFile, server)
	if !strings.Contains(login.stdout, "svc  (pre-registered, private_key_jwt)") {
		t.Errorf("login does not show the client:\n%s", login.transcript)
	}
	keyPEM, _ := os.ReadFile(keyFile)
	recs := readStore(t, te.storePath())
	for k, v := range recs {
		if strings.Contains(string(v), string(keyPEM)) {
			t.Errorf("the client key is in the store under %s", k)
		}
	}
	var settings extSettings
	if err := json.Unmarshal(recs[settingsKey(server)], &settings); err != nil || settings.ClientKeyFile != keyFile || len(settings.Grants) != 1 {
		t.Errorf("stored settings %+v (%v)", settings, err)
	}

	// Renewal signs a new assertion with the key file the sign-in names.
	w.ExpireAccessTokens()
	mustRun(t, te, "token", server)
	wantGrants(t, w, testworld.GrantClientCredentials, 2)
	st := w.Stats()
	if st.ClientAssertionsAccepted != 2 || st.ClientAssertionsRefused != 0 || st.JTIReplays != 0 {
		t.Errorf("assertions accepted %d refused %d replays %d", st.ClientAssertionsAccepted, st.ClientAssertionsRefused, st.JTIReplays)
	}
	for _, g := range w.GrantLog() {
		if g.AuthMethod != testworld.AuthMethodPrivateKeyJWT || g.ClientID != "svc" {
			t.Errorf("grant %+v", g)
		}
	}

	// Without the key file renewal cannot sign: a clear message, exit 1.
	moved := keyFile + ".moved"
	if err := os.Rename(keyFile, moved); err != nil {
		t.Fatal(err)
	}
	w.ExpireAccessTokens()
	r := te.run(t, "token", server)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "cannot read the client key") || !strings.Contains(r.stderr, "--client-key") {
		t.Errorf("token without the key file:\n%s", r.transcript)
	}
	// --client-key given here replaces the stored file for this run.
	mustRun(t, te, "token", "--client-key", moved, server)
	wantGrants(t, w, testworld.GrantClientCredentials, 3)

	// logout authenticates its revocation with the key too.
	before := w.Stats().Revocations
	mustRun(t, te, "logout", "--client-key", moved, server)
	if got := w.Stats().Revocations - before; got != 1 {
		t.Errorf("logout made %d revocations, want 1", got)
	}
}

func TestLoginWorkloadIdentityTokenFile(t *testing.T) {
	const workloadIssuer = "https://oidc.workload.example"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	w := startWorld(t, testworld.Options{WorkloadIssuer: workloadIssuer, WorkloadKey: key.Public()})
	mint := func(jti string) string {
		now := time.Now()
		tok, err := testworld.SignJWT(key, "JWT", map[string]any{
			"iss": workloadIssuer, "sub": "spiffe://example.org/app", "aud": w.Issuer(), "jti": jti,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	te := newTestEnv(t)
	server := w.MCPURL()
	file := writeFile(t, filepath.Join(t.TempDir(), "token"), mint("wid-1"))

	login := mustRun(t, te, "login", "--grant", "workload_identity", "--workload-token-file", file, server)
	for _, want := range []string{"client id      (none: the workload's token identifies it)", "grant          workload_identity", "refresh token  none needed"} {
		if !strings.Contains(login.stdout, want) {
			t.Errorf("login lacks %q:\n%s", want, login.transcript)
		}
	}
	if _, ok := readStore(t, te.storePath())[clientKey(w.Issuer())]; ok {
		t.Errorf("a client without an id was stored for the workload")
	}

	// The platform rotates the token; the old access token expires: token
	// reads the new one from the same file, without flags.
	writeFile(t, file, mint("wid-2"))
	w.ExpireAccessTokens()
	mustRun(t, te, "token", server)

	// A flag given to token replaces the stored source for that run.
	t.Setenv("MCPAUTH_TEST_WORKLOAD_TOKEN", mint("wid-3"))
	w.ExpireAccessTokens()
	mustRun(t, te, "tools", "--workload-token-env", "MCPAUTH_TEST_WORKLOAD_TOKEN", server)

	log := w.GrantLog()
	if len(log) != 3 || log[0].AssertionID != "wid-1" || log[1].AssertionID != "wid-2" || log[2].AssertionID != "wid-3" {
		t.Fatalf("grant log %+v, want grants with wid-1, the rotated wid-2, then wid-3 from the variable", log)
	}
	for _, g := range log {
		if g.ClientID != "" || g.GrantType != testworld.GrantJWTBearer || g.Subject != "spiffe://example.org/app" {
			t.Errorf("grant %+v: want an unauthenticated jwt-bearer grant for the workload", g)
		}
	}
	wantGrants(t, w, testworld.GrantJWTBearer, 3)

	// A token that cannot be read: which source, and what to check.
	os.Remove(file)
	w.ExpireAccessTokens()
	r := te.run(t, "token", server)
	if r.code != 1 || !strings.Contains(r.stderr, "cannot read the workload token") || !strings.Contains(r.stderr, "--workload-token-file") {
		t.Errorf("token with the workload token gone:\n%s", r.transcript)
	}

	out := mustRun(t, te, "logout", server)
	if !strings.Contains(out.stdout, "workload without a client identity") || w.Stats().Revocations != 0 {
		t.Errorf("logout of a workload:\n%s", out.transcript)
	}
}

func TestLoginEnterpriseManaged(t *testing.T) {
	w := startWorld(t, testworld.Options{Enterprise: true, EnterpriseClientID: "mcp-client", PreRegistered: map[string]string{"mcp-client": extSecret}})
	te := newTestEnv(t)
	te.vars["MCPAUTH_CLIENT_SECRET"] = extSecret
	server := w.MCPURL()
	idToken := writeFile(t, filepath.Join(t.TempDir(), "id_token"), w.IssueIDToken("alice@example.com"))

	login := mustRun(t, te, "login", "--grant", "enterprise_managed", "--client-id", "mcp-client",
		"--idp-token-endpoint", w.IdPTokenEndpoint(), "--idp-client-id", w.IdPClientID(), "--id-token-file", idToken, server)
	if !strings.Contains(login.stderr, "exchanging your ID token at the identity provider… done (1 request, ") {
		t.Errorf("login progress:\n%s", login.transcript)
	}
	w.ExpireAccessTokens()
	mustRun(t, te, "token", server)
	if st := w.Stats(); st.TokenExchanges != 2 {
		t.Errorf("token exchanges %d, want 2 (login, then renewal)", st.TokenExchanges)
	}
	wantGrants(t, w, testworld.GrantJWTBearer, 2)
	for _, g := range w.GrantLog() {
		if g.Subject != "alice@example.com" || g.ClientID != "mcp-client" {
			t.Errorf("grant %+v", g)
		}
	}
}

// dpopThumbprint is the RFC 7638 thumbprint of the DPoP key the store keeps
// for server.
func dpopThumbprint(t *testing.T, te *testEnv, server string) string {
	t.Helper()
	raw, ok := readStore(t, te.storePath())[dpopKeyKey(server)]
	if !ok {
		t.Fatalf("no DPoP key stored for %s", server)
	}
	ks := &driver.KeySigner{}
	if _, err := ks.AddPEM("k", raw); err != nil {
		t.Fatal(err)
	}
	jwk, err := ks.PublicJWK("k")
	if err != nil {
		t.Fatal(err)
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

func TestLoginDPoPThenTools(t *testing.T) {
	o := demoWorld
	o.DPoP, o.DPoPNonceRS = true, true
	w := startWorld(t, o)
	te := newTestEnv(t)
	server := w.MCPURL()

	login := mustRun(t, te, "login", server)
	if !strings.Contains(login.stdout, "token type     DPoP") {
		t.Errorf("login does not say the tokens are DPoP-bound:\n%s", login.transcript)
	}
	tok := storedTokens(t, te, server)
	if tok.TokenType != "DPoP" || tok.DPoPKeyID != dpopKeyID {
		t.Fatalf("stored %v", tok)
	}
	jkt := dpopThumbprint(t, te, server)

	// Another process: tools proves possession with the stored key.
	tools := mustRun(t, te, "tools", server)
	if !strings.Contains(tools.stdout, "echo") {
		t.Errorf("tools:\n%s", tools.transcript)
	}
	// And token refreshes with a proof, the new tokens bound to the same key.
	w.ExpireAccessTokens()
	r := mustRun(t, te, "token", server)
	if !strings.Contains(r.stderr, "bound to a key (DPoP") {
		t.Errorf("token does not say the token is DPoP-bound:\n%s", r.transcript)
	}
	if n := w.Stats().TokenRequests["refresh_token"]; n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	for _, g := range w.GrantLog() {
		if g.TokenType != "DPoP" || g.JKT != jkt {
			t.Errorf("grant %+v, want DPoP bound to %s", g, jkt)
		}
	}
	rs := 0
	for _, p := range w.DPoPProofs() {
		if p.JKT != jkt {
			t.Errorf("a proof at %s signed by another key (%s)", p.Server, p.JKT)
		}
		if p.Server == "rs" && p.Outcome == testworld.ProofAccepted {
			rs++
		}
	}
	if rs < 2 {
		t.Errorf("%d proofs accepted at the resource server, want at least one per command", rs)
	}
	if st := w.Stats(); st.DPoPProofsRefused != 0 {
		t.Errorf("%d proofs refused", st.DPoPProofsRefused)
	}
	status := mustRun(t, te, "status")
	if !strings.Contains(status.stdout, "token type     DPoP") || strings.Contains(status.stdout, "PRIVATE KEY") {
		t.Errorf("status:\n%s", status.transcript)
	}

	// logout forgets the key with the tokens.
	mustRun(t, te, "logout", server)
	if recs := readStore(t, te.storePath()); len(recs) != 0 {
		t.Errorf("the store still holds %v after logout", keysOf(recs))
	}
}

func TestLoginDPoPNever(t *testing.T) {
	o := demoWorld
	o.DPoP = true
	w := startWorld(t, o)
	te := newTestEnv(t)
	mustRun(t, te, "login", "--dpop", "never", w.MCPURL())
	if tok := storedTokens(t, te, w.MCPURL()); tok.DPoPKeyID != "" || !strings.EqualFold(tok.TokenType, "bearer") {
		t.Errorf("--dpop never stored %v", tok)
	}
	if _, ok := readStore(t, te.storePath())[dpopKeyKey(w.MCPURL())]; ok {
		t.Errorf("a DPoP key was stored with --dpop never")
	}
	// The mode is kept: the refresh goes without a proof too.
	w.ExpireAccessTokens()
	mustRun(t, te, "tools", w.MCPURL())
	if n := len(w.DPoPProofs()); n != 0 {
		t.Errorf("%d DPoP proofs sent with --dpop never", n)
	}
}

func TestLoginGrantTheServerDoesNotSupport(t *testing.T) {
	w := loginWorld(t)
	te := newTestEnv(t)
	te.vars["MCPAUTH_CLIENT_SECRET"] = "x"
	r := te.run(t, "login", "--grant", "client_credentials", "--client-id", "svc", w.MCPURL())
	if r.code != 1 || !strings.Contains(r.stderr, "supports none of the grants asked for (client_credentials)") || !strings.Contains(r.stderr, "next: pass --grant") {
		t.Errorf("login with an unsupported grant:\n%s", r.transcript)
	}
}

func TestExtensionUsageErrors(t *testing.T) {
	te := newTestEnv(t)
	const u = "https://a.example/mcp"
	for _, args := range [][]string{
		{"login", "--grant", "implicit", u},
		{"login", "--grant", "workload_identity", u},
		{"login", "--grant", "client_credentials", u},
		{"login", "--client-key", "k.pem", u},
		{"login", "--dpop", "sometimes", u},
		{"login", "--workload-token-file", "f", u},
		{"login", "--grant", "workload_identity", "--workload-token-file", "f", "--workload-token-env", "V", u},
		{"login", "--grant", "enterprise_managed", "--client-id", "c", "--id-token-file", "f", u},
		{"login", "--grant", "enterprise_managed", "--client-id", "c", "--id-token-file", "f", "--idp-token-endpoint", "http://idp.example/token", u},
		{"token", "--grant", "nope", u},
		{"tools", "--dpop", "maybe", u},
	} {
		r := te.run(t, args...)
		if r.code != 2 || r.stderr == "" {
			t.Errorf("exit %d, want 2 with a message:\n%s", r.code, r.transcript)
		}
	}
}

// TestListers: the stores the command uses list their keys by prefix, in
// byte order, through driver.Lister.
func TestListers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.json")
	fs, err := driver.OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]interface {
		driver.Store
		driver.Lister
	}{"memory": driver.NewMemoryStore(), "file": fs} {
		if keys, err := s.Keys(ctx, ""); err != nil || len(keys) != 0 {
			t.Errorf("%s: empty store lists %v, %v", name, keys, err)
		}
		for _, k := range []string{"tokens:b", "client:x", "tokens:a", "tokensZ", "discovery:a"} {
			if _, err := s.Put(ctx, k, []byte("v"), 0); err != nil {
				t.Fatal(err)
			}
		}
		keys, err := s.Keys(ctx, "tokens:")
		if err != nil || strings.Join(keys, " ") != "tokens:a tokens:b" {
			t.Errorf("%s: Keys(tokens:) = %v, %v", name, keys, err)
		}
		all, _ := s.Keys(ctx, "")
		if strings.Join(all, " ") != "client:x discovery:a tokens:a tokens:b tokensZ" {
			t.Errorf("%s: Keys() = %v", name, all)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Keys(cctx, ""); err == nil {
			t.Errorf("%s: Keys with a done context succeeded", name)
		}
	}
	// A corrupt file is moved aside and reported, as Get does.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ce *driver.CorruptStoreError
	if _, err := fs.Keys(ctx, ""); !errors.As(err, &ce) || ce.MovedTo == "" {
		t.Errorf("Keys on a corrupt file: %v", err)
	}
	if keys, err := fs.Keys(ctx, ""); err != nil || len(keys) != 0 {
		t.Errorf("after moving it aside: %v, %v", keys, err)
	}
}
