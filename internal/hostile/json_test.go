package hostile_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/machine"
)

// §4.2 JSON payload shape (Go-specific traps): E-11 … E-17. Documents are
// written by hand here, byte for byte, so that duplicates, case variants
// and broken syntax reach the client exactly as a hostile server sends
// them.

// q quotes a string as JSON.
func q(s string) string { return fmt.Sprintf("%q", s) }

// prmJSON is an honest PRM with extra members spliced in.
func prmJSON(w *world, extra string) string {
	return `{"resource":` + q(w.rs.mcpURL) + `,"authorization_servers":[` + q(w.as.issuer) + `]` + extra + `}`
}

// asmJSON is honest AS metadata with members replaced or added: a member
// named in extra replaces nothing (JSON objects allow the duplicate; that
// is the point), so callers drop members with without.
func asmJSON(w *world, extra string, without ...string) string {
	members := []struct{ k, v string }{
		{"issuer", q(w.as.issuer)},
		{"authorization_endpoint", q(w.as.issuer + "/authorize")},
		{"token_endpoint", q(w.as.tokenURL())},
		{"registration_endpoint", q(w.as.issuer + "/register")},
		{"response_types_supported", `["code"]`},
		{"grant_types_supported", `["authorization_code","refresh_token"]`},
		{"code_challenge_methods_supported", `["S256"]`},
		{"token_endpoint_auth_methods_supported", `["none"]`},
	}
	var parts []string
outer:
	for _, m := range members {
		for _, w := range without {
			if m.k == w {
				continue outer
			}
		}
		parts = append(parts, q(m.k)+":"+m.v)
	}
	return "{" + strings.Join(parts, ",") + extra + "}"
}

// tokenJSON is an honest-looking token response (its tokens are never
// valid at the resource server: the test only looks at how it is read).
func tokenJSON(extra string, without ...string) string {
	members := []struct{ k, v string }{
		{"access_token", q(randomValue("at-"))},
		{"token_type", `"Bearer"`},
		{"expires_in", `3600`},
		{"refresh_token", q(randomValue("rt-"))},
	}
	var parts []string
outer:
	for _, m := range members {
		for _, w := range without {
			if m.k == w {
				continue outer
			}
		}
		parts = append(parts, q(m.k)+":"+m.v)
	}
	return "{" + strings.Join(parts, ",") + extra + "}"
}

// docCase is one hostile document and the error it must end with.
type docCase struct {
	name string
	doc  func(w *world) string
}

// runPRM serves each document as the PRM and wants *machine.MalformedError,
// with the authorization server and the attacker untouched.
func runPRM(t *testing.T, cases []docCase) {
	t.Helper()
	runPRMWithin(t, defaultBudget, cases)
}

func runPRMWithin(t *testing.T, budget time.Duration, cases []docCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.rs.route("GET "+prmPath, body("application/json", []byte(c.doc(w))))
			_, _, err := w.c.call(budget)
			want[*machine.MalformedError](t, err)
			w.as.wantUntouched(t)
			w.evil.wantUntouched(t)
			w.c.wantNoDNS()
		})
	}
}

// runASM serves each document as the AS metadata and wants
// *machine.DiscoveryError (the document is refused, no other server is
// tried), with no authorization and nothing sent to the attacker.
func runASM(t *testing.T, cases []docCase) {
	t.Helper()
	runASMWithin(t, defaultBudget, cases)
}

func runASMWithin(t *testing.T, budget time.Duration, cases []docCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.route("GET "+asmPath, body("application/json", []byte(c.doc(w))))
			_, _, err := w.c.call(budget)
			want[*machine.DiscoveryError](t, err)
			if n := w.as.Hits("/authorize") + w.as.Hits("/register") + w.as.Hits("/token"); n != 0 {
				t.Errorf("the flow went on with a refused document (%d requests)", n)
			}
			w.evil.wantUntouched(t)
			w.c.wantNoDNS()
		})
	}
}

// runToken serves each document as the answer to the code exchange and
// wants *machine.TokenError wrapping *machine.MalformedError, with nothing
// stored and no token sent anywhere (the leak check).
func runToken(t *testing.T, cases []docCase) {
	t.Helper()
	runTokenWithin(t, defaultBudget, cases)
}

func runTokenWithin(t *testing.T, budget time.Duration, cases []docCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.route("POST /token", body("application/json", []byte(c.doc(w))))
			_, _, err := w.c.call(budget)
			want[*machine.TokenError](t, err)
			want[*machine.MalformedError](t, err)
			if w.c.stored().Tokens != nil {
				t.Errorf("a credential was stored from a refused response")
			}
			if n := w.rs.Hits("/mcp"); n != 1 {
				t.Errorf("resource server got %d requests, want only the first unauthenticated one", n)
			}
		})
	}
}

