package machine

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResourceMetadataURLs(t *testing.T) {
	tests := []struct {
		name, server       string
		wantPath, wantRoot string
	}{
		{"A-PRM-03 path-inserted then root", "https://mcp.sentry.dev/mcp",
			"https://mcp.sentry.dev/.well-known/oauth-protected-resource/mcp", "https://mcp.sentry.dev/.well-known/oauth-protected-resource"},
		{"no path", "https://mcp.canva.com", "", "https://mcp.canva.com/.well-known/oauth-protected-resource"},
		{"RFC 9728 §3.1 terminating slash after host removed", "https://mcp.canva.com/", "", "https://mcp.canva.com/.well-known/oauth-protected-resource"},
		{"query and fragment dropped", "https://h.example/mcp?x=1#f",
			"https://h.example/.well-known/oauth-protected-resource/mcp", "https://h.example/.well-known/oauth-protected-resource"},
		{"trailing slash of a non-empty path kept", "https://h.example/mcp/",
			"https://h.example/.well-known/oauth-protected-resource/mcp/", "https://h.example/.well-known/oauth-protected-resource"},
		{"path kept byte for byte", "https://h.example/a%2Fb/M%c3%a9",
			"https://h.example/.well-known/oauth-protected-resource/a%2Fb/M%c3%a9", "https://h.example/.well-known/oauth-protected-resource"},
		{"port kept, scheme and host lower-cased", "HTTP://LocalHost:8080/mcp",
			"http://localhost:8080/.well-known/oauth-protected-resource/mcp", "http://localhost:8080/.well-known/oauth-protected-resource"},
		{"Q-15 asana: path-inserted is not where asana serves its PRM", "https://mcp.asana.com/v2/mcp",
			"https://mcp.asana.com/.well-known/oauth-protected-resource/v2/mcp", "https://mcp.asana.com/.well-known/oauth-protected-resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, r, err := ResourceMetadataURLs(tt.server)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tt.wantPath, tt.wantRoot}, []string{p, r}); diff != "" {
				t.Errorf("ResourceMetadataURLs(%q) mismatch (-want +got):\n%s", tt.server, diff)
			}
		})
	}
	for _, bad := range []string{"", "/mcp", "mcp.example.com/mcp", "ftp://h/x", "https://user:pw@h/mcp", "https:///mcp", "javascript:alert(1)"} {
		if _, _, err := ResourceMetadataURLs(bad); !errors.As(err, new(*InsecureURLError)) {
			t.Errorf("ResourceMetadataURLs(%q) err = %v, want *InsecureURLError", bad, err)
		}
	}
}

func TestServerMetadataURLs(t *testing.T) {
	tests := []struct {
		name, issuer string
		want         []string
	}{
		{"A-ASM-04 no path", "https://app.asana.com", []string{
			"https://app.asana.com/.well-known/oauth-authorization-server",
			"https://app.asana.com/.well-known/openid-configuration",
		}},
		{"Q-02 auth0 issuer ends in / on an empty path", "https://samples.auth0.com/", []string{
			"https://samples.auth0.com/.well-known/oauth-authorization-server",
			"https://samples.auth0.com/.well-known/openid-configuration",
		}},
		{"A-ASM-03 path, never the root document (Q-05)", "https://login.microsoftonline.com/aaaaa/v2.0", []string{
			"https://login.microsoftonline.com/.well-known/oauth-authorization-server/aaaaa/v2.0",
			"https://login.microsoftonline.com/.well-known/openid-configuration/aaaaa/v2.0",
			"https://login.microsoftonline.com/aaaaa/v2.0/.well-known/openid-configuration",
		}},
		{"Q-02 mojeid: one terminating / removed before building", "https://mojeid.cz/oidc/", []string{
			"https://mojeid.cz/.well-known/oauth-authorization-server/oidc",
			"https://mojeid.cz/.well-known/openid-configuration/oidc",
			"https://mojeid.cz/oidc/.well-known/openid-configuration",
		}},
		{"only one / removed", "https://h.example/a//", []string{
			"https://h.example/.well-known/oauth-authorization-server/a/",
			"https://h.example/.well-known/openid-configuration/a/",
			"https://h.example/a//.well-known/openid-configuration",
		}},
		{"E-66 loopback issuer with port", "http://localhost:4444/", []string{
			"http://localhost:4444/.well-known/oauth-authorization-server",
			"http://localhost:4444/.well-known/openid-configuration",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ServerMetadataURLs(tt.issuer)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ServerMetadataURLs(%q) mismatch (-want +got):\n%s", tt.issuer, diff)
			}
		})
	}
	for _, bad := range []string{"", "app.asana.com", "https://h/?x=1", "https://h/p#f", "https://h/p?", "https://u@h/", "urn:x:y"} {
		if _, err := ServerMetadataURLs(bad); !errors.As(err, new(*InsecureURLError)) {
			t.Errorf("ServerMetadataURLs(%q) err = %v, want *InsecureURLError", bad, err)
		}
	}
}

