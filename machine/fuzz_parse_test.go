package machine

import (
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Fuzz targets for every parser of untrusted input (design §5). Seeds come
// from the real-world corpus and from the hostile cases of
// spec-checklist §4. Invariants: no panic; errors are the documented typed
// values with the "machine: " prefix; accepted output has the properties
// its consumers rely on; no error shows a secret.

// fixtureSeeds returns the corpus files whose names contain any of parts.
func fixtureSeeds(f *testing.F, parts ...string) [][]byte {
	f.Helper()
	var out [][]byte
	err := filepath.WalkDir(realWorld, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, p := range parts {
			if strings.Contains(path, p) {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				out = append(out, data)
				break
			}
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	return out
}

// secretLike reports whether s is checked for leaks: a token-shaped value
// (RFC 6750 §2.1 b64token characters, as real tokens, codes and states
// are) of at least 8 bytes with an upper-case ASCII letter. Every fixed
// text of the parsers' errors is lower-case and server text is set off by
// spaces, parentheses or quotes, which b64token excludes; so such a value
// can only appear in a message if the parser copied it there.
func secretLike(s string) bool {
	if len(s) < 8 || !strings.ContainsFunc(s, func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
		return false
	}
	return !strings.ContainsFunc(strings.TrimRight(s, "="), func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-._~+/", r))
	})
}

func checkNoLeak(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if secretLike(s) && strings.Contains(err.Error(), s) {
			t.Fatalf("error %q shows secret %q", err, s)
		}
	}
}

func checkPrefix(t *testing.T, err error) {
	t.Helper()
	if !strings.HasPrefix(err.Error(), "machine: ") {
		t.Fatalf("error %q lacks the machine: prefix", err)
	}
}

// --- WWW-Authenticate ---

// formatChallenges writes challenges back in RFC 9110 syntax, quoting
// every value.
func formatChallenges(cs []Challenge) string {
	var parts []string
	for _, c := range cs {
		s := c.Scheme
		if c.Token68 != "" {
			s += " " + c.Token68
		}
		var names []string
		for n := range c.Params {
			names = append(names, n)
		}
		slices.Sort(names)
		for i, n := range names {
			v := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(c.Params[n])
			if i == 0 {
				s += " "
			} else {
				s += ", "
			}
			s += n + `="` + v + `"`
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func FuzzParseChallenges(f *testing.F) {
	for _, data := range fixtureSeeds(f, "www-authenticate") {
		for _, h := range headerValues(string(data)) {
			f.Add(h)
		}
	}
	for _, s := range []string{
		`Bearer realm="OAuth", resource_metadata="https://mcp.sentry.dev/.well-known/oauth-protected-resource/mcp"`,
		`Basic realm="a", Bearer resource_metadata="https://r", scope="x y"` + "\n" + `DPoP algs="ES256"`,
		`Bearer error_description="a\"b\\", scope="a, b=c"`,
		`Bearer abc==, Basic realm=x, , ,Newauth`,
		`Bearer realm="x`,
		`Bearer scope="a", scope="b"`,
		"Bearer realm = \"x\"\t,\tscope=y",
		`Bearer error="insufficient_scope", error_description="see scope=admin"`,
		`BEARER Resource_Metadata="https://A"`,
		`Bearer =`, `,`, `"`, `Bearer a=b=c`, "Bearer r=\"\xff\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		values := strings.Split(header, "\n")
		cs, err := ParseChallenges(values)
		if err != nil {
			var ce *ChallengeError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T, want *ChallengeError", err)
			}
			checkPrefix(t, err)
			return
		}
		if len(cs) > maxChallenges {
			t.Fatalf("%d challenges", len(cs))
		}
		for _, c := range cs {
			if c.Scheme == "" || c.Scheme != strings.ToLower(c.Scheme) || strings.IndexFunc(c.Scheme, func(r rune) bool { return r > 0x7f || !isTchar(byte(r)) }) >= 0 {
				t.Fatalf("bad scheme %q", c.Scheme)
			}
			if c.Token68 != "" && c.Params != nil {
				t.Fatalf("both token68 and params: %+v", c)
			}
			if len(c.Params) > maxChallengeParams {
				t.Fatalf("%d params", len(c.Params))
			}
			for n := range c.Params {
				if n == "" || n != strings.ToLower(n) {
					t.Fatalf("param name %q not lower-case", n)
				}
			}
		}
		// Round trip: what was parsed, written back canonically, parses to
		// the same challenges.
		again := formatChallenges(cs)
		if len(again) > maxChallengeHeader {
			return
		}
		cs2, err := ParseChallenges([]string{again})
		if err != nil {
			t.Fatalf("re-parse of %q: %v", again, err)
		}
		if diff := cmp.Diff(cs, cs2); diff != "" {
			t.Fatalf("round trip of %q mismatch (-first +second):\n%s", again, diff)
		}
	})
}

// --- metadata documents ---

func FuzzParseResourceMetadata(f *testing.F) {
	for _, data := range fixtureSeeds(f, "oauth-protected-resource") {
		f.Add(data)
	}
	for _, s := range []string{
		`{"resource":["https://gitlab.example.com/api/v4/mcp"],"authorization_servers":["https://gitlab.example.com"]}`,
		`{"resource":"https://r","resource":"https://evil","authorization_servers":["https://as"]}`,
		`{"Resource":"https://evil","resource":"https://r","authorization_servers":["https://as"]}`,
		`{"resource":"https://r","authorization_servers":[]}`,
		`{"resource":"https://r","authorization_servers":"https://as"}`,
		`{"resource":"https://r","authorization_servers":["http://localhost:1/x","https://as/{t}"]}`,
		`{"resource":"https://r","authorization_servers":["https://as"],"scopes_supported":null}`,
		`{}{}`, `null`, `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseResourceMetadata(body)
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) || me.Document != docResourceMetadata {
				t.Fatalf("error %#v, want *MalformedError for the PRM", err)
			}
			checkPrefix(t, err)
			return
		}
		if u, _ := parseAbsoluteHTTP(m.Resource); u == nil || strings.Contains(m.Resource, "#") {
			t.Fatalf("accepted resource %q", m.Resource)
		}
		if len(m.AuthorizationServers) == 0 || len(m.AuthorizationServers) > maxAuthorizationServers {
			t.Fatalf("accepted %d authorization servers", len(m.AuthorizationServers))
		}
		for _, s := range m.AuthorizationServers {
			if err := CheckSecureURL(s); err != nil {
				t.Fatalf("accepted authorization server %q: %v", s, err)
			}
			if _, err := ServerMetadataURLs(s); err != nil {
				t.Fatalf("accepted authorization server %q: %v", s, err)
			}
		}
		// The resource matches itself (A-PRM-06 is reflexive).
		if err := ResourceMatches(m.Resource, m.Resource, false); err != nil {
			t.Fatalf("resource %q does not match itself: %v", m.Resource, err)
		}
	})
}

func FuzzParseServerMetadata(f *testing.F) {
	for _, data := range fixtureSeeds(f, "openid-configuration", "oauth-authorization-server") {
		f.Add(data)
	}
	for _, s := range []string{
		`{"issuer":"https://good","issuer":"https://evil"}`,
		`{"issuer":"https://as","Issuer":"https://evil"}`,
		`{"issuer":"https://login.microsoftonline.com/{tenantid}/v2.0"}`,
		`{"issuer":"https://as","code_challenge_methods_supported":"S256"}`,
		`{"issuer":"https://as","client_id_metadata_document_supported":"true"}`,
		`{"issuer":"https://as","authorization_endpoint":"javascript:alert(1)"}`,
		`{"issuer":"http://127.0.0.1:9/","token_endpoint":"http://127.0.0.1:9/t?x#"}`,
		`{"issuer":"https://as","tenant_region_scope":null,"token_endpoint":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseServerMetadata(body)
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) || me.Document != docServerMetadata {
				t.Fatalf("error %#v, want *MalformedError for AS metadata", err)
			}
			checkPrefix(t, err)
			return
		}
		if err := CheckSecureURL(m.Issuer); err != nil {
			t.Fatalf("accepted issuer %q: %v", m.Issuer, err)
		}
		if strings.ContainsAny(m.Issuer, "{}?#") {
			t.Fatalf("accepted issuer %q", m.Issuer)
		}
		if _, err := ServerMetadataURLs(m.Issuer); err != nil {
			t.Fatalf("issuer %q: %v", m.Issuer, err)
		}
		for _, e := range []string{m.AuthorizationEndpoint, m.TokenEndpoint, m.RegistrationEndpoint, m.RevocationEndpoint} {
			if e == "" {
				continue
			}
			if u, _ := parseAbsoluteHTTP(e); u == nil || u.User != nil || strings.Contains(e, "#") {
				t.Fatalf("accepted endpoint %q", e)
			}
		}
		if SupportsS256(m) != slices.Contains(m.CodeChallengeMethodsSupported, "S256") {
			t.Fatal("SupportsS256 disagrees with the list")
		}
	})
}

