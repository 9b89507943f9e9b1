package machine

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mcpauth/mcpauth/effects"
)

func TestParseServerMetadata(t *testing.T) {
	tests := []struct {
		name, body string
		want       effects.ServerMetadata
	}{
		{
			name: "RFC 8414 §2 every member the client reads",
			body: `{
				"issuer":"https://as.example.com",
				"authorization_endpoint":"https://as.example.com/authorize?tenant=a",
				"token_endpoint":"https://tokens.example.net/token",
				"registration_endpoint":"https://as.example.com/register",
				"revocation_endpoint":"https://as.example.com/revoke",
				"scopes_supported":["openid","offline_access"],
				"response_types_supported":["code"],
				"grant_types_supported":["authorization_code","refresh_token"],
				"code_challenge_methods_supported":["S256"],
				"token_endpoint_auth_methods_supported":["none","client_secret_basic"],
				"token_endpoint_auth_signing_alg_values_supported":["RS256"],
				"dpop_signing_alg_values_supported":["ES256"],
				"client_id_metadata_document_supported":true,
				"authorization_response_iss_parameter_supported":true,
				"response_modes_supported":["web_message.opener"],
				"x_vendor":{"nested":[null]}
			}`,
			want: effects.ServerMetadata{
				Issuer:                                     "https://as.example.com",
				AuthorizationEndpoint:                      "https://as.example.com/authorize?tenant=a", // B-6749-12 query kept
				TokenEndpoint:                              "https://tokens.example.net/token",          // Q-06 other host is fine
				RegistrationEndpoint:                       "https://as.example.com/register",
				RevocationEndpoint:                         "https://as.example.com/revoke",
				ScopesSupported:                            []string{"openid", "offline_access"},
				ResponseTypesSupported:                     []string{"code"},
				GrantTypesSupported:                        []string{"authorization_code", "refresh_token"},
				CodeChallengeMethodsSupported:              []string{"S256"},
				TokenEndpointAuthMethodsSupported:          []string{"none", "client_secret_basic"},
				TokenEndpointAuthSigningAlgValuesSupported: []string{"RS256"},
				DPoPSigningAlgValuesSupported:              []string{"ES256"},
				ClientIDMetadataDocumentSupported:          true,
				AuthorizationResponseIssParameterSupported: true,
			},
		},
		{
			name: "Q-29 only the issuer: missing endpoints are the flow's concern",
			body: `{"issuer":"https://cognito-idp.us-east-1.amazonaws.com/us-east-1_X"}`,
			want: effects.ServerMetadata{Issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_X"},
		},
		{
			name: "Q-02 issuer kept byte-exact with its trailing slash",
			body: `{"issuer":"https://tenant.auth0.com/","token_endpoint":"https://tenant.auth0.com/oauth/token"}`,
			want: effects.ServerMetadata{Issuer: "https://tenant.auth0.com/", TokenEndpoint: "https://tenant.auth0.com/oauth/token"},
		},
		{
			name: "Q-25 nulls are absent",
			body: `{"issuer":"https://as.example","token_endpoint":null,"scopes_supported":null,"client_id_metadata_document_supported":null,"tenant_region_scope":null}`,
			want: effects.ServerMetadata{Issuer: "https://as.example"},
		},
		{
			name: "E-66 loopback http issuer and endpoints",
			body: `{"issuer":"http://localhost:4444/","token_endpoint":"http://localhost:4444/oauth2/token"}`,
			want: effects.ServerMetadata{Issuer: "http://localhost:4444/", TokenEndpoint: "http://localhost:4444/oauth2/token"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseServerMetadata([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseServerMetadata mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseServerMetadataRefuses(t *testing.T) {
	const iss = `"issuer":"https://as.example"`
	tests := []struct {
		name, body, field string
	}{
		{"E-16 no issuer", `{"token_endpoint":"https://as.example/t"}`, "issuer"},
		{"E-16 empty issuer", `{"issuer":""}`, "issuer"},
		{"E-16 null issuer", `{"issuer":null}`, "issuer"},
		{"issuer as an array", `{"issuer":["https://as.example"]}`, "issuer"},
		{"Q-03 templated issuer (Entra common)", `{"issuer":"https://login.microsoftonline.com/{tenantid}/v2.0"}`, "issuer"},
		{"E-32 issuer with a query", `{"issuer":"https://as.example?x"}`, "issuer"},
		{"E-32 issuer with an empty query", `{"issuer":"https://as.example/?"}`, "issuer"},
		{"E-32 issuer with a fragment", `{"issuer":"https://as.example#x"}`, "issuer"},
		{"E-32 http issuer", `{"issuer":"http://as.example"}`, "issuer"},
		{"relative issuer", `{"issuer":"/as"}`, "issuer"},
		{"E-13 duplicate issuer", `{"issuer":"https://good.example","issuer":"https://evil.example"}`, "issuer"},
		{"E-14 Issuer", `{` + iss + `,"Issuer":"https://evil.example"}`, "issuer"},
		{"E-14 Token_Endpoint", `{` + iss + `,"Token_Endpoint":"https://evil.example/t"}`, "token_endpoint"},
		{"E-36 javascript endpoint", `{` + iss + `,"authorization_endpoint":"javascript:alert(1)"}`, "authorization_endpoint"},
		{"E-36 data endpoint", `{` + iss + `,"token_endpoint":"data:text/plain,x"}`, "token_endpoint"},
		{"E-36 file endpoint", `{` + iss + `,"token_endpoint":"file:///etc/passwd"}`, "token_endpoint"},
		{"E-36 relative endpoint", `{` + iss + `,"token_endpoint":"/token"}`, "token_endpoint"},
		{"E-36 fragment", `{` + iss + `,"registration_endpoint":"https://as.example/r#x"}`, "registration_endpoint"},
		{"E-36 userinfo", `{` + iss + `,"revocation_endpoint":"https://u:p@as.example/r"}`, "revocation_endpoint"},
		{"endpoint as a number", `{` + iss + `,"token_endpoint":1}`, "token_endpoint"},
		{"E-34 code_challenge_methods_supported as a string", `{` + iss + `,"code_challenge_methods_supported":"S256"}`, "code_challenge_methods_supported"},
		{"E-15 scopes_supported as a string", `{` + iss + `,"scopes_supported":"openid"}`, "scopes_supported"},
		{"response_types_supported with a number", `{` + iss + `,"response_types_supported":["code",1]}`, "response_types_supported"},
		{"E-39 client_id_metadata_document_supported as a string", `{` + iss + `,"client_id_metadata_document_supported":"true"}`, "client_id_metadata_document_supported"},
		{"E-39 authorization_response_iss_parameter_supported as a number", `{` + iss + `,"authorization_response_iss_parameter_supported":1}`, "authorization_response_iss_parameter_supported"},
		{"E-12 not an object", `"https://as.example"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseServerMetadata([]byte(tt.body))
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("got %+v, %v; want *MalformedError", got, err)
			}
			want := &MalformedError{Document: "authorization server metadata", Field: tt.field, Reason: me.Reason}
			if diff := cmp.Diff(want, me); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(effects.ServerMetadata{}, got); diff != "" {
				t.Errorf("a refused document returned data (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSupportsS256(t *testing.T) {
	tests := []struct {
		name    string
		methods []string
		want    bool
	}{
		{"A-PKCE-05 absent (Q-07)", nil, false},
		{"E-34 empty", []string{}, false},
		{"E-34 plain only", []string{"plain"}, false},
		{"Q-08 plain and S256", []string{"plain", "S256"}, true},
		{"Q-08 bogus values ignored (PayPal)", []string{"RS256", "ES256", "S256"}, true},
		{"RFC 7636 §4.3 method names are case-sensitive", []string{"s256"}, false},
	}
	for _, tt := range tests {
		if got := SupportsS256(effects.ServerMetadata{CodeChallengeMethodsSupported: tt.methods}); got != tt.want {
			t.Errorf("%s: SupportsS256(%q) = %v, want %v", tt.name, tt.methods, got, tt.want)
		}
	}
}
