package testworld

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStartRejectsBadOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"issuer path without slash":   {IssuerPath: "tenant"},
		"issuer path trailing slash":  {IssuerPath: "/tenant/"},
		"issuer path well-known":      {IssuerPath: "/.well-known"},
		"issuer path pattern chars":   {IssuerPath: "/{x}"},
		"legacy endpoints with path":  {Metadata: MetadataNone, IssuerPath: "/t"},
		"unknown auth method":         {AuthMethods: []string{"private_key_jwt"}},
		"public client without none":  {AuthMethods: []string{AuthMethodBasic}, PreRegistered: map[string]string{"c": ""}},
		"sub-second access token TTL": {AccessTTL: time.Millisecond},
	} {
		if w, err := Start(o); err == nil {
			w.Close()
			t.Errorf("%s: Start succeeded", name)
		}
	}
}

func TestRegistrationValidation(t *testing.T) {
	w := startWorld(t, Options{DCR: true, AuthMethods: []string{AuthMethodPost, AuthMethodNone}})
	reg := w.Issuer() + "/register"
	for name, tc := range map[string]struct {
		body map[string]any
		want string
	}{
		"no redirect_uris":       {map[string]any{"client_name": "x"}, "invalid_redirect_uri"},
		"redirect_uris string":   {map[string]any{"redirect_uris": "http://127.0.0.1/cb"}, "invalid_client_metadata"},
		"http non-loopback":      {map[string]any{"redirect_uris": []string{"http://example.com/cb"}}, "invalid_redirect_uri"},
		"fragment":               {map[string]any{"redirect_uris": []string{"https://example.com/cb#x"}}, "invalid_redirect_uri"},
		"javascript":             {map[string]any{"redirect_uris": []string{"javascript:alert(1)"}}, "invalid_redirect_uri"},
		"implicit grant":         {map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "grant_types": []string{"implicit"}}, "invalid_client_metadata"},
		"bad application_type":   {map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "application_type": "tv"}, "invalid_client_metadata"},
		"client_name not string": {map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "client_name": 3}, "invalid_client_metadata"},
	} {
		status, m := postJSON(t, reg, tc.body)
		wantOAuthError(t, name, status, m, http.StatusBadRequest, tc.want)
	}

	// Unsupported method requested: the AS substitutes its first method.
	status, m := postJSON(t, reg, map[string]any{
		"redirect_uris": []string{"http://localhost:1234/cb", "com.example.app:/cb"}, "token_endpoint_auth_method": AuthMethodBasic,
	})
	if status != http.StatusCreated || str(m, "token_endpoint_auth_method") != AuthMethodPost || str(m, "client_secret") == "" ||
		m["client_secret_expires_at"] != float64(0) || m["client_id_issued_at"] == nil {
		t.Errorf("substituted method: %d %v", status, m)
	}
	if gt, _ := m["grant_types"].([]any); len(gt) != 1 || gt[0] != "authorization_code" {
		t.Errorf("default grant_types = %v, want [authorization_code]", m["grant_types"])
	}
	status, m = postJSON(t, reg, map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb"}, "token_endpoint_auth_method": "none"})
	if status != http.StatusCreated || m["client_secret"] != nil || m["client_secret_expires_at"] != nil {
		t.Errorf("public client: %d %v", status, m)
	}

	w.SetFault(Fault{RegistrationStatus: http.StatusServiceUnavailable})
	status, m = postJSON(t, reg, map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb"}})
	wantOAuthError(t, "registration fault", status, m, http.StatusServiceUnavailable, "server_error")
	if got := w.Stats().Registrations; got != 2 {
		t.Errorf("Registrations = %d, want 2", got)
	}
}

// TestRefreshIssuancePolicy: refresh tokens only for grants that may have
// them — offline_access when advertised, the refresh_token grant registered
// (RFC 7591 defaults grant_types to authorization_code), not NoRefreshTokens.
func TestRefreshIssuancePolicy(t *testing.T) {
	w := startWorld(t, Options{DCR: true, ASScopesSupported: []string{"mcp", "offline_access"}})
	c := register(t, w, AuthMethodNone)
	if tok := login(t, w, c, "mcp"); tok["refresh_token"] != nil {
		t.Errorf("offline_access advertised but not requested: got a refresh token")
	}
	if tok := login(t, w, c, "mcp offline_access"); str(tok, "refresh_token") == "" {
		t.Errorf("offline_access requested: no refresh token")
	}

	status, reg := postJSON(t, w.Issuer()+"/register", map[string]any{
		"redirect_uris": []string{"http://127.0.0.1:40000/cb"}, "token_endpoint_auth_method": "none",
	})
	if status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, reg)
	}
	plain := oclient{id: str(reg, "client_id"), method: AuthMethodNone, redirect: "http://127.0.0.1:40000/cb"}
	if tok := login(t, w, plain, "mcp offline_access"); tok["refresh_token"] != nil {
		t.Errorf("client without the refresh_token grant got a refresh token")
	}

	w2 := startWorld(t, Options{DCR: true, NoRefreshTokens: true})
	c2 := register(t, w2, AuthMethodNone)
	if tok := login(t, w2, c2, ""); tok["refresh_token"] != nil {
		t.Errorf("NoRefreshTokens: got a refresh token")
	}
}