func TestCheckSecureURL(t *testing.T) {
	tests := []struct {
		raw    string
		wantOK bool
	}{
		{"https://mcp.example.com/mcp", true},
		{"https://mcp.example.com:8443/mcp?x=1", true},
		{"HTTPS://MCP.EXAMPLE.COM/", true},
		{"http://localhost:3000/mcp", true},         // A-TLS-01 loopback exemption, E-66
		{"http://LOCALHOST/cb", true},               //
		{"http://127.0.0.1:8090/callback", true},    //
		{"http://127.255.0.9/", true},               // all of 127.0.0.0/8
		{"http://[::1]:8080/callback", true},        //
		{"http://[::ffff:127.0.0.1]/cb", true},      // IPv4-mapped loopback
		{"http://mcp.example.com/mcp", false},       // E-65 downgrade
		{"http://localhost.evil.com/", false},       // not loopback
		{"http://foo.localhost/", false},            // RFC 6761 names are not trusted
		{"http://10.0.0.1/", false},                 // private is not loopback
		{"http://0.0.0.0/", false},                  //
		{"http://[::1%25eth0]/", false},             // zoned
		{"https://user:pw@mcp.example.com/", false}, // E-19 userinfo
		{"https://mcp.example.com/#frag", false},    // fragment
		{"https://mcp.example.com/#", false},        // empty fragment
		{"javascript:alert(1)", false},              // E-19, E-64
		{"data:text/html,hi", false},                //
		{"file:///etc/passwd", false},               //
		{"/relative", false},                        //
		{"https://", false},                         //
		{"https:opaque", false},                     //
		{"ht!tp://x/", false},
		{"http://::", false},                              // fuzz: a bare ':' host
		{"http://[fe80::1%25en0]/", false},                // zoned IPv6 literal
		{"https://[1.2.3.4]/", false},                     // IPv4 in brackets
		{"https://[::1]x/", false},                        //                             //
		{"https://h/" + strings.Repeat("a", 9000), false}, // length bound
	}
	for _, tt := range tests {
		err := CheckSecureURL(tt.raw)
		if (err == nil) != tt.wantOK {
			t.Errorf("CheckSecureURL(%.60q) = %v, want ok=%v", tt.raw, err, tt.wantOK)
		}
		if err != nil && !errors.As(err, new(*InsecureURLError)) {
			t.Errorf("CheckSecureURL(%.60q) error %T, want *InsecureURLError", tt.raw, err)
		}
	}
}

