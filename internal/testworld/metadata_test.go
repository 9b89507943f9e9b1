package testworld

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// allASWellKnown lists every AS discovery URL a client might try for an
// issuer path p (MCP 2025-11-25 order, plus the root forms).
func allASWellKnown(p string) []string {
	urls := []string{
		"/.well-known/oauth-authorization-server",
		"/.well-known/openid-configuration",
	}
	if p != "" {
		urls = append(urls,
			"/.well-known/oauth-authorization-server"+p,
			"/.well-known/openid-configuration"+p,
			p+"/.well-known/openid-configuration",
			p+"/.well-known/oauth-authorization-server",
		)
	}
	return urls
}

func TestASMetadataModes(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		wantPaths func(issuerPath string) []string
		wantDoc   func(w *World) map[string]any
	}{
		{
			name:      "rfc8414 root issuer, defaults",
			opts:      Options{DCR: true},
			wantPaths: func(string) []string { return []string{"/.well-known/oauth-authorization-server"} },
			wantDoc: func(w *World) map[string]any {
				iss := w.Issuer()
				return map[string]any{
					"issuer":                                     iss,
					"authorization_endpoint":                     iss + "/authorize",
					"token_endpoint":                             iss + "/token",
					"registration_endpoint":                      iss + "/register",
					"revocation_endpoint":                        iss + "/revoke",
					"response_types_supported":                   []any{"code"},
					"response_modes_supported":                   []any{"query"},
					"grant_types_supported":                      []any{"authorization_code", "refresh_token"},
					"code_challenge_methods_supported":           []any{"S256"},
					"token_endpoint_auth_methods_supported":      []any{"client_secret_basic", "client_secret_post", "none"},
					"revocation_endpoint_auth_methods_supported": []any{"client_secret_basic", "client_secret_post", "none"},
				}
			},
		},
		{
			name: "rfc8414 path issuer, every optional member",
			opts: Options{
				IssuerPath: "/tenant1", CIMD: true, IssParameter: true,
				ASScopesSupported: []string{"mcp:read", "offline_access"}, AuthMethods: []string{"none"},
			},
			wantPaths: func(p string) []string { return []string{"/.well-known/oauth-authorization-server" + p} },
			wantDoc: func(w *World) map[string]any {
				iss := w.Issuer()
				return map[string]any{
					"issuer":                                         iss,
					"authorization_endpoint":                         iss + "/authorize",
					"token_endpoint":                                 iss + "/token",
					"revocation_endpoint":                            iss + "/revoke",
					"scopes_supported":                               []any{"mcp:read", "offline_access"},
					"response_types_supported":                       []any{"code"},
					"response_modes_supported":                       []any{"query"},
					"grant_types_supported":                          []any{"authorization_code", "refresh_token"},
					"code_challenge_methods_supported":               []any{"S256"},
					"token_endpoint_auth_methods_supported":          []any{"none"},
					"revocation_endpoint_auth_methods_supported":     []any{"none"},
					"client_id_metadata_document_supported":          true,
					"authorization_response_iss_parameter_supported": true,
				}
			},
		},
		{
			name:      "oidc root issuer, no refresh tokens",
			opts:      Options{Metadata: MetadataOIDC, NoRefreshTokens: true},
			wantPaths: func(string) []string { return []string{"/.well-known/openid-configuration"} },
			wantDoc: func(w *World) map[string]any {
				iss := w.Issuer()
				return map[string]any{
					"issuer":                                     iss,
					"authorization_endpoint":                     iss + "/authorize",
					"token_endpoint":                             iss + "/token",
					"revocation_endpoint":                        iss + "/revoke",
					"response_types_supported":                   []any{"code"},
					"response_modes_supported":                   []any{"query"},
					"grant_types_supported":                      []any{"authorization_code"},
					"code_challenge_methods_supported":           []any{"S256"},
					"token_endpoint_auth_methods_supported":      []any{"client_secret_basic", "client_secret_post", "none"},
					"revocation_endpoint_auth_methods_supported": []any{"client_secret_basic", "client_secret_post", "none"},
				}
			},
		},
		{
			name: "oidc path issuer, same origin",
			opts: Options{Metadata: MetadataOIDC, IssuerPath: "/tenant1", SameOrigin: true, DCR: true},
			wantPaths: func(p string) []string {
				return []string{"/.well-known/openid-configuration" + p, p + "/.well-known/openid-configuration"}
			},
			wantDoc: func(w *World) map[string]any {
				iss := w.Issuer()
				return map[string]any{
					"issuer":                                     iss,
					"authorization_endpoint":                     iss + "/authorize",
					"token_endpoint":                             iss + "/token",
					"registration_endpoint":                      iss + "/register",
					"revocation_endpoint":                        iss + "/revoke",
					"response_types_supported":                   []any{"code"},
					"response_modes_supported":                   []any{"query"},
					"grant_types_supported":                      []any{"authorization_code", "refresh_token"},
					"code_challenge_methods_supported":           []any{"S256"},
					"token_endpoint_auth_methods_supported":      []any{"client_secret_basic", "client_secret_post", "none"},
					"revocation_endpoint_auth_methods_supported": []any{"client_secret_basic", "client_secret_post", "none"},
				}
			},
		},
		{
			name:      "no metadata",
			opts:      Options{Metadata: MetadataNone, PRM: PRMNone, DCR: true},
			wantPaths: func(string) []string { return nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := startWorld(t, tt.opts)
			origin := w.AuthorizationServerOrigin()
			if got, want := w.Issuer(), origin+tt.opts.IssuerPath; got != want {
				t.Errorf("Issuer() = %q, want %q", got, want)
			}
			served := map[string]bool{}
			for _, p := range tt.wantPaths(tt.opts.IssuerPath) {
				served[p] = true
				status, got := getJSON(t, origin+p)
				if status != http.StatusOK {
					t.Errorf("GET %s: status %d, want 200", p, status)
					continue
				}
				if diff := cmp.Diff(tt.wantDoc(w), got); diff != "" {
					t.Errorf("GET %s: metadata mismatch (-want +got):\n%s", p, diff)
				}
			}
			for _, p := range allASWellKnown(tt.opts.IssuerPath) {
				if served[p] {
					continue
				}
				if resp, _ := get(t, origin+p); resp.StatusCode != http.StatusNotFound {
					t.Errorf("GET %s: status %d, want 404", p, resp.StatusCode)
				}
			}
			var wantURLs []string
			for _, p := range tt.wantPaths(tt.opts.IssuerPath) {
				wantURLs = append(wantURLs, origin+p)
			}
			if diff := cmp.Diff(wantURLs, w.MetadataURLs()); diff != "" {
				t.Errorf("MetadataURLs() mismatch (-want +got):\n%s", diff)
			}
			if got, want := w.Stats().MetadataRequests, len(served); got != want {
				t.Errorf("Stats().MetadataRequests = %d, want %d", got, want)
			}
		})
	}
}