// --- token and registration responses ---

// bodySecrets reads the named members leniently (as a careless client
// would), to check that none shows up in an error.
func bodySecrets(ct string, body []byte, names ...string) []string {
	var out []string
	var m map[string]any
	if json.Unmarshal(body, &m) == nil {
		for _, n := range names {
			if s, ok := m[n].(string); ok {
				out = append(out, s)
			}
		}
	}
	if q, err := url.ParseQuery(string(body)); err == nil || len(q) > 0 {
		for _, n := range names {
			out = append(out, q[n]...)
		}
	}
	return out
}

func FuzzParseTokenResponse(f *testing.F) {
	for _, data := range fixtureSeeds(f, "token-response") {
		f.Add(200, "application/json", data)
		f.Add(400, "", data)
	}
	for _, s := range []struct {
		status   int
		ct, body string
	}{
		{200, "application/x-www-form-urlencoded", "access_token=gho_ABCdef123456&scope=repo%2Cgist&token_type=bearer"},
		{200, "application/x-www-form-urlencoded", "error=invalid_grant&error_description=Bad+TOKEN_123456&access_token=TOKEN_123456"},
		{200, "application/json", `{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}`},
		{200, "application/json", `{"ok":false,"error":"invalid_code"}`},
		{200, "application/json", `{"access_token":"AT_SECRET_1","token_type":"bot"}`},
		{200, "application/json", `{"access_token":"AT_SECRET_1","token_type":"Bearer","expires_in":"3599"}`},
		{200, "application/json", `{"access_token":"AT_SECRET_1","token_type":"Bearer","expires_in":3600.5}`},
		{200, "application/json", `{"access_token":"AT_SECRET_1","error":"AT_SECRET_1"}`},
		{200, "application/json, application/json", `{"access_token":"a","token_type":"DPoP"}`},
		{502, "text/html", `<html>bad gateway</html>`},
		{200, "application/json", `{"access_token":"a\r\nb","token_type":"Bearer"}`},
	} {
		f.Add(s.status, s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, ct string, body []byte) {
		tr, err := ParseTokenResponse(status, ct, body)
		if err != nil {
			var oe *OAuthError
			var me *MalformedError
			switch {
			case errors.As(err, &oe):
				if oe.Status != status {
					t.Fatalf("OAuthError status %d, want %d", oe.Status, status)
				}
				if oe.Code == "" && oe.Description == "" {
					t.Fatal("OAuthError says nothing")
				}
			case errors.As(err, &me):
				if status < 200 || status > 299 {
					t.Fatalf("MalformedError for http %d, want OAuthError", status)
				}
			default:
				t.Fatalf("error %T", err)
			}
			checkPrefix(t, err)
			checkNoLeak(t, err, bodySecrets(ct, body, "access_token", "refresh_token", "id_token")...)
			return
		}
		if status < 200 || status > 299 {
			t.Fatalf("success with http %d", status)
		}
		if tr.AccessToken == "" || !isVisibleASCII(tr.AccessToken, false) {
			t.Fatalf("accepted access token %q", tr.AccessToken)
		}
		if tr.TokenType != "Bearer" && tr.TokenType != "DPoP" {
			t.Fatalf("token type %q", tr.TokenType)
		}
		if tr.ExpiresIn < 0 || tr.ExpiresIn > maxExpiresIn || (!tr.HasExpiresIn && tr.ExpiresIn != 0) {
			t.Fatalf("expires_in %d (has %v)", tr.ExpiresIn, tr.HasExpiresIn)
		}
	})
}

