package machine

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mcpauth/mcpauth/effects"
)

// The real-world corpus (testdata/real-world, see its MANIFEST.md and
// QUIRKS.md): every file gets a judgement here — accepted with its key
// fields checked, or refused with the typed error QUIRKS.md argues for.
// TestQuirksEveryFixtureJudged fails when a file is added without one.

const realWorld = "../testdata/real-world"

// judgement checks one fixture; data is the file's bytes.
type judgement func(t *testing.T, data []byte)

// Where the token and registration captures were recorded, and with which
// Content-Type (MANIFEST.md; "" where none was recorded).
const (
	ctJSON     = "application/json"
	ctJSONUTF8 = "application/json; charset=utf-8"
)

func quirkJudgements() map[string]judgement {
	return map[string]judgement{
		// Documentation, not captures.
		"MANIFEST.md":   documentation,
		"QUIRKS.md":     documentation,
		"manifest.json": documentation, // TestQuirksManifestListsEveryFixture checks it

		// --- protected resource metadata (RFC 9728) ---
		"asana/oauth-protected-resource.v2.json": func(t *testing.T, data []byte) {
			m := acceptPRM(t, data, "https://mcp.asana.com/v2/mcp", "https://app.asana.com")
			wantResourceMatch(t, m.Resource, "https://mcp.asana.com/v2/mcp", false, true)
			// served at .../oauth-protected-resource/v2, which
			// path insertion from the MCP URL cannot produce: only the
			// challenge's resource_metadata finds it.
			p, _, err := ResourceMetadataURLs("https://mcp.asana.com/v2/mcp")
			if err != nil || p == "https://mcp.asana.com/.well-known/oauth-protected-resource/v2" {
				t.Errorf("ResourceMetadataURLs = %q, %v", p, err)
			}
		},
		"canva/oauth-protected-resource.json": func(t *testing.T, data []byte) {
			m := acceptPRM(t, data, "https://mcp.canva.com", "https://mcp.canva.com")
			// Q-15, D-02: the root PRM names the origin; it identifies
			// https://mcp.canva.com/mcp only in prefix mode.
			wantResourceMatch(t, m.Resource, "https://mcp.canva.com/mcp", false, false)
			wantResourceMatch(t, m.Resource, "https://mcp.canva.com/mcp", true, true)
			wantResourceMatch(t, m.Resource, "https://mcp.canva.com/", false, true) // Q-01 empty path == "/"
		},
		"gitlab/oauth-protected-resource.api-v4-mcp.json": func(t *testing.T, data []byte) {
			m := acceptPRM(t, data, "https://gitlab.com/api/v4/mcp", "https://gitlab.com")
			wantResourceMatch(t, m.Resource, "https://gitlab.com/api/v4/mcp", false, true)
			// Q-15 (MANIFEST note, github/copilot-cli#4439): self-managed
			// GitLab served the same document with resource as an ARRAY.
			// That variant is refused, never read as its first element.
			variant := strings.Replace(string(data), `"resource":"https://gitlab.com/api/v4/mcp"`, `"resource":["https://gitlab.example.com/api/v4/mcp"]`, 1)
			if variant == string(data) {
				t.Fatal("fixture changed: cannot build the array variant")
			}
			_, err := ParseResourceMetadata([]byte(variant))
			wantMalformed(t, err, "protected resource metadata", "resource")
		},
		"google/oauth-protected-resource.calendarmcp.json": func(t *testing.T, data []byte) {
			m := acceptPRM(t, data, "https://calendarmcp.googleapis.com/mcp/v1", "https://accounts.google.com/")
			wantResourceMatch(t, m.Resource, "https://calendarmcp.googleapis.com/mcp/v1", false, true)
			// the PRM names "https://accounts.google.com/", Google's
			// metadata says "https://accounts.google.com": equal only with
			// the empty-path tolerance.
			issuer := readServerMetadata(t, "google/openid-configuration.json").Issuer
			if IssuerMatches(issuer, m.AuthorizationServers[0], false) {
				t.Errorf("IssuerMatches(%q, %q, strict) = true", issuer, m.AuthorizationServers[0])
			}
			if !IssuerMatches(issuer, m.AuthorizationServers[0], true) {
				t.Errorf("IssuerMatches(%q, %q, tolerant) = false", issuer, m.AuthorizationServers[0])
			}
		},
		"sentry/oauth-protected-resource.json": func(t *testing.T, data []byte) {
			m := acceptPRM(t, data, "https://mcp.sentry.dev/mcp", "https://mcp.sentry.dev")
			wantResourceMatch(t, m.Resource, "https://mcp.sentry.dev/mcp", false, true)
			// A-PRM-03: it was fetched from the path-inserted URL.
			p, _, err := ResourceMetadataURLs("https://mcp.sentry.dev/mcp")
			if want := "https://mcp.sentry.dev/.well-known/oauth-protected-resource/mcp"; err != nil || p != want {
				t.Errorf("ResourceMetadataURLs = %q, %v; want %q", p, err, want)
			}
			issuer := readServerMetadata(t, "sentry/oauth-authorization-server.json").Issuer
			if !IssuerMatches(issuer, m.AuthorizationServers[0], false) {
				t.Errorf("sentry issuer %q != PRM %q", issuer, m.AuthorizationServers[0])
			}
		},
		"vercel/oauth-protected-resource.root.json": func(t *testing.T, data []byte) {
			m := acceptPRM(t, data, "https://mcp.vercel.com/", "https://vercel.com")
			// the transport lives at "/": exact match there.
			wantResourceMatch(t, m.Resource, "https://mcp.vercel.com/", false, true)
			wantResourceMatch(t, m.Resource, "https://mcp.vercel.com", false, true)
			wantResourceMatch(t, m.Resource, "https://mcp.vercel.com/mcp", false, false)
			wantResourceMatch(t, m.Resource, "https://mcp.vercel.com/mcp", true, true)
		},
		"vercel/oauth-protected-resource.mcp.json": func(t *testing.T, data []byte) {
			m := acceptPRM(t, data, "https://mcp.vercel.com/mcp", "https://vercel.com")
			// this PRM echoes the requested path; it does not
			// identify the transport at "/", not even in prefix mode.
			wantResourceMatch(t, m.Resource, "https://mcp.vercel.com/", true, false)
			wantResourceMatch(t, m.Resource, "https://mcp.vercel.com/mcp", false, true)
		},

		// --- authorization server metadata (RFC 8414 / OIDC Discovery) ---
		"apple/openid-configuration.json":                             acceptASM("https://appleid.apple.com", false),
		"asana/oauth-authorization-server.app.asana.com.json":         acceptASM("https://app.asana.com", true, noRegistration),
		"auth0/openid-configuration.dev-tenant.redpanda.json":         acceptASM("https://dev-ltxchcls4igzho78.us.auth0.com/", true, rootCandidates),
		"auth0/openid-configuration.samples-tenant.apisix.json":       acceptASM("https://samples.auth0.com/", true, rootCandidates),
		"authentik/openid-configuration.json":                         acceptASM("https://auth.hanse.de/application/o/git/", true, pathCandidates("/application/o/git")),
		"canva/oauth-authorization-server.json":                       acceptASM("https://mcp.canva.com", true, cimd),
		"clerk/oauth-authorization-server.dev-instance.json":          acceptASM("https://native-hippo-15.clerk.accounts.dev", true),
		"cognito/openid-configuration.2016-user-pool.json":            acceptASM("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_BGU9CKFCM", false, noTokenEndpoint),
		"cognito/openid-configuration.user-pool-recent.json":          acceptASM("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_FDyGrrjP6", false, noRegistration),
		"cyberark-identity/openid-configuration.json":                 acceptASM("https://redacted-host/redacted_app/", true, pathCandidates("/redacted_app")),
		"discord/openid-configuration.json":                           acceptASM("https://discord.com", false),
		"docker/openid-configuration.json":                            acceptASM("https://login.docker.com/", true, rootCandidates),
		"facebook/openid-configuration.json":                          acceptASM("https://www.facebook.com", false, authzOtherOrigin),
		"gitlab/openid-configuration.json":                            acceptASM("https://gitlab.com", true, noRegistration),
		"google/openid-configuration.json":                            acceptASM("https://accounts.google.com", true, tokenOtherOrigin),
		"google/openid-configuration.py_simple_openid_connect.json":   acceptASM("https://accounts.google.com", true, tokenOtherOrigin),
		"klarna/openid-configuration.json":                            acceptASM("https://login.klarna.com", true),
		"lego/openid-configuration.json":                              acceptASM("https://identity.lego.com", true, issParameter),
		"microsoft-entra/openid-configuration.tenant-v2.0.json":       acceptASM("https://login.microsoftonline.com/aaaaa/v2.0", false, noRegistration, pathCandidates("/aaaaa/v2.0")),
		"mojeid/openid-configuration.json":                            acceptASM("https://mojeid.cz/oidc/", false, pathCandidates("/oidc")),
		"okta/openid-configuration.custom-as-default.conjur.json":     acceptASM("https://dev-92899796.okta.com/oauth2/default", true, pathCandidates("/oauth2/default")),
		"okta/openid-configuration.custom-as-default.integrator.json": acceptASM("https://integrator-7886904.okta.com/oauth2/default", true, pathCandidates("/oauth2/default")),
		"salesforce/openid-configuration.json":                        acceptASM("https://login.salesforce.com", false, noRegistration),
		"sentry/oauth-authorization-server.json":                      acceptASM("https://mcp.sentry.dev", true, cimd, issParameter),
		"spotify/openid-configuration.json":                           acceptASM("https://accounts.spotify.com", true),
		"vercel/oauth-authorization-server.json":                      acceptASM("https://vercel.com", true, registrationOtherOrigin),
		"verimi/openid-configuration.json":                            acceptASM("https://web.verimi.de", true),
		"yahoo/openid-configuration.json":                             acceptASM("https://api.login.yahoo.com", false),
		// the issuer is a template that equals no URL: refused.
		"microsoft-entra/openid-configuration.common-v2.0.json":        refuseASMTemplate,
		"microsoft-entra/openid-configuration.organizations-v2.0.json": refuseASMTemplate,
		// PARTIAL quotes (MANIFEST.md): truncated JSON is refused whole,
		// never half-used.
		"clerk/oauth-authorization-server.docs-example-partial.txt": refuseTruncatedASM,
		"stytch/oauth-authorization-server.txt":                     refuseTruncatedASM,
		"ory-hydra/openid-configuration.txt": func(t *testing.T, data []byte) {
			refuseTruncatedASM(t, data)
			// What the quote does show: a loopback http issuer with a
			// trailing slash passes the URL policy (E-66), and the
			// well-known URLs are built without the slash.
			const issuer = "http://localhost:4444/"
			wantContains(t, data, `"issuer": "`+issuer+`"`)
			if err := CheckSecureURL(issuer); err != nil {
				t.Error(err)
			}
			rootCandidates(t, effects.ServerMetadata{Issuer: issuer})
		},
		"expo/oauth-authorization-server.issuer-vs-prm-quote.txt": func(t *testing.T, data []byte) {
			// Prose quoting two values (Q-01, the mirror image of Google):
			// PRM "https://mcp.expo.dev", issuer "https://mcp.expo.dev/".
			const prm, issuer = "https://mcp.expo.dev", "https://mcp.expo.dev/"
			wantContains(t, data, "`[\""+prm+"\"]`")
			wantContains(t, data, "`\""+issuer+"\"`")
			if IssuerMatches(issuer, prm, false) || !IssuerMatches(issuer, prm, true) {
				t.Errorf("IssuerMatches(%q, %q): want false strict, true tolerant", issuer, prm)
			}
		},

		// --- WWW-Authenticate captures (RFC 9110 §11.6.1) ---
		"sentry/www-authenticate.txt": func(t *testing.T, data []byte) {
			c := bearerFrom(t, strings.TrimSpace(string(data)))
			want := map[string]string{"realm": "OAuth", "resource_metadata": "https://mcp.sentry.dev/.well-known/oauth-protected-resource/mcp"}
			if diff := cmp.Diff(want, c.Params); diff != "" {
				t.Errorf("sentry challenge mismatch (-want +got):\n%s", diff)
			}
		},
		"asana/www-authenticate.txt": func(t *testing.T, data []byte) {
			headers := headerValues(string(data))
			want := []map[string]string{
				{"realm": "Asana MCP", "resource_metadata": "https://mcp.asana.com/.well-known/oauth-protected-resource/v2"},
				{"realm": "Asana MCP", "resource_metadata": "https://mcp.asana.com/.well-known/oauth-protected-resource/v2",
					"error": "invalid_token", "error_description": "Invalid token signature - token was not issued by Asana OAuth"},
				{"realm": "OAuth", "error": "invalid_token", "error_description": "Missing or invalid access token",
					"resource_metadata": "https://mcp.asana.com/.well-known/oauth-protected-resource"},
			}
			var got []map[string]string
			for _, h := range headers {
				got = append(got, bearerFrom(t, h).Params)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("asana challenges mismatch (-want +got):\n%s", diff)
			}
		},
		"canva/www-authenticate.txt": func(t *testing.T, data []byte) {
			// PARTIAL: the source elided trailing parameters with "…",
			// which is not RFC 9110 syntax: the strict parser refuses the
			// quotes as they are (E-28: fall back to well-known
			// discovery). With the elision removed they parse: Notion,
			// Linear and Canva point resource_metadata at the path-suffixed
			// PRM and send error="invalid_token" on a tokenless request
			//
			headers := headerValues(string(data))
			// The last quote is a comment line without the field name.
			const tokenless = "later version): "
			i := strings.Index(string(data), tokenless)
			if i < 0 {
				t.Fatal("fixture changed: tokenless quote not found")
			}
			line, _, _ := strings.Cut(string(data)[i+len(tokenless):], "\n")
			headers = append(headers, strings.TrimSpace(line))
			if len(headers) != 4 {
				t.Fatalf("found %d header values, want 4: %q", len(headers), headers)
			}
			for i, h := range headers {
				elided := strings.HasSuffix(h, "…")
				_, err := ParseChallenges([]string{h})
				if elided {
					var ce *ChallengeError
					if !errors.As(err, &ce) {
						t.Errorf("header %d with the elision: err = %v, want *ChallengeError", i, err)
					}
					h = strings.TrimSuffix(strings.TrimSpace(strings.TrimSuffix(h, "…")), ",")
				}
				c := bearerFrom(t, h)
				if c.Params["error"] != "invalid_token" || c.Params["realm"] != "OAuth" {
					t.Errorf("header %d: params %v", i, c.Params)
				}
				if rm, ok := c.Params["resource_metadata"]; ok && !strings.HasSuffix(rm, "/.well-known/oauth-protected-resource/mcp") {
					t.Errorf("header %d: resource_metadata %q", i, rm)
				}
			}
		},

		// --- token responses (RFC 6749 §5) ---
		"okta/token-response-example.authorization_code-success.json": func(t *testing.T, data []byte) {
			tr := acceptToken(t, 200, ctJSON, data)
			if tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 || !tr.HasExpiresIn || tr.Scope != "email profile openid" ||
				tr.IDToken == "" || tr.RefreshToken != "" || !strings.HasPrefix(tr.AccessToken, "eyJ") {
				t.Errorf("okta token: %+v", redactedToken(tr))
			}
		},
		"microsoft-entra/token-response-example.v2-client_credentials.json": func(t *testing.T, data []byte) {
			tr := acceptToken(t, 200, ctJSONUTF8, data)
			want := TokenResponse{AccessToken: "access_token", TokenType: "Bearer", ExpiresIn: 86399, HasExpiresIn: true}
			if diff := cmp.Diff(want, tr); diff != "" {
				t.Errorf("Entra v2 token mismatch (-want +got):\n%s", diff)
			}
		},
		"microsoft-entra/token-response-example.v1-string-expires_in.json": func(t *testing.T, data []byte) {
			// expires_in "3599" is a digit string: accepted.
			tr := acceptToken(t, 200, ctJSONUTF8, data)
			want := TokenResponse{AccessToken: "<myToken>", TokenType: "Bearer", ExpiresIn: 3599, HasExpiresIn: true}
			if diff := cmp.Diff(want, tr); diff != "" {
				t.Errorf("Entra v1 token mismatch (-want +got):\n%s", diff)
			}
		},
		"salesforce/token-response-example.password-grant.json": func(t *testing.T, data []byte) {
			// Q-22 no expires_in: unknown lifetime; Q-23 extra members.
			tr := acceptToken(t, 200, ctJSON, data)
			want := TokenResponse{AccessToken: "XXXX", TokenType: "Bearer"}
			if diff := cmp.Diff(want, tr); diff != "" {
				t.Errorf("Salesforce token mismatch (-want +got):\n%s", diff)
			}
		},
		"okta/token-response-example.error-expired-code.json":                    invalidGrant(ctJSON, "The authorization code is invalid or has expired."),
		"okta/token-response-example.error-used-code.json":                       invalidGrant(ctJSON, "The authorization code is invalid or has expired."),
		"okta/token-response-example.error-pkce-verification-failed.json":        invalidGrant(ctJSON, "PKCE verification failed."),
		"cyberark-identity/token-response-example.error-challenge-mismatch.json": invalidGrant("", "challenge mismatch"),
		"cyberark-identity/token-response-example.error-used-code.json":          invalidGrant("", "supplied code does not match known request"),

		// --- registration responses (RFC 7591) ---
		"vercel/registration-response-example.json": func(t *testing.T, data []byte) {
			// asked client_secret_post, got a public client.
			c, err := ParseRegistrationResponse(201, ctJSON, data)
			if err != nil {
				t.Fatal(err)
			}
			want := RegisteredClient{
				ClientID: "cl_WbdtcToDrMR4ZHvXLGAmbfoYCsQjMeS8", TokenEndpointAuthMethod: "none",
				RedirectURIs: []string{"http://127.0.0.1:8090/api/v1/oauth-callback/remote"},
				GrantTypes:   []string{"authorization_code", "refresh_token"},
			}
			if diff := cmp.Diff(want, c); diff != "" {
				t.Errorf("Vercel registration mismatch (-want +got):\n%s", diff)
			}
		},
	}
}

