package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/internal/testworld"
)

// storedTokens decodes the credential stored for server.
func storedTokens(t *testing.T, te *testEnv, server string) effects.Tokens {
	t.Helper()
	recs := readStore(t, te.storePath())
	raw, ok := recs[tokensKey(server)]
	if !ok {
		t.Fatalf("no credential stored for %s; keys: %v", server, keysOf(recs))
	}
	var tok effects.Tokens
	if err := json.Unmarshal(raw, &tok); err != nil {
		t.Fatal(err)
	}
	return tok
}

// storedTokensIn decodes the credential a store holds for server.
func storedTokensIn(t *testing.T, s driver.Store, server string) effects.Tokens {
	t.Helper()
	var tok effects.Tokens
	ok, err := getRecord(context.Background(), s, tokensKey(server), &tok)
	if err != nil || !ok {
		t.Fatalf("no credential stored for %s (%v)", server, err)
	}
	return tok
}

func mustRun(t *testing.T, te *testEnv, args ...string) result {
	t.Helper()
	r := te.run(t, args...)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.transcript)
	}
	return r
}

func assertNoSecret(t *testing.T, r result, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && (strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s)) {
			t.Errorf("a secret (%d characters) was printed:\n%s", len(s), r.transcript)
		}
	}
}

func TestLoginTokenToolsStatusLogout(t *testing.T) {
	w := loginWorld(t)
	te := newTestEnv(t)
	server := w.MCPURL()

	login := mustRun(t, te, "login", server)
	for _, want := range []string{"signed in to " + server, "issuer         " + w.Issuer(), "mcp:read offline_access", "expires", "(in ", "refresh token  held", "tools          2"} {
		if !strings.Contains(login.stdout, want) {
			t.Errorf("login output lacks %q:\n%s", want, login.transcript)
		}
	}
	for _, want := range []string{
		"discovering the protected resource… done (1 request, ",
		"discovering the authorization server… done (1 request, ",
		"registering mcpauth as a client… done (1 request, ",
		"waiting for you to approve in the browser… done (",
		"exchanging the authorization code for tokens… done (1 request, ",
	} {
		if !strings.Contains(login.stderr, want) {
			t.Errorf("login progress lacks %q:\n%s", want, login.transcript)
		}
	}
	if m := fileMode(t, te.storePath()); m != 0o600 {
		t.Errorf("store file mode %v, want 0600", m)
	}
	tok := storedTokens(t, te, server)
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Issuer != w.Issuer() {
		t.Fatalf("stored credential %v", tok)
	}
	recs := readStore(t, te.storePath())
	if _, ok := recs[clientKey(w.Issuer())]; !ok {
		t.Errorf("the registration was not stored")
	}
	assertNoSecret(t, login, tok.AccessToken, tok.RefreshToken)

	token := mustRun(t, te, "token", server)
	if token.stdout != tok.AccessToken+"\n" {
		t.Errorf("token printed %q, want the stored access token", token.stdout)
	}

	tools := mustRun(t, te, "tools", server)
	if !strings.Contains(tools.stdout, "echo") || !strings.Contains(tools.stdout, "write") {
		t.Errorf("tools output lacks the tools:\n%s", tools.transcript)
	}

	status := mustRun(t, te, "status")
	for _, want := range []string{server, w.Issuer(), tok.ClientID, "dynamic registration, public client", "mcp:read offline_access", "refresh token  held", "(in "} {
		if !strings.Contains(status.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, status.transcript)
		}
	}
	assertNoSecret(t, status, tok.AccessToken, tok.RefreshToken)
	assertNoSecret(t, tools, tok.AccessToken, tok.RefreshToken)

	before := w.Stats().Revocations
	logout := mustRun(t, te, "logout", server)
	if got := w.Stats().Revocations - before; got != 2 {
		t.Errorf("logout made %d revocations, want 2 (refresh token, access token):\n%s", got, logout.transcript)
	}
	if recs := readStore(t, te.storePath()); len(recs) != 0 {
		t.Errorf("the store still holds %v after logout", keysOf(recs))
	}
	assertNoSecret(t, logout, tok.AccessToken, tok.RefreshToken)

	// The revoked token no longer works, and nothing is stored: login needed.
	after := te.run(t, "token", server)
	if after.code != 1 || !strings.Contains(after.stderr, "mcpauth login "+server) {
		t.Errorf("token after logout:\n%s", after.transcript)
	}
}

func TestTokenWithEmptyStoreNeedsLogin(t *testing.T) {
	te := newTestEnv(t)
	r := te.run(t, "token", "https://mcp.example.com/mcp")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", r.code, r.transcript)
	}
	if r.stdout != "" {
		t.Errorf("token printed %q on stdout", r.stdout)
	}
	for _, want := range []string{"not signed in", "next: sign in first: mcpauth login https://mcp.example.com/mcp"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.transcript)
		}
	}
	if _, err := os.Stat(filepath.Dir(te.storePath())); err == nil {
		t.Errorf("token created the store directory")
	}
}