func doc(s string) func(*world) string { return func(*world) string { return s } }

func TestE11_MalformedJSON(t *testing.T) {
	runPRM(t, []docCase{
		{"truncated", func(w *world) string { return prmJSON(w, "")[:20] }},
		{"trailing object", func(w *world) string { return prmJSON(w, "") + "{}" }},
		{"trailing garbage", func(w *world) string { return prmJSON(w, "") + "garbage" }},
		{"byte order mark", func(w *world) string { return "\uFEFF" + prmJSON(w, "") }},
		{"NaN", func(w *world) string { return prmJSON(w, `,"x":NaN`) }},
		{"Infinity", func(w *world) string { return prmJSON(w, `,"x":Infinity`) }},
		{"invalid utf-8", func(w *world) string { return prmJSON(w, `,"x":"`+"\xff\xfe"+`"`) }},
		{"single quotes", func(w *world) string { return strings.ReplaceAll(prmJSON(w, ""), `"`, `'`) }},
		{"empty", doc("")},
	})
	t.Run("metadata", func(t *testing.T) {
		t.Parallel()
		runASM(t, []docCase{
			{"trailing object", func(w *world) string { return asmJSON(w, "") + "{}" }},
			{"truncated", func(w *world) string { return asmJSON(w, "")[:40] }},
		})
	})
	t.Run("token", func(t *testing.T) {
		t.Parallel()
		runToken(t, []docCase{
			{"trailing object", func(*world) string { return tokenJSON("") + "{}" }},
			{"truncated", func(*world) string { return tokenJSON("")[:30] }},
		})
	})
}

func TestE12_NotAnObject(t *testing.T) {
	var cases []docCase
	for _, s := range []string{"null", "[]", `"str"`, "1", "true", `[{"resource":"x"}]`} {
		cases = append(cases, docCase{s, doc(s)})
	}
	runPRM(t, cases)
	t.Run("metadata", func(t *testing.T) { runASM(t, cases[:3]) })
	t.Run("token", func(t *testing.T) { runToken(t, cases[:3]) })
}

func TestE13_DuplicateMembers(t *testing.T) {
	runPRM(t, []docCase{
		{"resource", func(w *world) string { return prmJSON(w, `,"resource":`+q(w.evil.URL+"/mcp")) }},
		{"authorization_servers", func(w *world) string { return prmJSON(w, `,"authorization_servers":[`+q(w.evil.URL)+`]`) }},
		{"escaped name", func(w *world) string { return prmJSON(w, `,"resourc\u0065":`+q(w.evil.URL+"/mcp")) }},
	})
	t.Run("metadata", func(t *testing.T) {
		t.Parallel()
		runASM(t, []docCase{
			{"issuer", func(w *world) string { return asmJSON(w, `,"issuer":`+q(w.evil.URL)) }},
			{"token_endpoint", func(w *world) string { return asmJSON(w, `,"token_endpoint":`+q(w.evil.URL+"/token")) }},
			{"authorization_endpoint", func(w *world) string {
				return asmJSON(w, `,"authorization_endpoint":`+q(w.evil.URL+"/authorize"))
			}},
			{"code_challenge_methods_supported", func(w *world) string {
				return asmJSON(w, `,"code_challenge_methods_supported":["plain"]`)
			}},
		})
	})
	t.Run("token", func(t *testing.T) {
		t.Parallel()
		runToken(t, []docCase{
			{"access_token", func(*world) string { return tokenJSON(`,"access_token":` + q(randomValue("at2-"))) }},
			{"token_type", func(*world) string { return tokenJSON(`,"token_type":"DPoP"`) }},
		})
	})
}

func TestE14_CaseVariantMembers(t *testing.T) {
	runPRM(t, []docCase{
		{"Resource", func(w *world) string { return prmJSON(w, `,"Resource":`+q(w.evil.URL+"/mcp")) }},
		{"RESOURCE alone", func(w *world) string {
			return `{"RESOURCE":` + q(w.rs.mcpURL) + `,"authorization_servers":[` + q(w.as.issuer) + `]}`
		}},
		{"Authorization_Servers", func(w *world) string { return prmJSON(w, `,"Authorization_Servers":[`+q(w.evil.URL)+`]`) }},
	})
	t.Run("metadata", func(t *testing.T) {
		t.Parallel()
		runASM(t, []docCase{
			{"Issuer", func(w *world) string { return asmJSON(w, `,"Issuer":`+q(w.evil.URL)) }},
			{"ISSUER alone", func(w *world) string { return asmJSON(w, `,"ISSUER":`+q(w.as.issuer), "issuer") }},
			{"Token_Endpoint", func(w *world) string { return asmJSON(w, `,"Token_Endpoint":`+q(w.evil.URL+"/token")) }},
		})
	})
	t.Run("token", func(t *testing.T) {
		t.Parallel()
		runToken(t, []docCase{
			{"Access_Token", func(*world) string { return tokenJSON(`,"Access_Token":` + q(randomValue("at2-"))) }},
			{"TOKEN_TYPE alone", func(*world) string { return tokenJSON(`,"TOKEN_TYPE":"Bearer"`, "token_type") }},
		})
	})
}

