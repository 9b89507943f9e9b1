package httpdriver_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// TestSDKEndToEnd connects the official Go SDK through the transport for
// every discovery path and client identity the world offers, and checks
// that the flow took exactly the requests it should.
func TestSDKEndToEnd(t *testing.T) {
	const cimdURL = "https://client.example/mcpauth/client.json"
	type want struct {
		prm, metadata, registrations int
		source                       effects.ClientSource
		authMethod                   string
		legacy, synthesized          bool
	}
	dcr := want{prm: 1, metadata: 1, registrations: 1, source: effects.ClientDynamic, authMethod: "none"}
	cases := []struct {
		name string
		opts testworld.Options
		cfg  func(*machine.Config)
		want want
	}{
		{name: "PRMHeader/RFC8414/DCR", opts: testworld.Options{PRM: testworld.PRMHeader, Metadata: testworld.MetadataRFC8414, DCR: true}, want: dcr},
		{name: "PRMHeader/OIDC/DCR", opts: testworld.Options{PRM: testworld.PRMHeader, Metadata: testworld.MetadataOIDC, DCR: true}, want: dcr},
		{name: "PRMPathOnly/RFC8414/DCR", opts: testworld.Options{PRM: testworld.PRMPathOnly, Metadata: testworld.MetadataRFC8414, DCR: true}, want: dcr},
		{name: "PRMPathOnly/OIDC/DCR", opts: testworld.Options{PRM: testworld.PRMPathOnly, Metadata: testworld.MetadataOIDC, DCR: true}, want: dcr},
		{name: "PRMRootOnly/RFC8414/DCR", opts: testworld.Options{PRM: testworld.PRMRootOnly, Metadata: testworld.MetadataRFC8414, DCR: true}, want: dcr},
		{name: "PRMRootOnly/OIDC/DCR", opts: testworld.Options{PRM: testworld.PRMRootOnly, Metadata: testworld.MetadataOIDC, DCR: true}, want: dcr},
		{name: "IssuerPath/RFC8414/DCR", opts: testworld.Options{IssuerPath: "/tenant1", DCR: true}, want: dcr},
		{name: "IssuerPath/OIDC/DCR", opts: testworld.Options{IssuerPath: "/tenant1", Metadata: testworld.MetadataOIDC, DCR: true}, want: dcr},
		{name: "SameOrigin/DCR", opts: testworld.Options{SameOrigin: true, DCR: true}, want: dcr},
		{
			name: "PRMNone/RFC8414/DCR",
			opts: testworld.Options{PRM: testworld.PRMNone, DCR: true},
			want: want{metadata: 1, registrations: 1, source: effects.ClientDynamic, authMethod: "none", legacy: true},
		},
		{
			name: "PRMNone/MetadataNone/DCR",
			opts: testworld.Options{PRM: testworld.PRMNone, Metadata: testworld.MetadataNone, DCR: true},
			want: want{registrations: 1, source: effects.ClientDynamic, authMethod: "none", legacy: true, synthesized: true},
		},
		{
			name: "DCR/client_secret_basic",
			opts: testworld.Options{DCR: true},
			cfg:  func(c *machine.Config) { c.TokenEndpointAuthMethod = "client_secret_basic" },
			want: want{prm: 1, metadata: 1, registrations: 1, source: effects.ClientDynamic, authMethod: "client_secret_basic"},
		},
		{
			name: "DCR/client_secret_post",
			opts: testworld.Options{DCR: true},
			cfg:  func(c *machine.Config) { c.TokenEndpointAuthMethod = "client_secret_post" },
			want: want{prm: 1, metadata: 1, registrations: 1, source: effects.ClientDynamic, authMethod: "client_secret_post"},
		},
		{
			name: "CIMD",
			opts: testworld.Options{CIMD: true},
			cfg:  func(c *machine.Config) { c.ClientMetadataURL = cimdURL },
			want: want{prm: 1, metadata: 1, source: effects.ClientMetadataURL, authMethod: "none"},
		},
		{
			// CIMD is preferred to registration when both are offered.
			name: "CIMD+DCR",
			opts: testworld.Options{CIMD: true, DCR: true},
			cfg:  func(c *machine.Config) { c.ClientMetadataURL = cimdURL },
			want: want{prm: 1, metadata: 1, source: effects.ClientMetadataURL, authMethod: "none"},
		},
		{
			name: "PreRegistered/client_secret_basic",
			opts: testworld.Options{
				PreRegistered: map[string]string{"app-basic": "s3cret-basic-value"},
				AuthMethods:   []string{testworld.AuthMethodBasic},
			},
			cfg: func(c *machine.Config) {
				c.Clients = []effects.Client{{ClientID: "app-basic", ClientSecret: "s3cret-basic-value"}}
			},
			want: want{prm: 1, metadata: 1, source: effects.ClientPreRegistered, authMethod: "client_secret_basic"},
		},
		{
			name: "PreRegistered/client_secret_post",
			opts: testworld.Options{
				PreRegistered: map[string]string{"app-post": "s3cret-post-value"},
				AuthMethods:   []string{testworld.AuthMethodPost},
			},
			cfg: func(c *machine.Config) {
				c.Clients = []effects.Client{{ClientID: "app-post", ClientSecret: "s3cret-post-value"}}
			},
			want: want{prm: 1, metadata: 1, source: effects.ClientPreRegistered, authMethod: "client_secret_post"},
		},
		{
			name: "PreRegistered/public",
			opts: testworld.Options{PreRegistered: map[string]string{"app-public": ""}},
			cfg: func(c *machine.Config) {
				c.Clients = []effects.Client{{ClientID: "app-public"}}
			},
			want: want{prm: 1, metadata: 1, source: effects.ClientPreRegistered, authMethod: "none"},
		},
		{
			// Bound to the world's issuer, with an explicit method.
			name: "PreRegistered/issuer-bound/explicit-post",
			opts: testworld.Options{PreRegistered: map[string]string{"app-bound": "s3cret-bound-value"}, AuthMethods: []string{testworld.AuthMethodPost}},
			cfg:  nil, // set below: the issuer is only known once the world runs
			want: want{prm: 1, metadata: 1, source: effects.ClientPreRegistered, authMethod: "client_secret_post"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := startWorld(t, tc.opts)
			cfg := worldConfig(w)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			if tc.name == "PreRegistered/issuer-bound/explicit-post" {
				cfg.Clients = []effects.Client{
					{Issuer: "https://other.example", ClientID: "wrong", ClientSecret: "wrong-secret-value"},
					{Issuer: w.Issuer(), ClientID: "app-bound", ClientSecret: "s3cret-bound-value", AuthMethod: "client_secret_post"},
				}
			}
			store := driver.NewMemoryStore()
			tr := newTransport(t, cfg, httpdriver.Options{Store: store})
			cs := connectSDK(t, w, tr)
			listAndEcho(t, cs)

			st := w.Stats()
			if st.PRMRequests != tc.want.prm {
				t.Errorf("PRM requests = %d, want %d", st.PRMRequests, tc.want.prm)
			}
			if st.MetadataRequests != tc.want.metadata {
				t.Errorf("metadata requests = %d, want %d", st.MetadataRequests, tc.want.metadata)
			}
			if st.Registrations != tc.want.registrations {
				t.Errorf("registrations = %d, want %d", st.Registrations, tc.want.registrations)
			}
			if st.Authorizations != 1 || st.CodesIssued != 1 {
				t.Errorf("authorizations = %d, codes = %d, want 1 and 1", st.Authorizations, st.CodesIssued)
			}
			if got := st.TokenRequests["authorization_code"]; got != 1 || len(st.TokenRequests) != 1 {
				t.Errorf("token requests = %v, want one authorization_code grant", st.TokenRequests)
			}
			if st.Unauthorized != 1 {
				t.Errorf("401 answers = %d, want 1 (the first request only)", st.Unauthorized)
			}
			if st.InvalidGrants != 0 || st.Forbidden != 0 {
				t.Errorf("invalid grants = %d, 403s = %d, want none", st.InvalidGrants, st.Forbidden)
			}

			snap := tr.Session().Snapshot()
			if !snap.HasClient || snap.Client.Source != tc.want.source || snap.Client.AuthMethod != tc.want.authMethod {
				t.Errorf("client = %v, want source %s method %s", snap.Client, tc.want.source, tc.want.authMethod)
			}
			if snap.Client.Issuer != w.Issuer() {
				t.Errorf("client issuer = %q, want %q", snap.Client.Issuer, w.Issuer())
			}
			if snap.Discovery.Legacy != tc.want.legacy || snap.Discovery.Synthesized != tc.want.synthesized {
				t.Errorf("discovery legacy=%v synthesized=%v, want %v %v", snap.Discovery.Legacy, snap.Discovery.Synthesized, tc.want.legacy, tc.want.synthesized)
			}
			tok := storedTokens(t, store, w.MCPURL())
			if tok == nil || tok.AccessToken == "" {
				t.Fatalf("no credential stored")
			}
			if tok.Issuer != w.Issuer() || tok.Resource != w.MCPURL() || tok.RefreshToken == "" {
				t.Errorf("stored credential %v: want issuer %s, resource %s and a refresh token", tok, w.Issuer(), w.MCPURL())
			}
			if tok.AccessToken != snap.Credential.AccessToken {
				t.Errorf("stored credential differs from the one in use")
			}
			// The client identity is kept per issuer, for later runs.
			c, err := driver.LoadClient(context.Background(), store, w.Issuer())
			if err != nil {
				t.Fatalf("LoadClient: %v", err)
			}
			if c.Client == nil || c.Client.Source != tc.want.source || c.Client.ClientID != snap.Client.ClientID || c.Client.Issuer != w.Issuer() {
				t.Errorf("stored client = %v, want the one in use (%v)", c.Client, snap.Client)
			}
		})
	}
}

