package hostile_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// §4.8 Token endpoint responses: E-49 … E-56.

// tokenEdit answers /token honestly (so the tokens are live at the
// resource server) and then edits the JSON response: every response when
// always, else only the first.
func tokenEdit(w *world, always bool, edit func(m map[string]any)) {
	var once sync.Once
	w.as.route("POST /token", func(rw http.ResponseWriter, r *http.Request) {
		rec := &capture{header: http.Header{}}
		w.as.handleToken(rec, r)
		var m map[string]any
		if err := json.Unmarshal(rec.body, &m); err != nil || rec.status != 200 {
			writeRaw(rw, rec.status, "application/json", rec.body)
			return
		}
		apply := always
		once.Do(func() { apply = true })
		if apply {
			edit(m)
		}
		writeJSON(rw, 200, m)
	})
}

func TestE49_TokenType(t *testing.T) {
	for _, tt := range []any{nil, "", "mac", "N_A", "Bearer2", 1} {
		name, _ := json.Marshal(tt)
		t.Run(string(name), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			tokenEdit(w, true, func(m map[string]any) {
				if tt == nil {
					delete(m, "token_type")
				} else {
					m["token_type"] = tt
				}
			})
			_, _, err := w.c.call(defaultBudget)
			want[*machine.TokenError](t, err)
			if mal := want[*machine.MalformedError](t, err); mal.Field != "token_type" {
				t.Errorf("field %q, want token_type", mal.Field)
			}
			if w.rs.Hits("/mcp") != 1 {
				t.Errorf("a token of an unknown type was used")
			}
		})
	}
	t.Run("DPoP when none was asked for", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		tokenEdit(w, true, func(m map[string]any) { m["token_type"] = "DPoP" })
		_, _, err := w.c.call(defaultBudget)
		if err == nil {
			var scheme string
			for _, r := range w.rs.Got() {
				if a := r.Header.Get("Authorization"); a != "" {
					scheme, _, _ = strings.Cut(a, " ")
				}
			}
			t.Fatal("regression: a token response with token_type DPoP to a client that asked for no DPoP binding is " +
				"accepted and the token used (as " + scheme + "): machine.ParseTokenResponse accepts \"DPoP\" " +
				"and tokensFrom only binds it when DPoP is on. spec-checklist E-49: reject DPoP when no DPoP was " +
				"requested. Fix: in codeExchanged/refreshAnswered/grantAnswered, fail with *MalformedError{Field: " +
				"\"token_type\"} when tr.TokenType == \"DPoP\" && !st.usesDPoP()")
		}
		want[*machine.TokenError](t, err)
	})
	t.Run("lower-case bearer is valid", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		tokenEdit(w, true, func(m map[string]any) { m["token_type"] = "bearer" })
		w.c.mustCall()
	})
}

func TestE50_ExpiresIn(t *testing.T) {
	for _, v := range []any{"3600.5", 3600.5, -1, 1e308, "9999999999999999999999", 400 * 24 * 3600} {
		name, _ := json.Marshal(v)
		t.Run(string(name), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			tokenEdit(w, true, func(m map[string]any) { m["expires_in"] = v })
			_, _, err := w.c.call(defaultBudget)
			if mal := want[*machine.MalformedError](t, err); mal.Field != "expires_in" {
				t.Errorf("field %q", mal.Field)
			}
		})
	}
	t.Run("0 does not make a refresh loop", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		tokenEdit(w, true, func(m map[string]any) { m["expires_in"] = 0 })
		_, _, err := w.c.call(defaultBudget)
		if err != nil {
			t.Logf("ends with %T: %v", err, err)
		}
		time.Sleep(200 * time.Millisecond)
		w.c.transport().Close() // stop a loop, if there is one, before counting
		refreshes := 0
		for _, r := range w.as.Got() {
			if strings.Contains(string(r.Body), "grant_type=refresh_token") {
				refreshes++
			}
		}
		if refreshes > 3 {
			t.Fatalf("regression: expires_in 0 makes a hot refresh loop: %d refresh grants in 200 ms. "+
				"machine/token.go wake() arms WakeAt at ExpiresAt-RefreshMargin, already past, so the timer fires at "+
				"once, the refresh returns another 0 s token, and so on (every request too sees the credential "+
				"expiring). spec-checklist E-50: clamp the computed expiry and apply the skew margin. Fix: treat "+
				"expires_in below a floor (e.g. 2×RefreshMargin or 60 s) as unknown-but-short: never schedule a "+
				"refresh earlier than max(ExpiresAt-margin, now+expires_in/2, lastRefresh+floor), and let a 401 "+
				"(not the clock) drive the next refresh", refreshes)
		}
	})
}