func TestE15_WrongTypes(t *testing.T) {
	runPRM(t, []docCase{
		{"authorization_servers as a string", func(w *world) string {
			return `{"resource":` + q(w.rs.mcpURL) + `,"authorization_servers":` + q(w.as.issuer) + `}`
		}},
		{"resource as an array", func(w *world) string {
			return `{"resource":[` + q(w.rs.mcpURL) + `],"authorization_servers":[` + q(w.as.issuer) + `]}`
		}},
		{"scopes_supported as a string", func(w *world) string { return prmJSON(w, `,"scopes_supported":"read write"`) }},
	})
	t.Run("metadata", func(t *testing.T) {
		t.Parallel()
		runASM(t, []docCase{
			{"code_challenge_methods_supported as a string", func(w *world) string {
				return asmJSON(w, `,"code_challenge_methods_supported":"S256"`, "code_challenge_methods_supported")
			}},
			{"scopes_supported as a string", func(w *world) string { return asmJSON(w, `,"scopes_supported":"read"`) }},
			{"iss parameter flag as a string", func(w *world) string {
				return asmJSON(w, `,"authorization_response_iss_parameter_supported":"true"`)
			}},
			{"cimd flag as a string", func(w *world) string { return asmJSON(w, `,"client_id_metadata_document_supported":"true"`) }},
			{"token_endpoint as a number", func(w *world) string { return asmJSON(w, `,"token_endpoint":443`, "token_endpoint") }},
		})
	})
	t.Run("token", func(t *testing.T) {
		t.Parallel()
		var cases []docCase
		for _, v := range []string{`3600.5`, `-1`, `1e308`, `"1h"`, `"-5"`, `true`, `[3600]`} {
			v := v
			cases = append(cases, docCase{"expires_in " + v, func(*world) string { return tokenJSON(`,"expires_in":`+v, "expires_in") }})
		}
		cases = append(cases,
			docCase{"scope as an array", func(*world) string { return tokenJSON(`,"scope":["a","b"]`) }},
			docCase{"access_token as a number", func(*world) string { return tokenJSON(`,"access_token":12345`, "access_token") }},
		)
		runToken(t, cases)
	})
	t.Run("token leniency", func(t *testing.T) {
		t.Parallel()
		// Chosen leniencies (D-11, Q-20, Q-25): expires_in as a digit
		// string, and null as absent.
		for _, v := range []string{`"3600"`, `null`} {
			t.Run("expires_in "+v, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t)
				w.as.route("POST /token", func(rw http.ResponseWriter, r *http.Request) {
					rec := &capture{header: http.Header{}}
					w.as.handleToken(rec, r)
					b := strings.Replace(string(rec.body), `"expires_in":3600`, `"expires_in":`+v, 1)
					writeRaw(rw, rec.status, "application/json", []byte(b))
				})
				w.c.mustCall()
			})
		}
	})
}

