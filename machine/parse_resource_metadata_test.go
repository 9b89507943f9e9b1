package machine

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mcpauth/mcpauth/effects"
)

func TestParseResourceMetadata(t *testing.T) {
	tests := []struct {
		name, body string
		want       effects.ResourceMetadata
	}{
		{
			name: "RFC 9728 §2 all members",
			body: `{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://as.example.com","http://127.0.0.1:9000/t"],
				"scopes_supported":["read","write"],"bearer_methods_supported":["header"],"resource_name":"Example","extra":{"x":[1]}}`,
			want: effects.ResourceMetadata{
				Resource:               "https://mcp.example.com/mcp",
				AuthorizationServers:   []string{"https://as.example.com", "http://127.0.0.1:9000/t"},
				ScopesSupported:        []string{"read", "write"},
				BearerMethodsSupported: []string{"header"},
				ResourceName:           "Example",
			},
		},
		{
			name: "Q-15 resource kept verbatim, never re-serialized",
			body: `{"resource":"https://MCP.example.com:443/a%2Fb/","authorization_servers":["https://as.example.com/"]}`,
			want: effects.ResourceMetadata{Resource: "https://MCP.example.com:443/a%2Fb/", AuthorizationServers: []string{"https://as.example.com/"}},
		},
		{
			name: "Q-25 null optional members are absent",
			body: `{"resource":"https://r.example","authorization_servers":["https://as.example"],"scopes_supported":null,"resource_name":null}`,
			want: effects.ResourceMetadata{Resource: "https://r.example", AuthorizationServers: []string{"https://as.example"}},
		},
		{
			name: "resource with a query is allowed (RFC 8707 §2)",
			body: `{"resource":"https://r.example/mcp?tenant=1","authorization_servers":["https://as.example"]}`,
			want: effects.ResourceMetadata{Resource: "https://r.example/mcp?tenant=1", AuthorizationServers: []string{"https://as.example"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResourceMetadata([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseResourceMetadata mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseResourceMetadataRefuses(t *testing.T) {
	const as = `"authorization_servers":["https://as.example"]`
	tests := []struct {
		name, body, field string
	}{
		{"E-16 no resource", `{` + as + `}`, "resource"},
		{"E-16 null resource", `{"resource":null,` + as + `}`, "resource"},
		{"E-16 empty resource", `{"resource":"",` + as + `}`, "resource"},
		{"Q-15 resource as an array (self-managed GitLab)", `{"resource":["https://gitlab.example.com/api/v4/mcp"],` + as + `}`, "resource"},
		{"resource as a number", `{"resource":1,` + as + `}`, "resource"},
		{"relative resource", `{"resource":"/mcp",` + as + `}`, "resource"},
		{"resource with a fragment", `{"resource":"https://r.example/#x",` + as + `}`, "resource"},
		{"resource not http", `{"resource":"urn:x",` + as + `}`, "resource"},
		{"E-13 duplicate resource", `{"resource":"https://r.example","resource":"https://evil.example",` + as + `}`, "resource"},
		{"E-14 Resource", `{"Resource":"https://evil.example","resource":"https://r.example",` + as + `}`, "resource"},
		{"E-14 Authorization_Servers", `{"resource":"https://r.example","Authorization_Servers":["https://evil.example"],` + as + `}`, "authorization_servers"},
		{"A-PRM-07 no authorization_servers", `{"resource":"https://r.example"}`, "authorization_servers"},
		{"A-PRM-07 empty authorization_servers", `{"resource":"https://r.example","authorization_servers":[]}`, "authorization_servers"},
		{"E-15 authorization_servers as a string", `{"resource":"https://r.example","authorization_servers":"https://as.example"}`, "authorization_servers"},
		{"E-15 authorization_servers element not a string", `{"resource":"https://r.example","authorization_servers":[{"issuer":"x"}]}`, "authorization_servers"},
		{"E-22 issuer with a query", `{"resource":"https://r.example","authorization_servers":["https://as.example?x=1"]}`, "authorization_servers[0]"},
		{"E-22 issuer with a fragment", `{"resource":"https://r.example","authorization_servers":["https://as.example","https://as.example#f"]}`, "authorization_servers[1]"},
		{"E-22 http issuer not on loopback", `{"resource":"https://r.example","authorization_servers":["http://as.example"]}`, "authorization_servers[0]"},
		{"E-22 issuer not a url", `{"resource":"https://r.example","authorization_servers":["as.example"]}`, "authorization_servers[0]"},
		{"Q-03 templated issuer", `{"resource":"https://r.example","authorization_servers":["https://login.microsoftonline.com/{tenantid}/v2.0"]}`, "authorization_servers[0]"},
		{"issuer with userinfo", `{"resource":"https://r.example","authorization_servers":["https://u:p@as.example"]}`, "authorization_servers[0]"},
		{"E-17 too many authorization servers", `{"resource":"https://r.example","authorization_servers":[` + strings.Repeat(`"https://as.example",`, 16) + `"https://as.example"]}`, "authorization_servers"},
		{"E-15 scopes_supported as a string", `{"resource":"https://r.example",` + as + `,"scopes_supported":"read write"}`, "scopes_supported"},
		{"E-15 bearer_methods_supported as a string", `{"resource":"https://r.example",` + as + `,"bearer_methods_supported":"header"}`, "bearer_methods_supported"},
		{"resource_name as a number", `{"resource":"https://r.example",` + as + `,"resource_name":5}`, "resource_name"},
		{"E-12 array body", `[]`, ""},
		{"E-08 html body", `<html>login</html>`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResourceMetadata([]byte(tt.body))
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("got %+v, %v; want *MalformedError", got, err)
			}
			want := &MalformedError{Document: "protected resource metadata", Field: tt.field, Reason: me.Reason}
			if diff := cmp.Diff(want, me); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(effects.ResourceMetadata{}, got); diff != "" {
				t.Errorf("a refused document returned data (-want +got):\n%s", diff)
			}
		})
	}
}