// TestLegacyDefaultEndpoints: with MetadataNone and PRMNone the endpoints are
// /authorize, /token, /register at the RS origin (MCP 2025-03-26).
func TestLegacyDefaultEndpoints(t *testing.T) {
	w := startWorld(t, Options{Metadata: MetadataNone, PRM: PRMNone, DCR: true})
	if w.Issuer() != w.ResourceOrigin() {
		t.Fatalf("Issuer %q != ResourceOrigin %q", w.Issuer(), w.ResourceOrigin())
	}
	c := register(t, w, AuthMethodNone)
	tok := login(t, w, c, "")
	resp, _ := mcpPost(t, w, str(tok, "access_token"), rpc(1, "tools/list", nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tools/list: status %d", resp.StatusCode)
	}
	resp, _ = mcpPost(t, w, "", rpc(1, "tools/list", nil))
	if got := resp.Header.Get("WWW-Authenticate"); got != "Bearer" {
		t.Errorf("PRMNone challenge = %q, want %q", got, "Bearer")
	}
}

func TestPRMModes(t *testing.T) {
	const pathPRM = "/.well-known/oauth-protected-resource/mcp"
	const rootPRM = "/.well-known/oauth-protected-resource"
	tests := []struct {
		name          string
		opts          Options
		servedAt      string // "" = nowhere
		wantChallenge func(w *World) string
	}{
		{
			name:     "header",
			opts:     Options{PRM: PRMHeader, ScopesSupported: []string{"mcp:read", "mcp:write"}, ChallengeScope: "mcp:read"},
			servedAt: pathPRM,
			wantChallenge: func(w *World) string {
				return `Bearer resource_metadata="` + w.ResourceOrigin() + pathPRM + `", scope="mcp:read"`
			},
		},
		{
			name:          "path only",
			opts:          Options{PRM: PRMPathOnly},
			servedAt:      pathPRM,
			wantChallenge: func(*World) string { return "Bearer" },
		},
		{
			name:          "root only",
			opts:          Options{PRM: PRMRootOnly, ChallengeScope: "a b"},
			servedAt:      rootPRM,
			wantChallenge: func(*World) string { return `Bearer scope="a b"` },
		},
		{
			name:          "none",
			opts:          Options{PRM: PRMNone},
			wantChallenge: func(*World) string { return "Bearer" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := startWorld(t, tt.opts)
			resp, _ := mcpPost(t, w, "", rpc(1, "tools/list", nil))
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("no token: status %d, want 401", resp.StatusCode)
			}
			if diff := cmp.Diff(tt.wantChallenge(w), resp.Header.Get("WWW-Authenticate")); diff != "" {
				t.Errorf("challenge mismatch (-want +got):\n%s", diff)
			}
			wantURL := ""
			if tt.servedAt != "" {
				wantURL = w.ResourceOrigin() + tt.servedAt
			}
			if w.PRMURL() != wantURL {
				t.Errorf("PRMURL() = %q, want %q", w.PRMURL(), wantURL)
			}
			for _, p := range []string{pathPRM, rootPRM} {
				status, got := getJSON(t, w.ResourceOrigin()+p)
				if p != tt.servedAt {
					if status != http.StatusNotFound {
						t.Errorf("GET %s: status %d, want 404", p, status)
					}
					continue
				}
				want := map[string]any{
					"resource":                 w.MCPURL(),
					"authorization_servers":    []any{w.Issuer()},
					"bearer_methods_supported": []any{"header"},
				}
				if tt.opts.ScopesSupported != nil {
					want["scopes_supported"] = []any{"mcp:read", "mcp:write"}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("GET %s: PRM mismatch (-want +got):\n%s", p, diff)
				}
			}
			if tt.opts.PRM == PRMNone && w.AuthorizationServerOrigin() != w.ResourceOrigin() {
				t.Errorf("PRMNone: AS origin %q, want the RS origin %q", w.AuthorizationServerOrigin(), w.ResourceOrigin())
			}
			if tt.opts.PRM != PRMNone && w.AuthorizationServerOrigin() == w.ResourceOrigin() {
				t.Errorf("separate origins expected, both %q", w.ResourceOrigin())
			}
		})
	}
}