// TestOfflineAccess: when the authorization server lists offline_access,
// the client asks for it (with prompt=consent) and gets a refresh token.
func TestOfflineAccess(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true, ScopesSupported: []string{"mcp:read"}, ASScopesSupported: []string{"mcp:read", "offline_access"}})
	log := newSecretLog()
	store := driver.NewMemoryStore()
	tr := newTransport(t, worldConfig(w), httpdriver.Options{Store: store, UserAgent: spyAgent{next: httpdriver.HeadlessUserAgent{}, log: log}})
	listAndEcho(t, connectSDK(t, w, tr))
	urls := log.AuthURLs()
	if len(urls) != 1 {
		t.Fatalf("%d authorizations", len(urls))
	}
	u, _ := url.Parse(urls[0])
	if q := u.Query(); q.Get("scope") != "mcp:read offline_access" || q.Get("prompt") != "consent" {
		t.Errorf("authorization asked scope %q prompt %q", q.Get("scope"), q.Get("prompt"))
	}
	if tok := storedTokens(t, store, w.MCPURL()); tok == nil || tok.RefreshToken == "" {
		t.Errorf("no refresh token stored: %v", tok)
	}
	// NoRefreshTokens in the config: offline_access is not asked for.
	w2 := startWorld(t, testworld.Options{DCR: true, ScopesSupported: []string{"mcp:read"}, ASScopesSupported: []string{"mcp:read", "offline_access"}})
	log2 := newSecretLog()
	cfg := worldConfig(w2)
	cfg.NoRefreshTokens = true
	store2 := driver.NewMemoryStore()
	tr2 := newTransport(t, cfg, httpdriver.Options{Store: store2, UserAgent: spyAgent{next: httpdriver.HeadlessUserAgent{}, log: log2}})
	listAndEcho(t, connectSDK(t, w2, tr2))
	u, _ = url.Parse(log2.AuthURLs()[0])
	if q := u.Query(); q.Get("scope") != "mcp:read" {
		t.Errorf("NoRefreshTokens: authorization asked scope %q", q.Get("scope"))
	}
	if tok := storedTokens(t, store2, w2.MCPURL()); tok == nil || tok.RefreshToken != "" {
		t.Errorf("NoRefreshTokens: stored %v", tok)
	}
}