func TestTokenFaults(t *testing.T) {
	w := startWorld(t, Options{DCR: true})
	c := register(t, w, AuthMethodNone)
	code, verifier := getCode(t, w, c, "")

	w.SetFault(Fault{TokenStatus: http.StatusServiceUnavailable})
	status, m := exchange(t, w, c, code, verifier)
	wantOAuthError(t, "503 fault", status, m, http.StatusServiceUnavailable, "temporarily_unavailable")
	// The fault fired before processing: the same code still works.
	status, tok := exchange(t, w, c, code, verifier)
	if status != http.StatusOK {
		t.Fatalf("retry after one-shot 503: %d %v", status, tok)
	}

	w.SetFault(Fault{TokenBody: []byte(`{"access_token":`), TokenStatus: 200})
	status, m = refresh(t, w, c, str(tok, "refresh_token"), "")
	if status != http.StatusOK || m != nil {
		t.Errorf("TokenBody fault: %d %v, want 200 with a truncated body", status, m)
	}
	w.SetFault(Fault{InvalidGrantOnRefresh: true})
	status, m = refresh(t, w, c, str(tok, "refresh_token"), "")
	wantOAuthError(t, "InvalidGrantOnRefresh", status, m, http.StatusBadRequest, "invalid_grant")
	if status, m = refresh(t, w, c, str(tok, "refresh_token"), ""); status != http.StatusOK {
		t.Errorf("refresh after one-shot invalid_grant: %d %v", status, m)
	}
}

func TestDelayFault(t *testing.T) {
	w := startWorld(t, Options{})
	w.SetFault(Fault{Delay: 300 * time.Millisecond})
	c := &http.Client{Timeout: 100 * time.Millisecond}
	if _, err := c.Get(w.MetadataURLs()[0]); err == nil {
		t.Fatalf("delayed metadata answered within the client timeout")
	}
	resp, err := c.Get(w.MetadataURLs()[0])
	if err != nil {
		t.Fatalf("after the one-shot delay: %v", err)
	}
	resp.Body.Close()
}

func TestRevocation(t *testing.T) {
	w := startWorld(t, Options{DCR: true})
	c := register(t, w, AuthMethodBasic)
	tok := login(t, w, c, "")
	auth := &basicAuth{id: c.id, secret: c.secret}
	status, _, _ := postForm(t, w.Issuer()+"/revoke", url.Values{"token": {str(tok, "refresh_token")}, "token_type_hint": {"refresh_token"}}, auth)
	if status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	if resp, _ := mcpPost(t, w, str(tok, "access_token"), rpc(1, "tools/list", nil)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("access token after revoking its refresh token: %d", resp.StatusCode)
	}
	status, m := refresh(t, w, c, str(tok, "refresh_token"), "")
	wantOAuthError(t, "revoked refresh token", status, m, http.StatusBadRequest, "invalid_grant")
	if status, _, _ := postForm(t, w.Issuer()+"/revoke", url.Values{"token": {"unknown"}}, auth); status != http.StatusOK {
		t.Errorf("revoke unknown token: %d, want 200 (RFC 7009 §2.2)", status)
	}
}

func TestCIMDClient(t *testing.T) {
	w := startWorld(t, Options{CIMD: true})
	c := oclient{id: "https://client.example/app/metadata.json", method: AuthMethodNone, redirect: "http://127.0.0.1:33333/callback"}
	tok := login(t, w, c, "")
	if resp, _ := mcpPost(t, w, str(tok, "access_token"), rpc(1, "tools/list", nil)); resp.StatusCode != http.StatusOK {
		t.Errorf("CIMD token: %d", resp.StatusCode)
	}
	for _, bad := range []string{"https://client.example", "https://client.example/", "http://client.example/app"} {
		c.id = bad
		_, ch := pkce("cimd")
		if _, err := w.Authorize(w.Issuer() + "/authorize?" + authParams(w, c, ch, "s", "").Encode()); err == nil {
			t.Errorf("client_id %q accepted as CIMD", bad)
		}
	}
}

func TestLoopbackAnyPort(t *testing.T) {
	for _, anyPort := range []bool{false, true} {
		w := startWorld(t, Options{DCR: true, LoopbackAnyPort: anyPort})
		c := register(t, w, AuthMethodNone)
		c.redirect = strings.Replace(c.redirect, ":49152", ":49999", 1)
		_, ch := pkce("port")
		_, err := w.Authorize(w.Issuer() + "/authorize?" + authParams(w, c, ch, "s", "").Encode())
		if (err == nil) != anyPort {
			t.Errorf("LoopbackAnyPort=%v: other port accepted = %v (%v)", anyPort, err == nil, err)
		}
	}
}