func TestMetadataFaults(t *testing.T) {
	w := startWorld(t, Options{})
	metaURL := w.MetadataURLs()[0]

	w.SetFault(Fault{MetadataIssuer: "https://evil.example", DropS256: true})
	_, got := getJSON(t, metaURL)
	if str(got, "issuer") != "https://evil.example" {
		t.Errorf("faulted issuer = %v", got["issuer"])
	}
	if _, ok := got["code_challenge_methods_supported"]; ok {
		t.Errorf("DropS256: code_challenge_methods_supported still present: %v", got)
	}
	_, got = getJSON(t, metaURL)
	if str(got, "issuer") != w.Issuer() {
		t.Errorf("fault not one-shot: issuer = %v", got["issuer"])
	}

	w.SetFault(Fault{PRMResource: "https://other.example/mcp", Sticky: true})
	for i := 0; i < 2; i++ {
		_, prm := getJSON(t, w.PRMURL())
		if str(prm, "resource") != "https://other.example/mcp" {
			t.Errorf("sticky PRM fault, fetch %d: resource = %v", i, prm["resource"])
		}
	}
	w.SetFault(Fault{PRMBody: []byte(`{"resource":`)})
	resp, body := get(t, w.PRMURL())
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), `{"resource":`) || len(body) != len(`{"resource":`) {
		t.Errorf("PRMBody override: %d %q", resp.StatusCode, body)
	}
	w.SetFault(Fault{})
	_, prm := getJSON(t, w.PRMURL())
	if str(prm, "resource") != w.MCPURL() {
		t.Errorf("after SetFault(Fault{}): resource = %v", prm["resource"])
	}
}
