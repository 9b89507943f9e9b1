package hostile_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// §4.4 WWW-Authenticate parsing: E-27 … E-31. The PRM is served at a
// custom path only (the well-known URLs answer 404), so a successful call
// proves the client read resource_metadata from the challenge, and a call
// that fetches the well-known URL proves it refused the challenge.

const customPRM = "/custom/prm"

// challengeWorld serves PRM only at customPRM.
func challengeWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t)
	w.rs.route("GET "+prmPath, status(404))
	w.rs.route("GET "+customPRM, func(rw http.ResponseWriter, r *http.Request) {
		w.rs.mu.Lock()
		doc := map[string]any{}
		for k, v := range w.rs.prm {
			doc[k] = v
		}
		w.rs.mu.Unlock()
		writeJSON(rw, 200, doc)
	})
	return w
}

// usedChallenge runs one call with the given WWW-Authenticate values and
// reports whether the custom PRM URL was used.
func usedChallenge(t *testing.T, values ...string) (*world, bool) {
	t.Helper()
	w := challengeWorld(t)
	w.rs.route("POST /mcp", func(rw http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && w.as.valid(tok) {
			w.rs.handleMCP(rw, r)
			return
		}
		for _, v := range values {
			rw.Header().Add("WWW-Authenticate", strings.ReplaceAll(v, "PRM", w.rs.URL+customPRM))
		}
		writeJSON(rw, 401, map[string]string{"error": "unauthorized"})
	})
	_, _, err := w.c.call(defaultBudget)
	used := w.rs.Hits(customPRM) > 0
	if used && err != nil {
		t.Fatalf("custom PRM used but the call failed: %v", err)
	}
	return w, used
}

func TestE27_MultipleChallenges(t *testing.T) {
	cases := map[string][]string{
		"Basic first, one header":   {`Basic realm="a", Bearer resource_metadata="PRM", scope="x"`},
		"Negotiate token68 first":   {`Negotiate abc==, Bearer resource_metadata="PRM"`},
		"separate header lines":     {`Basic realm="a"`, `Bearer resource_metadata="PRM"`},
		"Bearer then Basic":         {`Bearer resource_metadata="PRM", Basic realm="b"`},
		"DPoP challenge":            {`DPoP algs="ES256", resource_metadata="PRM"`},
		"Basic params look-alike":   {`Basic realm="resource_metadata=x", Bearer resource_metadata="PRM"`},
		"three schemes, empty list": {`Digest realm="d", nonce="n", , Basic realm="b", Bearer resource_metadata="PRM"`},
	}
	for name, values := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, used := usedChallenge(t, values...); !used {
				t.Errorf("the Bearer challenge's resource_metadata was not found in %q", values)
			}
		})
	}
}

func TestE28_QuotedStrings(t *testing.T) {
	valid := map[string]string{
		"escaped quote in another param":     `Bearer realm="a\"b, resource_metadata=\"evil\"", resource_metadata="PRM"`,
		"escaped backslash before the quote": `Bearer realm="x\\", resource_metadata="PRM"`,
		"comma and equals in quotes":         `Bearer error_description="a=b, c=d", resource_metadata="PRM"`,
		"empty scope":                        `Bearer scope="", resource_metadata="PRM"`,
		"OWS around =":                       "Bearer resource_metadata = \"PRM\" ,\trealm=\"x\"",
		"empty list elements":                `Bearer ,, resource_metadata="PRM", ,`,
		"token value":                        `Bearer error=invalid_token, resource_metadata="PRM"`,
	}
	for name, v := range valid {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, used := usedChallenge(t, v); !used {
				if name == "empty list elements" {
					t.Fatal("regression: machine.ParseChallenges refuses `Bearer ,, resource_metadata=\"…\"` (\"expected a space " +
						"after the auth-scheme\"): an empty list element right after the scheme ends the challenge, so " +
						"the next auth-param is read as a new scheme. RFC 9110 §5.6.1.2 says recipients MUST accept and " +
						"ignore empty list elements, and the function's doc says it does. Harmless (the client falls back " +
						"to well-known discovery) but an interop failure. Fix: in machine/challenge.go, after the scheme and " +
						"after each comma, skip OWS and further commas before deciding between a new auth-param " +
						"(token BWS \"=\") and a new challenge")
				}
				t.Errorf("valid challenge %q not understood", v)
			}
		})
	}
	malformed := map[string]string{
		"unterminated quote":      `Bearer resource_metadata="PRM`,
		"parameter without =":     `Bearer resource_metadata`,
		"parameter without value": `Bearer resource_metadata=, realm="x"`,
		"quote inside token":      `Bearer resource_metadata=PR"M"`,
	}
	for name, v := range malformed {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w, used := usedChallenge(t, v)
			if used {
				t.Errorf("malformed challenge %q was used", v)
			}
			// The 401 still means "authorize": well-known discovery ran.
			if n := w.rs.Hits(prmPath); n == 0 {
				t.Errorf("no well-known fallback after a malformed challenge")
			}
		})
	}
}

