package driver

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

const (
	recServer = "https://mcp.example/mcp"
	recIssuer = "https://as.example/tenant1"
)

func recTokens(access string) effects.Tokens {
	return effects.Tokens{
		Resource: recServer, Issuer: recIssuer, ClientID: "client-1",
		AccessToken: access, TokenType: "Bearer", RefreshToken: "refresh-" + access,
		Scope: "mcp:read offline_access", ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func recDiscovery() effects.Discovery {
	return effects.Discovery{
		Server:              recServer,
		ResourceMetadataURL: "https://mcp.example/.well-known/oauth-protected-resource/mcp",
		Resource: effects.ResourceMetadata{
			Resource: recServer, AuthorizationServers: []string{recIssuer}, ScopesSupported: []string{"mcp:read"},
			BearerMethodsSupported: []string{"header"}, ResourceName: "Example",
		},
		Authorization: effects.ServerMetadata{
			Issuer: recIssuer, AuthorizationEndpoint: recIssuer + "/authorize", TokenEndpoint: recIssuer + "/token",
			RegistrationEndpoint: recIssuer + "/register", CodeChallengeMethodsSupported: []string{"S256"},
			ScopesSupported: []string{"mcp:read", "offline_access"}, AuthorizationResponseIssParameterSupported: true,
		},
	}
}

func recClient() effects.Client {
	return effects.Client{
		Issuer: recIssuer, ClientID: "client-1", ClientSecret: "client-secret-1",
		SecretExpiresAt: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), AuthMethod: "client_secret_basic",
		RedirectURIs: []string{"http://127.0.0.1:9/cb"}, Source: effects.ClientDynamic,
	}
}

func recSave(t *testing.T, s Store, e effects.Effect) machine.Input {
	t.Helper()
	in, err := saveEffect(context.Background(), s, e)
	if err != nil {
		t.Fatalf("saveEffect(%s): %v", Describe(e), err)
	}
	return in
}

// TestRecordsRoundTrip: what the save effects write, LoadStored and
// LoadClient read back unchanged.
func TestRecordsRoundTrip(t *testing.T) {
	for name, s := range map[string]Store{"memory": NewMemoryStore(), "file": recFileStore(t)} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			// Nothing stored: an empty input, no error.
			in, err := LoadStored(ctx, s, recServer)
			if err != nil || !cmp.Equal(in, machine.StoredLoaded{}) {
				t.Fatalf("empty store: %+v, %v", in, err)
			}
			if c, err := LoadClient(ctx, s, recIssuer); err != nil || c.Client != nil {
				t.Fatalf("empty store: client %v, %v", c.Client, err)
			}

			tok, disc, cl := recTokens("AT-1"), recDiscovery(), recClient()
			for _, e := range []effects.Effect{
				effects.SaveTokens{Server: recServer, Tokens: tok, IfVersion: 0},
				effects.SaveDiscovery{Server: recServer, Discovery: disc},
				effects.SaveClient{Client: cl},
			} {
				if in := recSave(t, s, e); in != nil {
					t.Fatalf("saveEffect(%s) returned input %v", Describe(e), in)
				}
			}
			in, err = LoadStored(ctx, s, recServer)
			if err != nil {
				t.Fatalf("LoadStored: %v", err)
			}
			want := machine.StoredLoaded{Tokens: &tok, TokensVersion: 1, Discovery: &disc, Client: &cl}
			if diff := cmp.Diff(want, in); diff != "" {
				t.Errorf("LoadStored (-want +got):\n%s", diff)
			}
			c, err := LoadClient(ctx, s, recIssuer)
			if err != nil || c.Client == nil {
				t.Fatalf("LoadClient: %v, %v", c.Client, err)
			}
			if diff := cmp.Diff(cl, *c.Client); diff != "" {
				t.Errorf("LoadClient (-want +got):\n%s", diff)
			}
			// Registrations are per issuer.
			if c, err := LoadClient(ctx, s, "https://other.example"); err != nil || c.Client != nil {
				t.Errorf("another issuer's client: %v, %v", c.Client, err)
			}
			// Another server's records are not this one's.
			if in, err := LoadStored(ctx, s, "https://mcp.example/other"); err != nil || in.Tokens != nil || in.Discovery != nil {
				t.Errorf("another server: %+v, %v", in, err)
			}

			// A refresh saves over version 1.
			tok2 := recTokens("AT-2")
			recSave(t, s, effects.SaveTokens{Server: recServer, Tokens: tok2, IfVersion: 1})
			in, _ = LoadStored(ctx, s, recServer)
			if in.TokensVersion != 2 || in.Tokens.AccessToken != "AT-2" {
				t.Errorf("after refresh: version %d, %v", in.TokensVersion, in.Tokens)
			}
			// Saving the client or discovery again is unconditional.
			cl.ClientSecret = "client-secret-2"
			recSave(t, s, effects.SaveClient{Client: cl})
			disc.Resource.ResourceName = "Renamed"
			recSave(t, s, effects.SaveDiscovery{Server: recServer, Discovery: disc})
			in, _ = LoadStored(ctx, s, recServer)
			if in.Client.ClientSecret != "client-secret-2" || in.Discovery.Resource.ResourceName != "Renamed" {
				t.Errorf("second saves not kept: %v %v", in.Client, in.Discovery)
			}

			// A forget with a stale version keeps the newer record.
			recSave(t, s, effects.ForgetTokens{Server: recServer, IfVersion: 1})
			if in, _ = LoadStored(ctx, s, recServer); in.Tokens == nil {
				t.Errorf("ForgetTokens with a stale version deleted newer tokens")
			}
			recSave(t, s, effects.ForgetTokens{Server: recServer, IfVersion: 2})
			if in, _ = LoadStored(ctx, s, recServer); in.Tokens != nil || in.TokensVersion != 0 {
				t.Errorf("ForgetTokens kept %v", in.Tokens)
			}
			recSave(t, s, effects.ForgetClient{Issuer: recIssuer})
			if c, _ := LoadClient(ctx, s, recIssuer); c.Client != nil {
				t.Errorf("ForgetClient kept %v", c.Client)
			}
			// Discovery without a client for its issuer loads without one.
			if in, err = LoadStored(ctx, s, recServer); err != nil || in.Discovery == nil || in.Client != nil {
				t.Errorf("after forgetting: %+v, %v", in, err)
			}
		})
	}
}