func TestE51_AccessTokenCharacters(t *testing.T) {
	for name, v := range map[string]string{
		"space":     "abc def",
		"CRLF":      "abc\r\nX-Injected: 1",
		"non-ASCII": "abcé",
		"tab":       "abc\tdef",
		"NUL":       "abc\x00def",
		// Visible ASCII (RFC 6749 A.12 VSCHAR) but outside the RFC 6750
		// §2.1 b64token the Authorization header carries.
		"quote":     `abc"def`,
		"comma":     "abc,def",
		"backslash": `abc\def`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			tokenEdit(w, true, func(m map[string]any) { m["access_token"] = v })
			_, _, err := w.c.call(defaultBudget)
			var mal *machine.MalformedError
			if !asErr(err, &mal) || mal.Field != "access_token" {
				sent := false
				for _, r := range w.rs.Got() {
					sent = sent || strings.Contains(r.Header.Get("Authorization"), v)
				}
				if sent && strings.ContainsAny(v, `",\`) {
					t.Fatal("regression: an access token with " + name + " (outside RFC 6750 b64token) is accepted and sent " +
						"in the Authorization header; it ends only because the server refuses it (" + errText(err) +
						"). spec-checklist E-51 lists `\"`; a comma or backslash also breaks the credentials grammar. " +
						"machine/parse_token.go checks VSCHAR (isVisibleASCII). Fix: for token_type Bearer/DPoP refuse " +
						"characters outside b64token (ALPHA DIGIT - . _ ~ + / and trailing =), or at least `\"`, `,`, `\\`")
				}
				t.Fatalf("error %v (%T), want *machine.MalformedError for access_token", err, err)
			}
			for _, r := range w.rs.Got() {
				if strings.ContainsAny(r.Header.Get("Authorization"), "\r\n\t\"é") {
					t.Errorf("a broken Authorization header reached the server")
				}
			}
		})
	}
}

func TestE52_GrantedScope(t *testing.T) {
	cases := []struct {
		name    string
		granted any // nil: omitted
		want    string
	}{
		{"subset", "read", "read"},
		{"superset", "read write admin", "read write admin"},
		{"omitted means as requested", nil, "read write"},
		{"extra offline_access", "read write offline_access", "read write offline_access"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.rs.setPRM("scopes_supported", []string{"read", "write"})
			tokenEdit(w, true, func(m map[string]any) {
				if c.granted == nil {
					delete(m, "scope")
				} else {
					m["scope"] = c.granted
				}
			})
			w.c.mustCall()
			if tok := w.c.stored().Tokens; tok == nil || tok.Scope != c.want {
				t.Errorf("stored scope %v, want %q", tok, c.want)
			}
		})
	}
}