func FuzzParseRegistrationResponse(f *testing.F) {
	for _, data := range fixtureSeeds(f, "registration-response") {
		f.Add(201, "application/json", data)
	}
	for _, s := range []struct {
		status   int
		ct, body string
	}{
		{201, "application/json", `{"client_id":"c","client_secret":"CS_SECRET_1","token_endpoint_auth_method":"none"}`},
		{201, "application/json", `{"client_id":"c","client_secret":"CS_SECRET_1","client_secret_expires_at":"0"}`},
		{400, "application/json", `{"error":"invalid_redirect_uri","error_description":"CS_SECRET_1","client_secret":"CS_SECRET_1"}`},
		{200, "", `{"client_id":"c"}`},
		{404, "text/html", `<html/>`},
	} {
		f.Add(s.status, s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, ct string, body []byte) {
		c, err := ParseRegistrationResponse(status, ct, body)
		if err != nil {
			var oe *OAuthError
			var me *MalformedError
			if !errors.As(err, &oe) && !errors.As(err, &me) {
				t.Fatalf("error %T", err)
			}
			checkPrefix(t, err)
			checkNoLeak(t, err, bodySecrets(ct, body, "client_secret", "registration_access_token")...)
			return
		}
		if status != 200 && status != 201 {
			t.Fatalf("success with http %d", status)
		}
		if c.ClientID == "" || c.ClientIDIssuedAt < 0 || c.ClientSecretExpiresAt < 0 {
			t.Fatalf("accepted %+v", c)
		}
		if c.TokenEndpointAuthMethod == "none" && c.ClientSecret != "" {
			t.Fatal("Q-12: kept a secret for method none")
		}
	})
}