func TestInsecureURLErrorHidesQueryAndUserinfo(t *testing.T) {
	err := CheckSecureURL("http://alice:hunter2@mcp.example.com/mcp?api_key=s3cr3t#frag")
	var ie *InsecureURLError
	if !errors.As(err, &ie) {
		t.Fatalf("got %v, want *InsecureURLError", err)
	}
	for _, secret := range []string{"hunter2", "alice", "s3cr3t", "api_key", "frag"} {
		if strings.Contains(err.Error(), secret) || strings.Contains(ie.URL, secret) {
			t.Errorf("error %q (URL %q) shows %q", err, ie.URL, secret)
		}
	}
	if want := "http://mcp.example.com/mcp"; ie.URL != want {
		t.Errorf("URL = %q, want %q", ie.URL, want)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true, "[::1]": true,
		"::ffff:127.0.0.1": true, "localhost.": false, "127.0.0.1.nip.io": false, "127.1": false, "": false,
		"0:0:0:0:0:0:0:1": true, "::2": false, "example.com": false, "[::1": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"https://h.example/a", "https://h.example/b?x", true},
		{"https://H.Example:443/a", "https://h.example/", true},
		{"http://h.example:80", "http://h.example/x", true},
		{"https://h.example", "http://h.example", false},
		{"https://h.example:8443", "https://h.example", false},
		{"https://a.h.example", "https://h.example", false},
		{"https://www.facebook.com", "https://facebook.com/dialog/oauth/", false},
		{"https://[::1]:443/", "https://[::1]/", true},
		{"not a url", "not a url", false},
		{"/rel", "/rel", false},
	}
	for _, tt := range tests {
		if got := SameOrigin(tt.a, tt.b); got != tt.want {
			t.Errorf("SameOrigin(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestResourceMatches(t *testing.T) {
	tests := []struct {
		name             string
		resource, server string
		exact, prefix    bool // whether it matches without / with allowPrefix
	}{
		{"A-PRM-06 identical", "https://mcp.sentry.dev/mcp", "https://mcp.sentry.dev/mcp", true, true},
		{"Q-01 empty path == /", "https://mcp.canva.com", "https://mcp.canva.com/", true, true},
		{"Q-01 empty path == / reversed", "https://mcp.vercel.com/", "https://mcp.vercel.com", true, true},
		{"E-21 upper-case host is canonicalised", "https://MCP.Example.com/mcp", "https://mcp.example.com/mcp", true, true},
		{"E-21 explicit :443 is canonicalised", "https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp", true, true},
		{"http default port", "http://localhost:80/mcp", "http://localhost/mcp", true, true},
		{"server fragment ignored", "https://h.example/mcp", "https://h.example/mcp#x", true, true},
		{"query must match exactly", "https://h.example/mcp?t=1", "https://h.example/mcp?t=1", true, true},
		{"E-21 query differs", "https://h.example/mcp?t=2", "https://h.example/mcp?t=1", false, false},
		{"prefix: resource without query covers a server query", "https://h.example/mcp", "https://h.example/mcp?t=1", false, true},
		{"E-21 resource fragment", "https://h.example/mcp#x", "https://h.example/mcp", false, false},
		{"E-21 another origin (conformance auth/resource-mismatch)", "https://evil.example.com/mcp", "https://mcp.example.com/mcp", false, false},
		{"E-21 another scheme", "http://mcp.example.com/mcp", "https://mcp.example.com/mcp", false, false},
		{"E-21 another port", "https://mcp.example.com:8443/mcp", "https://mcp.example.com/mcp", false, false},
		{"E-21 another path", "https://mcp.example.com/other", "https://mcp.example.com/mcp", false, false},
		{"E-21 trailing slash on a non-empty path", "https://mcp.example.com/mcp/", "https://mcp.example.com/mcp", false, false},
		{"path is case-sensitive", "https://mcp.example.com/MCP", "https://mcp.example.com/mcp", false, false},
		{"D-02 canva root PRM covers /mcp only with prefix", "https://mcp.canva.com", "https://mcp.canva.com/mcp", false, true},
		{"D-02 prefix at a segment boundary", "https://h.example/api", "https://h.example/api/v4/mcp", false, true},
		{"D-02 prefix with trailing slash", "https://h.example/api/", "https://h.example/api/v4", false, true},
		{"D-02 not at a segment boundary", "https://h.example/mc", "https://h.example/mcp", false, false},
		{"Q-15 vercel /mcp PRM does not cover the transport at /", "https://mcp.vercel.com/mcp", "https://mcp.vercel.com/", false, false},
		{"dot segments never pass as a prefix", "https://h.example/mcp", "https://h.example/mcp/../admin", false, false},
		{"encoded dot segments never pass as a prefix", "https://h.example/mcp", "https://h.example/mcp/%2E%2e/admin", false, false},
		{"userinfo in resource", "https://u@h.example/mcp", "https://h.example/mcp", false, false},
		{"relative resource", "/mcp", "https://h.example/mcp", false, false},
		{"empty resource", "", "https://h.example/mcp", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []struct {
				prefix bool
				want   bool
			}{{false, tt.exact}, {true, tt.prefix}} {
				err := ResourceMatches(tt.resource, tt.server, mode.prefix)
				if (err == nil) != mode.want {
					t.Errorf("ResourceMatches(%q, %q, %v) = %v, want match=%v", tt.resource, tt.server, mode.prefix, err, mode.want)
				}
				var me *ResourceMismatchError
				if err != nil && !errors.As(err, &me) {
					t.Errorf("error %T, want *ResourceMismatchError", err)
				}
			}
		})
	}
}

func TestResourceMismatchErrorNamesBothWithoutQuery(t *testing.T) {
	err := ResourceMatches("https://evil.example.com/mcp", "https://mcp.example.com/mcp?key=s3cr3t", false)
	var me *ResourceMismatchError
	if !errors.As(err, &me) {
		t.Fatalf("got %v", err)
	}
	want := &ResourceMismatchError{Resource: "https://evil.example.com/mcp", Server: "https://mcp.example.com/mcp"}
	if diff := cmp.Diff(want, me); diff != "" {
		t.Errorf("E-21 error mismatch (-want +got):\n%s", diff)
	}
	if strings.Contains(err.Error(), "s3cr3t") || !strings.HasPrefix(err.Error(), "machine: ") {
		t.Errorf("bad message %q", err)
	}
}

func TestIssuerMatches(t *testing.T) {
	tests := []struct {
		got, want         string
		strict, tolerated bool
	}{
		{"https://accounts.google.com", "https://accounts.google.com", true, true},
		{"https://accounts.google.com", "https://accounts.google.com/", false, true}, // Q-01 google
		{"https://mcp.expo.dev/", "https://mcp.expo.dev", false, true},               // Q-01 expo (reverse)
		{"https://h.example:8443", "https://h.example:8443/", false, true},
		{"https://h.example/oauth2", "https://h.example/oauth2/", false, false}, // never on a non-empty path
		{"https://h.example/", "https://h.example//", false, false},
		{"https://h.example", "https://h.example/?", false, false},
		{"https://H.example", "https://h.example", false, false},     // E-32 case: exact strings (B-8414-07)
		{"https://h.example:443", "https://h.example", false, false}, // E-32: no port normalisation
		{"http://h.example", "https://h.example", false, false},
		{"https://evil.example", "https://h.example", false, false},
		{"", "/", false, false},
		{"https://", "https:///", false, false},
	}
	for _, tt := range tests {
		if got := IssuerMatches(tt.got, tt.want, false); got != tt.strict {
			t.Errorf("IssuerMatches(%q, %q, false) = %v, want %v", tt.got, tt.want, got, tt.strict)
		}
		if got := IssuerMatches(tt.got, tt.want, true); got != tt.tolerated {
			t.Errorf("IssuerMatches(%q, %q, true) = %v, want %v", tt.got, tt.want, got, tt.tolerated)
		}
	}
}

func TestCanonicalResource(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://mcp.example.com/mcp", "https://mcp.example.com/mcp"},
		{"HTTPS://MCP.Example.COM:443/mcp", "https://mcp.example.com/mcp"},
		{"https://mcp.example.com/", "https://mcp.example.com"},
		{"https://mcp.example.com", "https://mcp.example.com"},
		{"https://mcp.example.com/mcp/", "https://mcp.example.com/mcp/"}, // path kept
		{"https://mcp.example.com/mcp?x=1#frag", "https://mcp.example.com/mcp"},
		{"http://localhost:8080/Mcp", "http://localhost:8080/Mcp"},
		{"http://127.0.0.1:80/", "http://127.0.0.1"},
		{"https://[::1]:443/mcp", "https://[::1]/mcp"},
		{"https://h.example/a%2Fb", "https://h.example/a%2Fb"},
	}
	for _, tt := range tests {
		got, err := CanonicalResource(tt.in)
		if err != nil {
			t.Errorf("CanonicalResource(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("CanonicalResource(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "mcp.example.com", "https://u:p@h/", "mailto:x@y"} {
		if _, err := CanonicalResource(bad); !errors.As(err, new(*InsecureURLError)) {
			t.Errorf("CanonicalResource(%q) err = %v, want *InsecureURLError", bad, err)
		}
	}
}