func TestTokenRefreshesAnExpiredToken(t *testing.T) {
	w := loginWorld(t)
	te := newTestEnv(t)
	mustRun(t, te, "login", w.MCPURL())
	old := storedTokens(t, te, w.MCPURL())
	w.ExpireAccessTokens()

	r := mustRun(t, te, "token", w.MCPURL())
	fresh := storedTokens(t, te, w.MCPURL())
	if fresh.AccessToken == old.AccessToken || fresh.RefreshToken == old.RefreshToken {
		t.Fatalf("the credential was not refreshed (and rotated)")
	}
	if r.stdout != fresh.AccessToken+"\n" {
		t.Errorf("token printed something else than the refreshed token")
	}
	if n := w.Stats().TokenRequests["refresh_token"]; n != 1 {
		t.Errorf("%d refresh grants, want 1", n)
	}
}

func TestTokenNeverOpensABrowser(t *testing.T) {
	w := loginWorld(t)
	te := newTestEnv(t)
	mustRun(t, te, "login", w.MCPURL())
	w.ExpireAccessTokens()
	w.SetFault(testworld.Fault{InvalidGrantOnRefresh: true})
	authorizations := w.Stats().Authorizations

	r := te.run(t, "token", "-v", w.MCPURL())
	if r.code != 1 || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing:\n%s", r.code, r.stdout, r.transcript)
	}
	if !strings.Contains(r.stderr, "cannot be renewed") || !strings.Contains(r.stderr, "next: sign in first: mcpauth login "+w.MCPURL()) {
		t.Errorf("no login-needed message:\n%s", r.transcript)
	}
	if got := w.Stats().Authorizations; got != authorizations {
		t.Errorf("token visited the authorization endpoint %d times", got-authorizations)
	}
	// -v shows the trace: the refresh was rejected.
	if !strings.Contains(r.stderr, "refreshing —refresh_rejected→ awaiting_callback") {
		t.Errorf("-v did not show the trace:\n%s", r.transcript)
	}
}

func TestLoginAgainReusesTheRegistration(t *testing.T) {
	w := loginWorld(t)
	te := newTestEnv(t)
	mustRun(t, te, "login", w.MCPURL())
	first := storedTokens(t, te, w.MCPURL())
	mustRun(t, te, "login", w.MCPURL())
	second := storedTokens(t, te, w.MCPURL())
	if got := w.Stats().Registrations; got != 1 {
		t.Errorf("%d registrations, want 1 (the stored one is reused on its redirect URI)", got)
	}
	if first.AccessToken == second.AccessToken {
		t.Errorf("the second login did not sign in anew")
	}
	if got := w.Stats().Authorizations; got != 2 {
		t.Errorf("%d authorizations, want 2", got)
	}
}

func TestLoginWithAPreRegisteredClient(t *testing.T) {
	const secret = "s3cr+t/with=&reserved chars"
	w := startWorld(t, testworld.Options{
		PreRegistered: map[string]string{"mcpauth-cli": secret},
		AuthMethods:   []string{testworld.AuthMethodBasic},
		IssParameter:  true,
	})
	te := newTestEnv(t)
	te.vars["MCPAUTH_CLIENT_SECRET"] = secret
	login := mustRun(t, te, "login", "--client-id", "mcpauth-cli", w.MCPURL())
	if !strings.Contains(login.stdout, "mcpauth-cli  (pre-registered, client_secret_basic)") {
		t.Errorf("login does not show the client:\n%s", login.transcript)
	}
	assertNoSecret(t, login, secret)
	status := mustRun(t, te, "status")
	assertNoSecret(t, status, secret)

	// The configured client was stored with its issuer, so token can
	// refresh and logout can authenticate.
	w.ExpireAccessTokens()
	mustRun(t, te, "token", w.MCPURL())
	if n := w.Stats().TokenRequests["refresh_token"]; n != 1 {
		t.Errorf("%d refresh grants, want 1", n)
	}
	before := w.Stats().Revocations
	mustRun(t, te, "logout", w.MCPURL())
	if w.Stats().Revocations-before != 2 {
		t.Errorf("logout with client_secret_basic did not revoke")
	}
}

func TestLoginWithAClientMetadataDocument(t *testing.T) {
	w := startWorld(t, testworld.Options{CIMD: true})
	te := newTestEnv(t)
	r := mustRun(t, te, "login", "--client-metadata-url", "https://app.example.com/mcpauth.json", w.MCPURL())
	if !strings.Contains(r.stdout, "https://app.example.com/mcpauth.json  (client metadata document, public client)") {
		t.Errorf("login does not show the client metadata document:\n%s", r.transcript)
	}
	if w.Stats().Registrations != 0 {
		t.Errorf("a client was registered")
	}
}

func TestLoginDeniedConsent(t *testing.T) {
	w := loginWorld(t)
	w.SetFault(testworld.Fault{AuthorizeError: "access_denied"})
	te := newTestEnv(t)
	r := te.run(t, "login", w.MCPURL())
	if r.code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", r.code, r.transcript)
	}
	if !strings.Contains(r.stderr, "denied the sign-in: access_denied") || !strings.Contains(r.stderr, "next: ") {
		t.Errorf("no clear denial message:\n%s", r.transcript)
	}
	if !strings.Contains(r.stderr, "waiting for you to approve in the browser… failed") {
		t.Errorf("the progress does not show the failed step:\n%s", r.transcript)
	}
	if _, ok := readStore(t, te.storePath())[tokensKey(w.MCPURL())]; ok {
		t.Errorf("tokens were stored after a denial")
	}
}

func TestLoginUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	te := newTestEnv(t)
	r := te.run(t, "login", "--timeout", "10s", "http://"+addr+"/mcp")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", r.code, r.transcript)
	}
	if !strings.Contains(r.stderr, "cannot reach the server") || !strings.Contains(r.stderr, "next: check the URL") {
		t.Errorf("no clear message:\n%s", r.transcript)
	}
}

func TestLoginServerWithoutAuthorization(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "open", Version: "1"}, nil)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	ts := httptest.NewServer(h)
	defer ts.Close()
	te := newTestEnv(t)
	r := te.run(t, "login", ts.URL+"/mcp")
	if r.code != 1 || !strings.Contains(r.stderr, "without asking for authorization") {
		t.Errorf("exit %d:\n%s", r.code, r.transcript)
	}
}

func TestCorruptStoreIsNeverOverwrittenSilently(t *testing.T) {
	w := loginWorld(t)
	te := newTestEnv(t)
	path := te.storePath()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	corrupt := []byte(`{"version": 1, "records": {"tokens:x": {"version": 1, "value": "not base64!"}`)
	if err := os.WriteFile(path, corrupt, 0o600); err != nil {
		t.Fatal(err)
	}

	// Every command that meets it — status, which only reads, as well as
	// login — moves it aside unchanged, says so, and stops.
	for i, args := range [][]string{{"status"}, {"login", w.MCPURL()}} {
		r := te.run(t, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "unreadable") || !strings.Contains(r.stderr, "moved aside, unchanged, to") {
			t.Fatalf("%v on a corrupt store:\n%s", args, r.transcript)
		}
		moved, _ := filepath.Glob(path + ".corrupt-*")
		if len(moved) != i+1 {
			t.Fatalf("corrupt copies: %v", moved)
		}
		for _, m := range moved {
			if b, _ := os.ReadFile(m); string(b) != string(corrupt) {
				t.Errorf("the moved-aside file differs from the corrupt one")
			}
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%v wrote a new store in the same run", args)
		}
		if err := os.WriteFile(path, corrupt, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(path)
	// The next run starts with an empty store.
	mustRun(t, te, "login", w.MCPURL())
}

func TestUsageErrorsExitTwo(t *testing.T) {
	te := newTestEnv(t)
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"login"},
		{"login", "https://a.example/mcp", "https://b.example/mcp"},
		{"login", "--no-such-flag", "https://a.example/mcp"},
		{"token", "ftp://a.example/mcp"},
		{"token", "http://a.example/mcp"}, // plain http off loopback
		{"login", "--client-secret", "x", "https://a.example/mcp"},
		{"login", "--client-id", "a", "--client-secret", "x", "--client-secret-file", "f", "https://a.example/mcp"},
		{"login", "--client-metadata-url", "http://app.example/c.json", "https://a.example/mcp"},
		{"status", "extra"},
	} {
		r := te.run(t, args...)
		if r.code != 2 {
			t.Errorf("exit %d, want 2:\n%s", r.code, r.transcript)
		}
		if r.stderr == "" {
			t.Errorf("no message:\n%s", r.transcript)
		}
	}
}

func TestHelpHasExamples(t *testing.T) {
	te := newTestEnv(t)
	r := mustRun(t, te, "--help")
	for _, c := range commands() {
		if !strings.Contains(r.stdout, "  "+c.name+" ") {
			t.Errorf("main help lacks %s", c.name)
		}
		for _, args := range [][]string{{c.name, "--help"}, {"help", c.name}} {
			h := mustRun(t, te, args...)
			for _, want := range []string{"Usage:", "Examples:", "mcpauth " + c.name, "-timeout", "-v"} {
				if !strings.Contains(h.stdout, want) {
					t.Errorf("%v lacks %q:\n%s", args, want, h.transcript)
				}
			}
		}
	}
}

// TestFailedLoginKeepsTheSignIn: a second login that is denied leaves the
// first sign-in as it was: its tokens still work and are still stored.
func TestFailedLoginKeepsTheSignIn(t *testing.T) {
	w := loginWorld(t)
	te := newTestEnv(t)
	mustRun(t, te, "login", w.MCPURL())
	before := storedTokens(t, te, w.MCPURL())
	w.SetFault(testworld.Fault{AuthorizeError: "access_denied"})
	if r := te.run(t, "login", w.MCPURL()); r.code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", r.code, r.transcript)
	}
	after := storedTokens(t, te, w.MCPURL())
	if after.AccessToken != before.AccessToken || after.RefreshToken != before.RefreshToken {
		t.Errorf("a denied login changed the stored sign-in")
	}
	mustRun(t, te, "tools", w.MCPURL())
}