func TestMigrateTo(t *testing.T) {
	w := startWorld(t, Options{DCR: true})
	c := register(t, w, AuthMethodNone)
	oldIssuer := w.Issuer()
	oldTok := login(t, w, c, "")

	newIssuer, err := w.MigrateTo(Options{DCR: true, IssuerPath: "/v2"})
	if err != nil {
		t.Fatal(err)
	}
	if newIssuer == oldIssuer || w.Issuer() != newIssuer || !strings.HasSuffix(newIssuer, "/v2") {
		t.Fatalf("issuers: old %q new %q Issuer() %q", oldIssuer, newIssuer, w.Issuer())
	}
	_, prm := getJSON(t, w.PRMURL())
	if as := prm["authorization_servers"].([]any); len(as) != 1 || as[0] != newIssuer {
		t.Errorf("PRM authorization_servers = %v, want [%s]", as, newIssuer)
	}
	if resp, _ := mcpPost(t, w, str(oldTok, "access_token"), rpc(1, "tools/list", nil)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("old AS token after migration: %d, want 401", resp.StatusCode)
	}
	c2 := register(t, w, AuthMethodNone)
	if resp, _ := mcpPost(t, w, str(login(t, w, c2, ""), "access_token"), rpc(1, "tools/list", nil)); resp.StatusCode != http.StatusOK {
		t.Errorf("new AS token: %d", resp.StatusCode)
	}
}

// TestConcurrentHammer: 64 goroutines log in, refresh and call tools at once;
// the race detector and the counters must agree.
func TestConcurrentHammer(t *testing.T) {
	const n = 64
	w := startWorld(t, Options{DCR: true, RotateRefresh: true, Logf: func(string, ...any) {}})
	c := register(t, w, AuthMethodNone)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			verifier, challenge := pkce(strings.Repeat("x", i))
			loc, err := w.Authorize(w.Issuer() + "/authorize?" + authParams(w, c, challenge, "s", "").Encode())
			if err != nil {
				errs <- err.Error()
				return
			}
			u, _ := url.Parse(loc)
			form := url.Values{
				"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")}, "redirect_uri": {c.redirect},
				"code_verifier": {verifier}, "resource": {w.MCPURL()}, "client_id": {c.id},
			}
			resp, err := http.PostForm(w.Issuer()+"/token", form)
			if err != nil || resp.StatusCode != http.StatusOK {
				errs <- "token failed"
				return
			}
			var tok map[string]any
			err = json.NewDecoder(resp.Body).Decode(&tok)
			resp.Body.Close()
			if err != nil {
				errs <- "token decode: " + err.Error()
				return
			}
			w.SetFault(Fault{}) // concurrent SetFault must be safe too
			_ = w.Stats()
			text := fmt.Sprint("hello ", i)
			hr, body := mcpPost(t, w, str(tok, "access_token"), callTool("echo", map[string]any{"text": text}))
			if hr.StatusCode != http.StatusOK || !strings.Contains(string(body), `"text":"`+text+`"`) {
				errs <- fmt.Sprintf("echo %d: %d %s", i, hr.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	s := w.Stats()
	if s.CodesIssued != n || s.TokenRequests["authorization_code"] != n || s.InvalidGrants != 0 || s.Authorized != n {
		t.Errorf("stats after hammer: %+v", s)
	}
}

// TestConcurrentRefreshRace: with rotation, n parallel refreshes of one
// refresh token let exactly one win; the replays revoke the family, so even
// the winner's tokens die. This is why clients must single-flight refreshes.
func TestConcurrentRefreshRace(t *testing.T) {
	const n = 64
	w := startWorld(t, Options{DCR: true, RotateRefresh: true, Logf: func(string, ...any) {}})
	c := register(t, w, AuthMethodNone)
	rt := str(login(t, w, c, ""), "refresh_token")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ok, bad int
		winner  string
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.PostForm(w.Issuer()+"/token", url.Values{
				"grant_type": {"refresh_token"}, "refresh_token": {rt}, "resource": {w.MCPURL()}, "client_id": {c.id},
			})
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case resp.StatusCode == http.StatusOK:
				ok++
				winner = str(m, "access_token")
			case str(m, "error") == "invalid_grant":
				bad++
			}
		}()
	}
	wg.Wait()
	if ok != 1 || bad != n-1 {
		t.Fatalf("ok=%d invalid_grant=%d, want 1 and %d", ok, bad, n-1)
	}
	if resp, _ := mcpPost(t, w, winner, rpc(1, "tools/list", nil)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("winner's token after family revocation: %d, want 401", resp.StatusCode)
	}
	if s := w.Stats(); s.FamiliesRevoked != n-1 || s.InvalidGrants != n-1 {
		t.Errorf("FamiliesRevoked=%d InvalidGrants=%d, want %d", s.FamiliesRevoked, s.InvalidGrants, n-1)
	}
}