// --- authorization response ---

func FuzzParseCallbackQuery(f *testing.F) {
	for _, s := range []string{
		"code=SplxlOBeZQQYbYS6WxSbIA&state=xyz",
		"code=c&state=s&iss=https%3A%2F%2Fas.example.com",
		"error=access_denied&error_description=The+user+said+no&state=s",
		"code=CODE_SECRET_1&state=STATE_SECRET_1&state=STATE_SECRET_1",
		"code=CODE_SECRET_1&error=x", "code=c;state=s", "code=%zz", "", "&&", "iss=&code=a+b%2B",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		p, err := ParseCallbackQuery(q)
		if err != nil {
			var me *MalformedError
			if !errors.As(err, &me) || me.Document != docAuthorization {
				t.Fatalf("error %#v", err)
			}
			checkPrefix(t, err)
			var secrets []string
			for _, pair := range strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' || r == '=' }) {
				secrets = append(secrets, pair)
				if v, err := url.QueryUnescape(pair); err == nil {
					secrets = append(secrets, v)
				}
			}
			checkNoLeak(t, err, secrets...)
			return
		}
		if (p.Code == "") == (p.Error == "") {
			t.Fatalf("accepted %+v: want exactly one of code and error", p)
		}
		if p.HasIss != (p.Iss != "") {
			t.Fatalf("HasIss %v with iss %q", p.HasIss, p.Iss)
		}
		// Decoded once: encoding the values again and parsing gives them back.
		v := url.Values{}
		for k, s := range map[string]string{"code": p.Code, "state": p.State, "iss": p.Iss, "error": p.Error,
			"error_description": p.ErrorDescription, "error_uri": p.ErrorURI} {
			if s != "" {
				v.Set(k, s)
			}
		}
		if enc := v.Encode(); len(enc) <= maxCallbackQuery && !strings.Contains(enc, ";") {
			p2, err := ParseCallbackQuery(enc)
			if err != nil {
				t.Fatalf("re-parse of %q: %v", enc, err)
			}
			if diff := cmp.Diff(p, p2); diff != "" {
				t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
			}
		}
	})
}