func TestE53_RefreshResponses(t *testing.T) {
	t.Run("no refresh_token keeps the old one", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.login(t)
		old := w.c.storedRefresh()
		// A server that does not rotate: refresh answers without one.
		w.as.onToken(func(rw http.ResponseWriter, r *http.Request, form url.Values) bool {
			if form.Get("grant_type") != "refresh_token" {
				return false
			}
			w.as.mu.Lock()
			ok := w.as.refresh[form.Get("refresh_token")]
			at := randomValue("at-")
			w.as.access[at] = true
			w.as.mu.Unlock()
			if !ok {
				writeJSON(rw, 400, map[string]string{"error": "invalid_grant"})
				return true
			}
			writeJSON(rw, 200, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 3600})
			return true
		})
		for i := 0; i < 2; i++ {
			w.as.expire()
			w.c.mustCall()
			if got := w.c.storedRefresh(); got != old {
				t.Fatalf("round %d: stored refresh token changed although none was returned", i)
			}
		}
		if n := w.as.Hits("/authorize"); n != 1 {
			t.Errorf("authorizations %d, want 1", n)
		}
	})
	t.Run("rotation is stored before use", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.login(t)
		for i := 0; i < 3; i++ {
			before := w.c.storedRefresh()
			w.as.expire()
			w.c.mustCall()
			if after := w.c.storedRefresh(); after == before || after == "" {
				t.Fatalf("round %d: rotated refresh token not stored", i)
			}
		}
		if ig, _ := w.as.counts(); ig != 0 {
			t.Errorf("%d invalid_grant: a rotated token was reused", ig)
		}
	})
	t.Run("invalid_grant (test world) starts over", func(t *testing.T) {
		t.Parallel()
		tw, c := testworldClient(t, testworld.Options{DCR: true, RotateRefresh: true})
		c.mustCall()
		old := c.storedRefresh()
		tw.ExpireAccessTokens()
		tw.SetFault(testworld.Fault{InvalidGrantOnRefresh: true})
		c.mustCall()
		st := tw.Stats()
		if st.Authorizations != 2 || st.TokenRequests["refresh_token"] != 1 {
			t.Errorf("after invalid_grant: %d authorizations (want 2), %d refresh grants (want 1)", st.Authorizations, st.TokenRequests["refresh_token"])
		}
		if now := c.storedRefresh(); now == "" || now == old {
			t.Errorf("the dead refresh token was kept")
		}
	})
	t.Run("transient failure keeps the credential", func(t *testing.T) {
		t.Parallel()
		tw, c := testworldClient(t, testworld.Options{DCR: true, RotateRefresh: true})
		c.mustCall()
		old := c.storedRefresh()
		tw.ExpireAccessTokens()
		tw.SetFault(testworld.Fault{TokenStatus: 503})
		_, _, err := c.call(defaultBudget)
		want[*machine.TokenError](t, err)
		if !machine.IsRetryable(err) {
			t.Errorf("a 503 is retryable")
		}
		if c.storedRefresh() != old {
			t.Errorf("a transient failure lost the stored refresh token")
		}
		c.mustCall() // and it works again
	})
	t.Run("concurrent refreshes are one", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.login(t)
		w.as.expire()
		var wg sync.WaitGroup
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if status, _, err := w.c.call(defaultBudget); err != nil || status != 200 {
					t.Errorf("concurrent call: %d %v", status, err)
				}
			}()
		}
		wg.Wait()
		refreshes := 0
		for _, r := range w.as.Got() {
			if strings.Contains(string(r.Body), "grant_type=refresh_token") {
				refreshes++
			}
		}
		if ig, _ := w.as.counts(); refreshes != 1 || ig != 0 {
			t.Errorf("%d refresh grants, %d invalid_grant; want 1 and 0", refreshes, ig)
		}
	})
}

func TestE54_InvalidClient(t *testing.T) {
	for name, answer := range map[string]http.HandlerFunc{
		"400 invalid_client": func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 400, map[string]string{"error": "invalid_client"})
		},
		"401 with Basic challenge": func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("WWW-Authenticate", `Basic realm="token"`)
			writeJSON(rw, 401, map[string]string{"error": "invalid_client"})
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.route("POST /token", answer)
			for i := 1; i <= 2; i++ {
				_, _, err := w.c.call(defaultBudget)
				want[*machine.TokenError](t, err)
				if oe := want[*machine.OAuthError](t, err); oe.Code != "invalid_client" {
					t.Errorf("code %q", oe.Code)
				}
				// The dead registration is forgotten: each call registers
				// once and tries the token endpoint once, never in a loop.
				if r, tk := w.as.Hits("/register"), w.as.Hits("/token"); r != i || tk != i {
					t.Errorf("after %d calls: %d registrations, %d token requests; want %d each", i, r, tk, i)
				}
			}
		})
	}
}

func TestE55_DistinctTokenErrors(t *testing.T) {
	for _, code := range []string{"invalid_target", "invalid_scope", "unauthorized_client", "unsupported_grant_type", "invalid_request"} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.route("POST /token", func(rw http.ResponseWriter, r *http.Request) {
				writeJSON(rw, 400, map[string]string{"error": code})
			})
			_, _, err := w.c.call(defaultBudget)
			if oe := want[*machine.OAuthError](t, err); oe.Code != code || machine.IsRetryable(err) {
				t.Errorf("OAuthError %+v retryable %v; want code %s, not retryable", oe, machine.IsRetryable(err), code)
			}
			if n := w.as.Hits("/token"); n != 1 {
				t.Errorf("token endpoint called %d times: no blind retry", n)
			}
		})
	}
}

func TestE56_ExtraMembers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tokenEdit(w, true, func(m map[string]any) {
		m["id_token"] = randomValue("idt-")
		m["resource"] = "https://evil.example.test/"
		m["ext_expires_in"] = 7200
		m["expires_on"] = "1700000000"
		m["Expires_On"] = []any{1, 2}
		m["nested"] = map[string]any{"access_token": "not-the-token"}
	})
	w.c.mustCall()
	w.c.wantNoDNS()
	// The leak check proves the id_token was sent nowhere.
}