func TestQuirksRealWorld(t *testing.T) {
	for name, judge := range quirkJudgements() {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(realWorld, filepath.FromSlash(name)))
			if err != nil {
				t.Fatalf("fixture has a judgement but cannot be read: %v", err)
			}
			judge(t, data)
		})
	}
}

// A file added to testdata/real-world without a judgement fails here.
func TestQuirksEveryFixtureJudged(t *testing.T) {
	judged := quirkJudgements()
	var files []string
	err := filepath.WalkDir(realWorld, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(realWorld, path)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := judged[f]; !ok {
			t.Errorf("%s has no judgement in quirkJudgements (accept it with its key fields, or refuse it with a typed error)", f)
		}
	}
	for f := range judged {
		if !slices.Contains(files, f) {
			t.Errorf("judgement for %s, which is not in %s", f, realWorld)
		}
	}
}

// manifest.json lists exactly the captures.
func TestQuirksManifestListsEveryFixture(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(realWorld, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []struct{ File string }
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, e := range entries {
		listed = append(listed, e.File)
	}
	var captures []string
	for f := range quirkJudgements() {
		if !isDocumentation(f) {
			captures = append(captures, f)
		}
	}
	slices.Sort(listed)
	slices.Sort(captures)
	if diff := cmp.Diff(captures, listed); diff != "" {
		t.Errorf("manifest.json vs judged captures (-judged +manifest):\n%s", diff)
	}
}

// Quirks whose captures QUIRKS.md cites but the corpus does not include
// (GitHub, Slack, Keycloak). The bodies are reconstructed from the shapes
// QUIRKS.md and GitHub's documentation describe, not captures.
func TestQuirksWithoutFixtures(t *testing.T) {
	t.Run("Q-17 GitHub form-encoded success", func(t *testing.T) {
		tr := acceptToken(t, 200, "application/x-www-form-urlencoded; charset=utf-8",
			[]byte("access_token=e72e16c7e42f292c6912e7710c838347ae178b4a&scope=user%2Cgist&token_type=bearer"))
		want := TokenResponse{AccessToken: "e72e16c7e42f292c6912e7710c838347ae178b4a", TokenType: "Bearer", Scope: "user,gist"}
		if diff := cmp.Diff(want, tr); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("Q-17 GitHub App refresh without Accept: form-encoded invalid_grant with HTTP 200", func(t *testing.T) {
		_, err := ParseTokenResponse(200, "application/x-www-form-urlencoded",
			[]byte("error=invalid_grant&error_description=The+refresh+token+passed+is+incorrect+or+expired.&error_uri=https%3A%2F%2Fdocs.github.com"))
		oe := wantOAuthError(t, err, 200, "invalid_grant")
		if !oe.InvalidGrant() || oe.Transient() {
			t.Errorf("%+v: want InvalidGrant and not Transient", oe)
		}
	})
	t.Run("Q-18 GitHub HTTP-200 error", func(t *testing.T) {
		_, err := ParseTokenResponse(200, ctJSONUTF8,
			[]byte(`{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired.","error_uri":"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"}`))
		wantOAuthError(t, err, 200, "bad_verification_code")
	})
	t.Run("Q-18 Slack ok:false", func(t *testing.T) {
		_, err := ParseTokenResponse(200, ctJSONUTF8, []byte(`{"ok":false,"error":"invalid_code"}`))
		wantOAuthError(t, err, 200, "invalid_code")
	})
	t.Run("Q-19 relative error_uri kept for display only", func(t *testing.T) {
		_, err := ParseTokenResponse(200, ctJSON, []byte(`{"error":"incorrect_client_credentials","error_description":"The client_id and/or client_secret passed are incorrect.","error_uri":"/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials"}`))
		oe := wantOAuthError(t, err, 200, "incorrect_client_credentials")
		if !strings.HasPrefix(oe.URI, "/apps/") {
			t.Errorf("URI = %q", oe.URI)
		}
	})
	t.Run("Q-21 Keycloak lower-case bearer", func(t *testing.T) {
		tr := acceptToken(t, 200, ctJSON, []byte(`{"access_token":"eyJ.x.y","expires_in":300,"refresh_expires_in":1800,"refresh_token":"eyJ.r.s","token_type":"bearer","not-before-policy":0,"session_state":"abc","scope":"profile email"}`))
		if tr.TokenType != "Bearer" {
			t.Errorf("TokenType = %q", tr.TokenType)
		}
	})
	t.Run("Q-21 Slack token_type bot refused", func(t *testing.T) {
		_, err := ParseTokenResponse(200, ctJSON, []byte(`{"ok":true,"access_token":"xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy","token_type":"bot","scope":"commands,incoming-webhook"}`))
		wantMalformed(t, err, "token response", "token_type")
	})
	t.Run("Q-30 doubled JSON content type on a PRM-shaped token body", func(t *testing.T) {
		acceptToken(t, 200, "application/json, application/json", []byte(`{"access_token":"a","token_type":"Bearer"}`))
	})
}

// --- judgement helpers ---

func documentation(*testing.T, []byte) {}

// isDocumentation reports whether a corpus file is documentation.
func isDocumentation(name string) bool {
	return name == "MANIFEST.md" || name == "QUIRKS.md" || name == "manifest.json"
}

func acceptPRM(t *testing.T, data []byte, resource string, servers ...string) effects.ResourceMetadata {
	t.Helper()
	m, err := ParseResourceMetadata(data)
	if err != nil {
		t.Fatalf("ParseResourceMetadata: %v", err)
	}
	if m.Resource != resource {
		t.Errorf("Resource = %q, want %q (verbatim)", m.Resource, resource)
	}
	if diff := cmp.Diff(servers, m.AuthorizationServers); diff != "" {
		t.Errorf("AuthorizationServers mismatch (-want +got):\n%s", diff)
	}
	return m
}

func wantResourceMatch(t *testing.T, resource, server string, prefix, want bool) {
	t.Helper()
	err := ResourceMatches(resource, server, prefix)
	if (err == nil) != want {
		t.Errorf("ResourceMatches(%q, %q, prefix=%v) = %v, want match=%v", resource, server, prefix, err, want)
	}
}

// asmCheck is an extra check on an accepted metadata document.
type asmCheck func(t *testing.T, m effects.ServerMetadata)

// acceptASM accepts a metadata document with the given issuer (verbatim)
// and the given PKCE verdict: SupportsS256 false is Q-07 (the flow refuses
// unless configured otherwise).
func acceptASM(issuer string, s256 bool, checks ...asmCheck) judgement {
	return func(t *testing.T, data []byte) {
		m, err := ParseServerMetadata(data)
		if err != nil {
			t.Fatalf("ParseServerMetadata: %v", err)
		}
		if m.Issuer != issuer {
			t.Errorf("Issuer = %q, want %q", m.Issuer, issuer)
		}
		if !IssuerMatches(m.Issuer, issuer, false) {
			t.Errorf("A-ASM-06: issuer does not match itself")
		}
		if got := SupportsS256(m); got != s256 {
			t.Errorf("SupportsS256 = %v, want %v (Q-07/Q-08)", got, s256)
		}
		if m.TokenEndpoint != "" {
			if err := CheckSecureURL(m.TokenEndpoint); err != nil {
				t.Errorf("token endpoint: %v", err)
			}
		}
		for _, c := range checks {
			c(t, m)
		}
	}
}

func noRegistration(t *testing.T, m effects.ServerMetadata) {
	if m.RegistrationEndpoint != "" {
		t.Errorf("RegistrationEndpoint = %q, want none (Q-10)", m.RegistrationEndpoint)
	}
}

func noTokenEndpoint(t *testing.T, m effects.ServerMetadata) {
	if m.TokenEndpoint != "" || m.AuthorizationEndpoint != m.Issuer {
		t.Errorf("2016 Cognito: token %q, authorization %q", m.TokenEndpoint, m.AuthorizationEndpoint)
	}
}

func cimd(t *testing.T, m effects.ServerMetadata) {
	if !m.ClientIDMetadataDocumentSupported {
		t.Error("ClientIDMetadataDocumentSupported = false (Q-11)")
	}
}

func issParameter(t *testing.T, m effects.ServerMetadata) {
	if !m.AuthorizationResponseIssParameterSupported {
		t.Error("AuthorizationResponseIssParameterSupported = false (Q-14)")
	}
}

func authzOtherOrigin(t *testing.T, m effects.ServerMetadata) {
	if SameOrigin(m.Issuer, m.AuthorizationEndpoint) {
		t.Errorf("authorization endpoint %q on the issuer's origin", m.AuthorizationEndpoint)
	}
}

func tokenOtherOrigin(t *testing.T, m effects.ServerMetadata) {
	if SameOrigin(m.Issuer, m.TokenEndpoint) {
		t.Errorf("token endpoint %q on the issuer's origin", m.TokenEndpoint)
	}
}

func registrationOtherOrigin(t *testing.T, m effects.ServerMetadata) {
	if m.RegistrationEndpoint == "" || SameOrigin(m.Issuer, m.RegistrationEndpoint) {
		t.Errorf("registration endpoint %q", m.RegistrationEndpoint)
	}
	if slices.Contains(m.TokenEndpointAuthMethodsSupported, "none") {
		t.Error(`"none" listed (Q-13 says it is not)`)
	}
}

// rootCandidates: Q-02, an issuer whose path is only "/" is an issuer
// without path for building the well-known URLs.
func rootCandidates(t *testing.T, m effects.ServerMetadata) {
	got, err := ServerMetadataURLs(m.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	origin := strings.TrimSuffix(m.Issuer, "/")
	want := []string{origin + "/.well-known/oauth-authorization-server", origin + "/.well-known/openid-configuration"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ServerMetadataURLs(%q) mismatch (-want +got):\n%s", m.Issuer, diff)
	}
}

// pathCandidates: Q-05, A-ASM-03: three candidates, never the root.
func pathCandidates(path string) asmCheck {
	return func(t *testing.T, m effects.ServerMetadata) {
		got, err := ServerMetadataURLs(m.Issuer)
		if err != nil {
			t.Fatal(err)
		}
		origin := strings.TrimSuffix(strings.TrimSuffix(m.Issuer, "/"), path)
		want := []string{
			origin + "/.well-known/oauth-authorization-server" + path,
			origin + "/.well-known/openid-configuration" + path,
			origin + path + "/.well-known/openid-configuration",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ServerMetadataURLs(%q) mismatch (-want +got):\n%s", m.Issuer, diff)
		}
	}
}

func refuseASMTemplate(t *testing.T, data []byte) {
	_, err := ParseServerMetadata(data)
	wantMalformed(t, err, "authorization server metadata", "issuer")
}

func refuseTruncatedASM(t *testing.T, data []byte) {
	m, err := ParseServerMetadata(data)
	wantMalformed(t, err, "authorization server metadata", "")
	if diff := cmp.Diff(effects.ServerMetadata{}, m); diff != "" {
		t.Errorf("truncated document half-used (-want +got):\n%s", diff)
	}
}

func readServerMetadata(t *testing.T, name string) effects.ServerMetadata {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(realWorld, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseServerMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func acceptToken(t *testing.T, status int, ct string, data []byte) TokenResponse {
	t.Helper()
	tr, err := ParseTokenResponse(status, ct, data)
	if err != nil {
		t.Fatalf("ParseTokenResponse: %v", err)
	}
	return tr
}

// invalidGrant: an RFC 6749 §5.2 error recorded with HTTP 400.
func invalidGrant(ct, description string) judgement {
	return func(t *testing.T, data []byte) {
		_, err := ParseTokenResponse(400, ct, data)
		oe := wantOAuthError(t, err, 400, "invalid_grant")
		if oe.Description != description || !oe.InvalidGrant() || oe.Transient() {
			t.Errorf("%+v: want description %q, InvalidGrant, not Transient", oe, description)
		}
	}
}

func wantOAuthError(t *testing.T, err error, status int, code string) *OAuthError {
	t.Helper()
	var oe *OAuthError
	if !errors.As(err, &oe) {
		t.Fatalf("err = %v, want *OAuthError", err)
	}
	if oe.Status != status || oe.Code != code {
		t.Errorf("OAuthError %+v, want status %d code %q", oe, status, code)
	}
	return oe
}

func wantMalformed(t *testing.T, err error, doc, field string) {
	t.Helper()
	var me *MalformedError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v, want *MalformedError", err)
	}
	if me.Document != doc || me.Field != field {
		t.Errorf("MalformedError %+v, want document %q field %q", me, doc, field)
	}
}

func wantContains(t *testing.T, data []byte, s string) {
	t.Helper()
	if !strings.Contains(string(data), s) {
		t.Fatalf("fixture changed: %q not found", s)
	}
}

func bearerFrom(t *testing.T, header string) Challenge {
	t.Helper()
	cs, err := ParseChallenges([]string{header})
	if err != nil {
		t.Fatalf("ParseChallenges(%q): %v", header, err)
	}
	c, ok := BearerChallenge(cs)
	if !ok {
		t.Fatalf("no bearer challenge in %q", header)
	}
	return c
}

// headerValues extracts WWW-Authenticate values from a quoted capture: the
// text after "www-authenticate:" (any case), joined with the indented
// continuation lines the quoting author wrapped it into, each unfolded to
// one SP as RFC 9112 §5.2 does for obs-fold.
func headerValues(text string) []string {
	var out []string
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		idx := strings.Index(strings.ToLower(lines[i]), "www-authenticate:")
		if idx < 0 {
			continue
		}
		v := strings.TrimSpace(lines[i][idx+len("www-authenticate:"):])
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], " ") && strings.TrimSpace(lines[i+1]) != "" &&
			!strings.Contains(strings.ToLower(lines[i+1]), "www-authenticate:") {
			i++
			v += " " + strings.TrimSpace(lines[i])
		}
		out = append(out, v)
	}
	return out
}

// redactedToken hides the secrets of a token response in test output.
func redactedToken(tr TokenResponse) TokenResponse {
	if tr.AccessToken != "" {
		tr.AccessToken = "(redacted)"
	}
	if tr.RefreshToken != "" {
		tr.RefreshToken = "(redacted)"
	}
	if tr.IDToken != "" {
		tr.IDToken = "(redacted)"
	}
	return tr
}