// --- URLs ---

func FuzzResourceMatches(f *testing.F) {
	for _, s := range [][2]string{
		{"https://mcp.sentry.dev/mcp", "https://mcp.sentry.dev/mcp"},
		{"https://mcp.canva.com", "https://mcp.canva.com/mcp"},
		{"https://mcp.vercel.com/mcp", "https://mcp.vercel.com/"},
		{"https://MCP.example.com:443/a", "https://mcp.example.com/a/b?x#f"},
		{"https://evil.example.com/mcp", "https://mcp.example.com/mcp"},
		{"https://h/mcp", "https://h/mcp/%2e%2E/admin"},
		{"http://[::1]:80/", "http://[::1]"},
		{"https://[fe80::1%25en0]/", "https://[fe80::1%25en0]/x"},
	} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	f.Fuzz(func(t *testing.T, resource, server string, prefix bool) {
		err := ResourceMatches(resource, server, prefix)
		if err != nil {
			var me *ResourceMismatchError
			if !errors.As(err, &me) {
				t.Fatalf("error %T", err)
			}
			checkPrefix(t, err)
			if ResourceMatches(resource, server, false) == nil {
				t.Fatal("an exact match fails in prefix mode")
			}
			return
		}
		// D-02: never another origin.
		if !SameOrigin(resource, server) {
			t.Fatalf("%q matched %q across origins", resource, server)
		}
		// An exact match without queries means equal canonical URIs.
		if !prefix && !strings.Contains(resource, "?") && !strings.Contains(server, "?") {
			cr, err1 := CanonicalResource(resource)
			cs, err2 := CanonicalResource(server)
			if err1 != nil || err2 != nil || cr != cs {
				t.Fatalf("exact match but canonical %q (%v) != %q (%v)", cr, err1, cs, err2)
			}
		}
		// A-PRM-06 is reflexive for usable URLs.
		if CheckSecureURL(resource) == nil && ResourceMatches(resource, resource, false) != nil {
			t.Fatalf("%q does not match itself", resource)
		}
	})
}

func FuzzCanonicalResource(f *testing.F) {
	for _, s := range []string{
		"https://mcp.example.com/mcp", "HTTPS://MCP.Example.COM:443/", "http://localhost:8080/x?y#z",
		"https://[::1]:443/mcp", "https://[fe80::1%25en0]/", "https://h/a%2Fb", "https://h:0443/", "https://u@h/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := CanonicalResource(raw)
		if err != nil {
			var ie *InsecureURLError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T", err)
			}
			checkPrefix(t, err)
			return
		}
		if strings.ContainsAny(c, "?#") {
			t.Fatalf("canonical %q has a query or fragment", c)
		}
		again, err := CanonicalResource(c)
		if err != nil || again != c {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", raw, c, again, err)
		}
		if !SameOrigin(raw, c) {
			t.Fatalf("canonical %q changed the origin of %q", c, raw)
		}
		if CheckSecureURL(raw) == nil && CheckSecureURL(c) != nil {
			t.Fatalf("canonical %q of a usable URL is unusable", c)
		}
		// The server's own canonical URI identifies it (RFC 9728 §3.3).
		if !strings.Contains(raw, "#") && !strings.Contains(raw, "?") {
			if err := ResourceMatches(c, raw, false); err != nil {
				t.Fatalf("canonical %q does not match %q: %v", c, raw, err)
			}
		}
	})
}
