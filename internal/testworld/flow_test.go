package testworld

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestFullFlow walks the MCP authorization flow by hand, with every client
// authentication method: 401 → PRM → AS metadata → DCR → authorize with PKCE
// → token → MCP initialize, tools/list, tools/call.
func TestFullFlow(t *testing.T) {
	for _, method := range []string{AuthMethodNone, AuthMethodBasic, AuthMethodPost} {
		t.Run(method, func(t *testing.T) {
			w := startWorld(t, Options{DCR: true, IssParameter: true, IssuerPath: "/tenant1"})

			// 1. The challenge leads to PRM, PRM to the issuer, the issuer to metadata.
			resp, _ := mcpPost(t, w, "", rpc(1, "initialize", nil))
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("unauthenticated: status %d, want 401", resp.StatusCode)
			}
			chal := resp.Header.Get("WWW-Authenticate")
			prmURL := between(chal, `resource_metadata="`, `"`)
			_, prm := getJSON(t, prmURL)
			issuer := prm["authorization_servers"].([]any)[0].(string)
			metaURL := strings.Replace(issuer, "/tenant1", "/.well-known/oauth-authorization-server/tenant1", 1)
			status, meta := getJSON(t, metaURL)
			if status != http.StatusOK || str(meta, "issuer") != issuer {
				t.Fatalf("metadata at %s: %d %v", metaURL, status, meta)
			}

			// 2. Register.
			redirect := "http://127.0.0.1:50000/cb"
			status, reg := postJSON(t, str(meta, "registration_endpoint"), map[string]any{
				"redirect_uris":              []string{redirect},
				"grant_types":                []string{"authorization_code", "refresh_token"},
				"token_endpoint_auth_method": method,
				"client_name":                "flow",
			})
			if status != http.StatusCreated {
				t.Fatalf("register: %d %v", status, reg)
			}
			c := oclient{id: str(reg, "client_id"), secret: str(reg, "client_secret"), method: str(reg, "token_endpoint_auth_method"), redirect: redirect}
			if c.method != method {
				t.Fatalf("registered method %q, want %q", c.method, method)
			}
			if (method == AuthMethodNone) != (c.secret == "") {
				t.Fatalf("method %s: client_secret present = %v", method, c.secret != "")
			}

			// 3. Authorize through the headless user agent.
			verifier, challenge := pkce("flow")
			params := authParams(w, c, challenge, "state-xyz", "mcp:read")
			loc, err := w.Authorize(str(meta, "authorization_endpoint") + "?" + params.Encode())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(loc, redirect+"?") {
				t.Fatalf("Location %q does not go to %q", loc, redirect)
			}
			u, _ := url.Parse(loc)
			q := u.Query()
			if q.Get("state") != "state-xyz" || q.Get("iss") != issuer || q.Get("code") == "" {
				t.Fatalf("authorization response %v: want state, iss=%s, code", q, issuer)
			}

			// 4. Exchange.
			status, tok := exchange(t, w, c, q.Get("code"), verifier)
			if status != http.StatusOK {
				t.Fatalf("token: %d %v", status, tok)
			}
			if tok["token_type"] != "Bearer" || tok["expires_in"] != float64(3600) || tok["scope"] != "mcp:read" ||
				str(tok, "access_token") == "" || str(tok, "refresh_token") == "" {
				t.Fatalf("token response %v", tok)
			}

			// 5. MCP.
			at := str(tok, "access_token")
			resp, body := mcpPost(t, w, at, rpc(1, "initialize", map[string]any{
				"protocolVersion": "2025-06-18",
				"capabilities":    map[string]any{},
				"clientInfo":      map[string]any{"name": "flow", "version": "0"},
			}))
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"testworld"`) {
				t.Fatalf("initialize: %d %s", resp.StatusCode, body)
			}
			resp, body = mcpPost(t, w, at, rpc(2, "tools/list", nil))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("tools/list: %d %s", resp.StatusCode, body)
			}
			var list struct {
				Result struct{ Tools []struct{ Name string } }
			}
			if err := json.Unmarshal(body, &list); err != nil {
				t.Fatalf("tools/list %s: %v", body, err)
			}
			var names []string
			for _, tl := range list.Result.Tools {
				names = append(names, tl.Name)
			}
			if diff := cmp.Diff([]string{"echo", "write"}, names); diff != "" {
				t.Errorf("tools (-want +got):\n%s", diff)
			}
			_, body = mcpPost(t, w, at, callTool("echo", map[string]any{"text": "hi there"}))
			if got := toolText(t, body); got != "hi there" {
				t.Errorf("echo = %q", got)
			}

			s := w.Stats()
			if s.PRMRequests != 1 || s.MetadataRequests != 1 || s.Registrations != 1 || s.Authorizations != 1 ||
				s.CodesIssued != 1 || s.TokenRequests["authorization_code"] != 1 || s.Unauthorized != 1 ||
				s.Authorized != 3 || s.ProtectedRequests != 4 {
				t.Errorf("stats %+v", s)
			}
			if s.Paths["POST /tenant1/token"] != 1 || s.Paths["GET /tenant1/authorize"] != 1 || s.Paths["POST /mcp"] != 4 {
				t.Errorf("paths %v", s.Paths)
			}
		})
	}
}

func between(s, start, end string) string {
	_, after, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, end)
	return v
}

// TestRefreshRotationAndFamilyRevocation: rotation invalidates the old
// refresh token; replaying it is invalid_grant and kills the whole grant,
// including the newest tokens (OAuth 2.1 §4.3.1).
func TestRefreshRotationAndFamilyRevocation(t *testing.T) {
	w := startWorld(t, Options{DCR: true, RotateRefresh: true})
	c := register(t, w, AuthMethodNone)
	tok := login(t, w, c, "a b")
	rt1 := str(tok, "refresh_token")

	status, tok2 := refresh(t, w, c, rt1, "")
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, tok2)
	}
	rt2, at2 := str(tok2, "refresh_token"), str(tok2, "access_token")
	if rt2 == "" || rt2 == rt1 {
		t.Fatalf("rotation: new refresh token %q (old %q)", rt2, rt1)
	}
	if tok2["scope"] != "a b" {
		t.Errorf("refreshed scope = %v, want %q", tok2["scope"], "a b")
	}
	if resp, _ := mcpPost(t, w, at2, rpc(1, "tools/list", nil)); resp.StatusCode != http.StatusOK {
		t.Fatalf("new access token: status %d", resp.StatusCode)
	}

	status, m := refresh(t, w, c, rt1, "")
	wantOAuthError(t, "replay of rotated refresh token", status, m, http.StatusBadRequest, "invalid_grant")
	status, m = refresh(t, w, c, rt2, "")
	wantOAuthError(t, "newest refresh token after family revocation", status, m, http.StatusBadRequest, "invalid_grant")
	resp, _ := mcpPost(t, w, at2, rpc(1, "tools/list", nil))
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("access token after family revocation: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if s := w.Stats(); s.InvalidGrants != 2 || s.FamiliesRevoked != 1 || s.TokenRequests["refresh_token"] != 3 {
		t.Errorf("stats: InvalidGrants=%d FamiliesRevoked=%d refresh=%d", s.InvalidGrants, s.FamiliesRevoked, s.TokenRequests["refresh_token"])
	}
}

func TestRefreshWithoutRotationAndScope(t *testing.T) {
	w := startWorld(t, Options{DCR: true})
	c := register(t, w, AuthMethodBasic)
	rt := str(login(t, w, c, "a b"), "refresh_token")
	for i := 0; i < 2; i++ {
		status, m := refresh(t, w, c, rt, "a")
		if status != http.StatusOK || m["scope"] != "a" {
			t.Fatalf("narrowing refresh %d: %d %v", i, status, m)
		}
		if _, ok := m["refresh_token"]; ok {
			t.Errorf("no rotation configured, yet a refresh_token was returned")
		}
	}
	status, m := refresh(t, w, c, rt, "a c")
	wantOAuthError(t, "widening refresh", status, m, http.StatusBadRequest, "invalid_scope")
	// The grant survives an attempt to widen, and keeps its full scope.
	if status, m := refresh(t, w, c, rt, ""); status != http.StatusOK || m["scope"] != "a b" {
		t.Errorf("refresh after widening attempt: %d %v", status, m)
	}
	other := register(t, w, AuthMethodNone)
	status, m = refresh(t, w, other, rt, "")
	wantOAuthError(t, "refresh by another client", status, m, http.StatusBadRequest, "invalid_grant")
}

func TestInsufficientScope(t *testing.T) {
	w := startWorld(t, Options{DCR: true, ToolScopes: map[string]string{"write": "mcp:write"}})
	c := register(t, w, AuthMethodNone)
	at := str(login(t, w, c, "mcp:read"), "access_token")

	_, body := mcpPost(t, w, at, callTool("echo", map[string]any{"text": "ok"}))
	if got := toolText(t, body); got != "ok" {
		t.Errorf("echo = %q", got)
	}
	resp, _ := mcpPost(t, w, at, callTool("write", nil))
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("write without scope: status %d, want 403", resp.StatusCode)
	}
	want := `Bearer error="insufficient_scope", scope="mcp:write", resource_metadata="` + w.PRMURL() +
		`", error_description="the tool requires scope mcp:write"`
	if diff := cmp.Diff(want, resp.Header.Get("WWW-Authenticate")); diff != "" {
		t.Errorf("403 challenge (-want +got):\n%s", diff)
	}
	// A batch hiding the call is caught too.
	b := []map[string]any{rpc(1, "tools/list", nil), callTool("write", nil)}
	bb, _ := json.Marshal(b)
	if got := toolCalls(bb); !cmp.Equal(got, []string{"write"}) {
		t.Errorf("toolCalls(batch) = %v", got)
	}

	at2 := str(login(t, w, c, "mcp:read mcp:write"), "access_token")
	resp, body = mcpPost(t, w, at2, callTool("write", nil))
	if resp.StatusCode != http.StatusOK || toolText(t, body) != "written" {
		t.Errorf("write with scope: %d %s", resp.StatusCode, body)
	}
	if s := w.Stats(); s.Forbidden != 1 {
		t.Errorf("Forbidden = %d, want 1", s.Forbidden)
	}
}

func TestExpireAccessTokens(t *testing.T) {
	w := startWorld(t, Options{DCR: true, ChallengeScope: "mcp:read"})
	c := register(t, w, AuthMethodNone)
	tok := login(t, w, c, "mcp:read")
	at := str(tok, "access_token")
	if resp, _ := mcpPost(t, w, at, rpc(1, "tools/list", nil)); resp.StatusCode != http.StatusOK {
		t.Fatalf("before expiry: %d", resp.StatusCode)
	}
	w.ExpireAccessTokens()
	resp, _ := mcpPost(t, w, at, rpc(1, "tools/list", nil))
	want := `Bearer error="invalid_token", error_description="token revoked or expired", resource_metadata="` +
		w.PRMURL() + `", scope="mcp:read"`
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
		t.Errorf("after ExpireAccessTokens: %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	// Refresh still works and yields a usable token.
	status, m := refresh(t, w, c, str(tok, "refresh_token"), "")
	if status != http.StatusOK {
		t.Fatalf("refresh after expiry: %d %v", status, m)
	}
	if resp, _ := mcpPost(t, w, str(m, "access_token"), rpc(1, "tools/list", nil)); resp.StatusCode != http.StatusOK {
		t.Errorf("refreshed token: %d", resp.StatusCode)
	}
}

func TestAccessTokenTTL(t *testing.T) {
	clock := newFakeClock()
	w := startWorld(t, Options{DCR: true, AccessTTL: 90 * time.Second, Now: clock.Now})
	c := register(t, w, AuthMethodNone)
	tok := login(t, w, c, "")
	if tok["expires_in"] != float64(90) {
		t.Errorf("expires_in = %v, want 90", tok["expires_in"])
	}
	clock.Advance(89 * time.Second)
	if resp, _ := mcpPost(t, w, str(tok, "access_token"), rpc(1, "tools/list", nil)); resp.StatusCode != http.StatusOK {
		t.Errorf("token 1s before its TTL: %d", resp.StatusCode)
	}
	clock.Advance(time.Second)
	resp, _ := mcpPost(t, w, str(tok, "access_token"), rpc(1, "tools/list", nil))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token past its TTL: %d", resp.StatusCode)
	}
}