func recFileStore(t *testing.T) *FileStore {
	t.Helper()
	s, err := OpenFileStore(t.TempDir() + "/store.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRecordsSaveConflict: a lost compare-and-swap of the credential comes
// back as CredentialChanged with the stored record, which is left alone.
func TestRecordsSaveConflict(t *testing.T) {
	s := NewMemoryStore()
	ctx := context.Background()
	other := recTokens("AT-OTHER")
	recSave(t, s, effects.SaveTokens{Server: recServer, Tokens: other})
	recSave(t, s, effects.SaveTokens{Server: recServer, Tokens: other, IfVersion: 1})

	in := recSave(t, s, effects.SaveTokens{Server: recServer, Tokens: recTokens("AT-MINE"), IfVersion: 1})
	want := machine.CredentialChanged{Tokens: other, Version: 2}
	if diff := cmp.Diff(want, in); diff != "" {
		t.Errorf("conflict input (-want +got):\n%s", diff)
	}
	got, _ := LoadStored(ctx, s, recServer)
	if got.Tokens.AccessToken != "AT-OTHER" || got.TokensVersion != 2 {
		t.Errorf("the conflicting save changed the store: %v v%d", got.Tokens, got.TokensVersion)
	}
	// A first save over a deleted record conflicts with nothing to adopt.
	recSave(t, s, effects.ForgetTokens{Server: recServer})
	in, err := saveEffect(ctx, s, effects.SaveTokens{Server: recServer, Tokens: recTokens("AT-3"), IfVersion: 2})
	var conflict *ConflictError
	if !errors.As(err, &conflict) || in != nil {
		t.Errorf("save over a deleted record with IfVersion 2: %v, %v; want *ConflictError and no input", in, err)
	}
}

// TestRecordsUnreadable: a record that does not decode is reported as
// *RecordError naming its key, without quoting its content, and is left
// in place.
func TestRecordsUnreadable(t *testing.T) {
	const secret = "sekrit-refresh-token-value"
	ctx := context.Background()
	good := func(v any) []byte { b, _ := json.Marshal(v); return b }
	cases := []struct {
		name  string
		key   string
		value []byte
		load  func(Store) error
	}{
		{"tokens", TokensKey(recServer), []byte(`{"AccessToken":"` + secret + `",`), func(s Store) error { _, err := LoadStored(ctx, s, recServer); return err }},
		{"tokens wrong type", TokensKey(recServer), []byte(`{"AccessToken":["` + secret + `"]}`), func(s Store) error { _, err := LoadStored(ctx, s, recServer); return err }},
		{"discovery", DiscoveryKey(recServer), []byte(`not json ` + secret), func(s Store) error { _, err := LoadStored(ctx, s, recServer); return err }},
		{"client via LoadStored", ClientKey(recIssuer), []byte(`{"ClientSecret":` + secret + `}`), func(s Store) error { _, err := LoadStored(ctx, s, recServer); return err }},
		{"client", ClientKey(recIssuer), []byte(`[1,2,3]`), func(s Store) error { _, err := LoadClient(ctx, s, recIssuer); return err }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewMemoryStore()
			// The other records are fine.
			for k, v := range map[string][]byte{
				TokensKey(recServer): good(recTokens("AT-1")), DiscoveryKey(recServer): good(recDiscovery()), ClientKey(recIssuer): good(recClient()),
			} {
				if _, err := s.Put(ctx, k, v, 0); err != nil {
					t.Fatal(err)
				}
			}
			r, _ := s.Get(ctx, tc.key)
			if _, err := s.Put(ctx, tc.key, tc.value, r.Version); err != nil {
				t.Fatal(err)
			}
			err := tc.load(s)
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T), want *RecordError", err, err)
			}
			if re.Key != tc.key {
				t.Errorf("RecordError.Key %q, want %q", re.Key, tc.key)
			}
			if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q: want the key and not the content", err)
			}
			if r, _ := s.Get(ctx, tc.key); string(r.Value) != string(tc.value) {
				t.Errorf("the unreadable record was changed")
			}
		})
	}

	// A conflict whose stored record is unreadable is reported the same way.
	s := NewMemoryStore()
	if _, err := s.Put(ctx, TokensKey(recServer), []byte("{"), 0); err != nil {
		t.Fatal(err)
	}
	in, err := saveEffect(ctx, s, effects.SaveTokens{Server: recServer, Tokens: recTokens("AT-1")})
	var re *RecordError
	if !errors.As(err, &re) || in != nil {
		t.Errorf("conflict with an unreadable record: %v, %v; want *RecordError and no input", in, err)
	}
	if r, _ := s.Get(ctx, TokensKey(recServer)); string(r.Value) != "{" {
		t.Errorf("the unreadable record was overwritten")
	}
}

// TestRecordsStoreFailure: a store that fails passes its error through.
func TestRecordsStoreFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := NewMemoryStore()
	if _, err := LoadStored(ctx, s, recServer); !errors.Is(err, context.Canceled) {
		t.Errorf("LoadStored: %v, want context.Canceled", err)
	}
	if _, err := LoadClient(ctx, s, recIssuer); !errors.Is(err, context.Canceled) {
		t.Errorf("LoadClient: %v, want context.Canceled", err)
	}
	for _, e := range []effects.Effect{
		effects.SaveTokens{Server: recServer, Tokens: recTokens("x")},
		effects.SaveClient{Client: recClient()},
		effects.SaveDiscovery{Server: recServer, Discovery: recDiscovery()},
		effects.ForgetTokens{Server: recServer},
		effects.ForgetClient{Issuer: recIssuer},
	} {
		if _, err := saveEffect(ctx, s, e); !errors.Is(err, context.Canceled) {
			t.Errorf("saveEffect(%s): %v, want context.Canceled", Describe(e), err)
		}
	}
}
