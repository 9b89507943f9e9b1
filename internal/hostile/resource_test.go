package hostile_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mcpauth/mcpauth/machine"
)

// §4.9 Resource-server behaviour after authorization: E-57 … E-60.

// forbidding makes the resource server answer every request that carries a
// live token with 403 and the challenge challenge(round) (round counts
// from 1); requests without one get the honest 401.
func forbidding(w *world, challenge func(round int) string) {
	var mu sync.Mutex
	round := 0
	w.rs.route("POST /mcp", func(rw http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !w.as.valid(tok) {
			w.rs.handleMCP(rw, r)
			return
		}
		mu.Lock()
		round++
		c := challenge(round)
		mu.Unlock()
		if c != "" {
			rw.Header().Set("WWW-Authenticate", c)
		}
		writeJSON(rw, 403, map[string]string{"error": "forbidden"})
	})
}

// authorizeScopes lists the scope of every authorization request.
func authorizeScopes(w *world) []string {
	var out []string
	for _, r := range w.as.Got() {
		if strings.HasPrefix(r.URL, "/authorize") {
			u, _ := url.Parse(r.URL)
			out = append(out, u.Query().Get("scope"))
		}
	}
	return out
}

func TestE57_TokenRejectedByResource(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// The server trusts nobody (audience mismatch, an AS that ignores
	// resource): every fresh token gets 401.
	w.rs.mu.Lock()
	w.rs.trust = newAuthServer(t, "nobody")
	w.rs.mu.Unlock()
	_, _, err := w.c.call(defaultBudget)
	e := want[*machine.UnauthorizedError](t, err)
	if e.Limit <= 0 {
		t.Errorf("UnauthorizedError %+v", e)
	}
	if n := w.as.Hits("/authorize") + w.as.Hits("/token"); n > 2*(e.Limit+1) {
		t.Errorf("%d authorization and token requests for one call: a loop", n)
	}
	if n := w.rs.Hits("/mcp"); n > e.Limit+2 {
		t.Errorf("request sent %d times, limit %d", n, e.Limit)
	}
}

func TestE58_Forbidden(t *testing.T) {
	t.Run("403 without insufficient_scope is the answer", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.login(t)
		forbidding(w, func(int) string { return `Bearer error="invalid_token"` })
		status, _, err := w.c.call(defaultBudget)
		if err != nil || status != 403 {
			t.Fatalf("status %d, err %v; want the 403 delivered", status, err)
		}
		if n := w.as.Hits("/authorize"); n != 1 {
			t.Errorf("a plain 403 caused a step-up (%d authorizations)", n)
		}
	})
	t.Run("insufficient_scope without scope", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.setPRM("scopes_supported", []string{"read"})
		w.login(t)
		forbidding(w, func(int) string { return `Bearer error="insufficient_scope"` })
		_, _, err := w.c.call(defaultBudget)
		e := want[*machine.StepUpLimitError](t, err)
		scopes := authorizeScopes(w)
		if len(scopes) != 1+e.Limit {
			t.Errorf("authorizations %q, want 1 + %d step-ups", scopes, e.Limit)
		}
		for _, s := range scopes[1:] {
			if !strings.Contains(s, "read") {
				t.Errorf("step-up scope %q lost the current scopes", s)
			}
		}
	})
}

func TestE59_StepUpLoops(t *testing.T) {
	cases := map[string]func(round int) string{
		"same scope again": func(int) string { return `Bearer error="insufficient_scope", scope="admin"` },
		"growing scope set": func(round int) string {
			var s []string
			for i := 0; i <= round; i++ {
				s = append(s, fmt.Sprintf("s%d", i))
			}
			return `Bearer error="insufficient_scope", scope="` + strings.Join(s, " ") + `"`
		},
		"different scope each round": func(round int) string {
			return fmt.Sprintf(`Bearer error="insufficient_scope", scope="scope%d"`, round)
		},
		"injected offline_access": func(int) string {
			return `Bearer error="insufficient_scope", scope="offline_access admin"`
		},
		"huge scope set": func(round int) string {
			var s []string
			for i := 0; i < 500; i++ {
				s = append(s, fmt.Sprintf("r%d-%d", round, i))
			}
			return `Bearer error="insufficient_scope", scope="` + strings.Join(s, " ") + `"`
		},
	}
	for name, challenge := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.login(t)
			forbidding(w, challenge)
			_, _, err := w.c.call(defaultBudget)
			e := want[*machine.StepUpLimitError](t, err)
			scopes := authorizeScopes(w)
			if len(scopes) > 1+e.Limit || e.Limit > 3 {
				t.Errorf("%d authorizations with limit %d (conformance auth/scope-retry-limit: at most 3)", len(scopes), e.Limit)
			}
			for _, s := range scopes {
				if len(s) > 8<<10 {
					t.Errorf("authorization request with a %d-byte scope", len(s))
				}
			}
			if name == "injected offline_access" {
				for _, s := range scopes {
					if strings.Contains(s, "offline_access") {
						t.Fatal("regression: a step-up asks for offline_access because the resource server's 403 " +
							"challenge named it (" + strconvQuote(s) + "); A-REF-05 (SEP-2207): offline_access from " +
							"the RS is not a resource requirement. initialScope drops it, but machine/protected.go " +
							"insufficientScope passes the challenged scope through unionScopes unfiltered. Fix: " +
							"withoutScope(scope, \"offline_access\") there too (and add it only on wantsOfflineAccess)")
					}
				}
			}
		})
	}
}

func TestE60_InvalidTokenRefreshesFirst(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.login(t)
	w.rs.setChallenge(`Bearer error="invalid_token", error_description="expired", resource_metadata="` + w.rs.prmURL + `"`)
	w.as.expire()
	w.c.mustCall()
	refreshes := 0
	for _, r := range w.as.Got() {
		if strings.Contains(string(r.Body), "grant_type=refresh_token") {
			refreshes++
		}
	}
	if refreshes != 1 || w.as.Hits("/authorize") != 1 {
		t.Errorf("%d refreshes, %d authorizations; want the refresh first (1 and 1)", refreshes, w.as.Hits("/authorize"))
	}
}