// TestNoRefreshTokenReauthorizes: without a refresh token, an expired
// credential costs a new authorization (with the registration reused).
func TestNoRefreshTokenReauthorizes(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true, NoRefreshTokens: true})
	tr := newTransport(t, worldConfig(w), httpdriver.Options{})
	c := &http.Client{Transport: tr}
	mustPost(t, c, w.MCPURL(), rpcBody(1))
	w.ExpireAccessTokens()
	mustPost(t, c, w.MCPURL(), rpcBody(2))
	st := w.Stats()
	if st.Authorizations != 2 || st.Registrations != 1 || st.TokenRequests["refresh_token"] != 0 || st.TokenRequests["authorization_code"] != 2 {
		t.Errorf("stats %+v: want two authorizations, one registration, no refresh", st)
	}
}

// TestMigration: when the resource server moves to another authorization
// server (SEP-2352), the client discovers it again, registers there and
// authorizes; the old registration stays bound to the old issuer.
func TestMigration(t *testing.T) {
	w := startWorld(t, testworld.Options{DCR: true})
	store := driver.NewMemoryStore()
	tr := newTransport(t, worldConfig(w), httpdriver.Options{Store: store})
	cs := connectSDK(t, w, tr)
	listAndEcho(t, cs)
	oldIssuer := w.Issuer()
	newIssuer, err := w.MigrateTo(testworld.Options{DCR: true})
	if err != nil {
		t.Fatal(err)
	}
	wantEcho(t, cs, "after migration")
	st := w.Stats()
	if st.Registrations != 2 || st.Authorizations != 2 {
		t.Errorf("registrations %d, authorizations %d: want 2 and 2", st.Registrations, st.Authorizations)
	}
	tok := storedTokens(t, store, w.MCPURL())
	if tok == nil || tok.Issuer != newIssuer {
		t.Errorf("stored credential %v, want one from %s", tok, newIssuer)
	}
	for _, iss := range []string{oldIssuer, newIssuer} {
		c, err := driver.LoadClient(context.Background(), store, iss)
		if err != nil || c.Client == nil || c.Client.Issuer != iss {
			t.Errorf("client for %s: %v, %v", iss, c.Client, err)
		}
	}
	if snap := tr.Session().Snapshot(); snap.Discovery.Authorization.Issuer != newIssuer || snap.Client.Issuer != newIssuer {
		t.Errorf("session bound to %s / client %s, want %s", snap.Discovery.Authorization.Issuer, snap.Client.Issuer, newIssuer)
	}
}