func TestE29_Token68AndCase(t *testing.T) {
	t.Run("token68", func(t *testing.T) {
		t.Parallel()
		w, used := usedChallenge(t, `Bearer abc123==`)
		if used || w.rs.Hits(prmPath) == 0 {
			t.Errorf("token68 challenge: custom %v, well-known %d", used, w.rs.Hits(prmPath))
		}
	})
	for name, v := range map[string]string{
		"lower-case scheme": `bearer resource_metadata="PRM"`,
		"upper-case scheme": `BEARER resource_metadata="PRM"`,
		"param name case":   `Bearer Resource_Metadata="PRM"`,
		"upper param name":  `Bearer RESOURCE_METADATA="PRM"`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, used := usedChallenge(t, v); !used {
				t.Errorf("%q not understood (names are case-insensitive)", v)
			}
		})
	}
	t.Run("value case is kept", func(t *testing.T) {
		t.Parallel()
		w := challengeWorld(t)
		w.rs.route("GET /Custom/PRM", status(404))
		w.rs.setChallenge(`Bearer resource_metadata="` + w.rs.URL + `/Custom/PRM"`)
		_, _, _ = w.c.call(defaultBudget)
		if w.rs.Hits("/Custom/PRM") != 1 || w.rs.Hits(customPRM) != 0 {
			t.Errorf("the value's case was changed")
		}
	})
}

// authorizeScope returns the scope of the first authorization request.
func authorizeScope(t *testing.T, w *world) string {
	t.Helper()
	for _, r := range w.as.Got() {
		if strings.HasPrefix(r.URL, "/authorize") {
			u, err := url.Parse(r.URL)
			if err != nil {
				t.Fatal(err)
			}
			return u.Query().Get("scope")
		}
	}
	t.Fatalf("no authorization request")
	return ""
}

func TestE30_ScopeWhitespace(t *testing.T) {
	t.Run("tabs, repeats, duplicates", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.setChallenge("Bearer resource_metadata=\"" + w.rs.prmURL + "\", scope=\"read  write\tread   admin\"")
		w.c.mustCall()
		if got := authorizeScope(t, w); got != "read write admin" {
			t.Fatal("regression: the challenge's scope \"read  write\\tread   admin\" reaches the authorization request as " +
				strconvQuote(got) + ": machine/scopes.go initialScope takes Attempt.ChallengeScope without dropping " +
				"duplicates. spec-checklist E-30: split on whitespace, drop duplicates, keep order. Fix: pass it " +
				"through unionScopes")
			t.Errorf("scope %q, want %q (split on whitespace, duplicates dropped, order kept)", got, "read write admin")
		}
	})
	for name, v := range map[string]string{
		"quote":     `read \"admin`,
		"backslash": `read \\admin`,
		"control":   "read \x01admin",
	} {
		t.Run("forbidden "+name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.rs.setChallenge(`Bearer resource_metadata="` + w.rs.prmURL + `", scope="` + v + `"`)
			_, _, err := w.c.call(defaultBudget)
			if err == nil {
				if s := authorizeScope(t, w); strings.ContainsAny(s, "\"\\\x01") {
					t.Fatal("regression: a challenge scope with characters RFC 6749 §3.3 forbids in a scope-token " +
						"(" + strconvQuote(s) + ") reaches the authorization request. spec-checklist E-30: reject " +
						"forbidden characters. Fix: in machine/challenge.go or initialScope, drop (or refuse the " +
						"challenge for) scope tokens outside %x21 / %x23-5B / %x5D-7E")
					t.Errorf("forbidden characters reached the authorization request: %q", s)
				}
			}
		})
	}
}

func TestE31_SmuggledParams(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.rs.setChallenge(`Bearer error="invalid_token", error_description="see resource_metadata=` + w.evil.URL +
		`/prm scope=admin", resource_metadata="` + w.rs.prmURL + `"`)
	w.c.mustCall()
	w.evil.wantUntouched(t)
	if s := authorizeScope(t, w); strings.Contains(s, "admin") {
		t.Errorf("scope %q was taken from error_description", s)
	}
}

func strconvQuote(s string) string { return strconv.Quote(s) }