func TestE16_MissingFields(t *testing.T) {
	runPRM(t, []docCase{
		{"no resource", func(w *world) string { return `{"authorization_servers":[` + q(w.as.issuer) + `]}` }},
		{"empty resource", func(w *world) string { return `{"resource":"","authorization_servers":[` + q(w.as.issuer) + `]}` }},
		{"no authorization_servers", func(w *world) string { return `{"resource":` + q(w.rs.mcpURL) + `}` }},
		{"empty authorization_servers", func(w *world) string {
			return `{"resource":` + q(w.rs.mcpURL) + `,"authorization_servers":[]}`
		}},
	})
	t.Run("metadata", func(t *testing.T) {
		t.Parallel()
		runASM(t, []docCase{
			{"no issuer", func(w *world) string { return asmJSON(w, "", "issuer") }},
			{"no authorization_endpoint", func(w *world) string { return asmJSON(w, "", "authorization_endpoint") }},
			{"no token_endpoint", func(w *world) string { return asmJSON(w, "", "token_endpoint") }},
		})
		t.Run("no response_types_supported", func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.route("GET "+asmPath, body("application/json", []byte(asmJSON(w, "", "response_types_supported"))))
			_, _, err := w.c.call(defaultBudget)
			if err == nil {
				t.Fatal("regression: AS metadata without response_types_supported is accepted (machine/discovery_issuer.go " +
					"checkServer only refuses a list that lacks \"code\"); RFC 8414 §2 makes it REQUIRED (B-8414-05, " +
					"spec-checklist E-16). Fix: in checkServer, refuse len(m.ResponseTypesSupported) == 0 with " +
					"&MalformedError{Field: \"response_types_supported\", Reason: \"missing\"} (unless the document was " +
					"synthesized for the legacy flow)")
			}
			want[*machine.DiscoveryError](t, err)
		})
	})
	t.Run("token", func(t *testing.T) {
		t.Parallel()
		runToken(t, []docCase{
			{"no access_token", func(*world) string { return tokenJSON("", "access_token") }},
			{"empty access_token", func(*world) string { return tokenJSON(`,"access_token":""`, "access_token") }},
			{"no token_type", func(*world) string { return tokenJSON("", "token_type") }},
		})
	})
	t.Run("registration without client_id", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("POST /register", func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 201, map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none"})
		})
		_, _, err := w.c.call(defaultBudget)
		want[*machine.RegistrationError](t, err)
		want[*machine.MalformedError](t, err)
		if w.as.Hits("/authorize") != 0 {
			t.Errorf("authorization went on without a client_id")
		}
	})
}

func TestE17_AbsurdSizes(t *testing.T) {
	many := func(n int, f func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = q(f(i))
		}
		return strings.Join(parts, ",")
	}
	runPRMWithin(t, heavyBudget, []docCase{
		{"10000 authorization servers", func(w *world) string {
			return `{"resource":` + q(w.rs.mcpURL) + `,"authorization_servers":[` + many(10000, func(i int) string { return fmt.Sprintf("%s/t%d", w.evil.URL, i) }) + `]}`
		}},
		{"100000 scopes", func(w *world) string {
			return prmJSON(w, `,"scopes_supported":[`+many(100000, func(i int) string { return fmt.Sprintf("s%d", i) })+`]`)
		}},
		{"64 KiB scope", func(w *world) string { return prmJSON(w, `,"scopes_supported":[`+q(strings.Repeat("s", 64<<10))+`]`) }},
		{"deep nesting", func(w *world) string {
			return prmJSON(w, `,"x":`+strings.Repeat("[", 10000)+strings.Repeat("]", 10000))
		}},
	})
	t.Run("metadata", func(t *testing.T) {
		t.Parallel()
		runASMWithin(t, heavyBudget, []docCase{
			{"100000 scopes", func(w *world) string {
				return asmJSON(w, `,"scopes_supported":[`+many(100000, func(i int) string { return fmt.Sprintf("s%d", i) })+`]`)
			}},
			{"64 KiB endpoint", func(w *world) string {
				return asmJSON(w, `,"token_endpoint":`+q(w.as.issuer+"/"+strings.Repeat("t", 64<<10)), "token_endpoint")
			}},
		})
	})
	t.Run("token", func(t *testing.T) {
		t.Parallel()
		runTokenWithin(t, heavyBudget, []docCase{
			{"1 MB access token", func(*world) string {
				return tokenJSON(`,"access_token":`+q(strings.Repeat("A", 1000000)), "access_token")
			}},
			{"64 KiB scope", func(*world) string { return tokenJSON(`,"scope":` + q(strings.Repeat("s", 64<<10))) }},
		})
	})
	t.Run("20 KiB challenge scope", func(t *testing.T) {
		t.Parallel()
		// The challenge is refused whole (over 16 KiB) and discovery falls
		// back to the well-known URL: no multi-kilobyte authorization URL.
		w := newWorld(t)
		w.rs.setChallenge(`Bearer resource_metadata="` + w.rs.prmURL + `", scope="` + strings.Repeat("s ", 10<<10) + `"`)
		w.c.mustCall()
		for _, r := range w.as.Got() {
			if len(r.URL) > 8<<10 {
				t.Errorf("%s %s… is %d bytes long", r.Method, r.URL[:40], len(r.URL))
			}
		}
	})
}

// capture is a minimal ResponseWriter to post-process an honest answer.
type capture struct {
	header http.Header
	status int
	body   []byte
}

func (c *capture) Header() http.Header { return c.header }
func (c *capture) WriteHeader(s int)   { c.status = s }
func (c *capture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = 200
	}
	c.body = append(c.body, b...)
	return len(b), nil
}
