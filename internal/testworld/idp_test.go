package testworld

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func xEnterpriseWorld(t *testing.T, clock *fakeClock) *World {
	t.Helper()
	return startWorld(t, Options{Enterprise: true, EnterpriseClientID: "mcp-client", Now: clock.Now,
		PreRegistered: map[string]string{"mcp-client": "s3cret", "other": "o"}})
}

func xExchangeForm(w *World, idToken string) url.Values {
	return url.Values{
		"grant_type":           {grantTokenExchange},
		"client_id":            {w.IdPClientID()},
		"subject_token":        {idToken},
		"subject_token_type":   {tokenTypeIDToken},
		"requested_token_type": {tokenTypeIDJAG},
		"audience":             {w.Issuer()},
		"resource":             {w.MCPURL()},
		"scope":                {"mcp:read"},
	}
}

func xDecodeJWT(t *testing.T, raw string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", raw)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			t.Fatalf("JWS part %d undecodable", i)
		}
	}
	return header, claims
}

func TestEnterpriseExchangeAndGrant(t *testing.T) {
	clock := newFakeClock()
	w := xEnterpriseWorld(t, clock)
	status, m, _ := postForm(t, w.IdPTokenEndpoint(), xExchangeForm(w, w.IssueIDToken("alice")), nil)
	if status != 200 || str(m, "issued_token_type") != tokenTypeIDJAG || str(m, "token_type") != "N_A" {
		t.Fatalf("exchange: %d %v", status, m)
	}
	jag := str(m, "access_token")
	h, c := xDecodeJWT(t, jag)
	if h["typ"] != typIDJAG || h["alg"] != "ES256" {
		t.Errorf("ID-JAG header %v", h)
	}
	for k, v := range map[string]any{"iss": w.IdPIssuer(), "sub": "alice", "aud": w.Issuer(), "client_id": "mcp-client", "resource": w.MCPURL(), "scope": "mcp:read"} {
		if c[k] != v {
			t.Errorf("ID-JAG %s = %v, want %v", k, c[k], v)
		}
	}

	grant := func(c oclient, assertion, resource string) (int, map[string]any) {
		return tokenRequest(t, w, c, url.Values{"grant_type": {GrantJWTBearer}, "assertion": {assertion}, "resource": {resource}})
	}
	mcpClient := oclient{id: "mcp-client", secret: "s3cret", method: AuthMethodBasic}
	// Refusals first: none of them uses the ID-JAG up.
	status, m = grant(oclient{id: "other", secret: "o", method: AuthMethodBasic}, jag, w.MCPURL())
	wantOAuthError(t, "another client", status, m, 400, "invalid_grant")
	status, m, _ = postForm(t, w.Issuer()+"/token", url.Values{"grant_type": {GrantJWTBearer}, "assertion": {jag}, "resource": {w.MCPURL()}}, nil)
	wantOAuthError(t, "no client authentication", status, m, 401, "invalid_client")
	status, m = grant(mcpClient, jag, w.ResourceOrigin()+"/other")
	wantOAuthError(t, "another resource", status, m, 400, "invalid_target")

	status, m = grant(mcpClient, jag, w.MCPURL())
	if status != 200 || str(m, "scope") != "mcp:read" {
		t.Fatalf("jwt-bearer with the ID-JAG: %d %v", status, m)
	}
	if resp, body := mcpPost(t, w, str(m, "access_token"), rpc(1, "tools/list", map[string]any{})); resp.StatusCode != 200 {
		t.Fatalf("MCP with the token: %d %s", resp.StatusCode, body)
	}
	status, m = grant(mcpClient, jag, w.MCPURL())
	wantOAuthError(t, "ID-JAG replayed", status, m, 400, "invalid_grant")

	// Expired ID-JAG.
	_, m, _ = postForm(t, w.IdPTokenEndpoint(), xExchangeForm(w, w.IssueIDToken("bob")), nil)
	clock.Advance(idJAGTTL + time.Second)
	status, m = grant(mcpClient, str(m, "access_token"), w.MCPURL())
	wantOAuthError(t, "expired ID-JAG", status, m, 400, "invalid_grant")

	// A forged ID-JAG: signed by another key.
	forged := xSign(t, xECKey(t), typIDJAG, c)
	status, m = grant(mcpClient, forged, w.MCPURL())
	wantOAuthError(t, "forged ID-JAG", status, m, 400, "invalid_grant")

	log := w.GrantLog()
	if len(log) != 1 || log[0].Subject != "alice" || log[0].ClientID != "mcp-client" || log[0].AuthMethod != AuthMethodBasic || log[0].GrantType != GrantJWTBearer {
		t.Errorf("grant log %+v", log)
	}
	if st := w.Stats(); st.TokenExchanges != 2 || st.JTIReplays != 1 || st.GrantsIssued[GrantJWTBearer] != 1 {
		t.Errorf("stats: exchanges %d replays %d grants %v", st.TokenExchanges, st.JTIReplays, st.GrantsIssued)
	}
}

func TestIdPRefusals(t *testing.T) {
	clock := newFakeClock()
	w := xEnterpriseWorld(t, clock)
	good := w.IssueIDToken("alice")
	edit := func(k, v string) url.Values {
		f := xExchangeForm(w, good)
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	forged := xSign(t, xECKey(t), "JWT", map[string]any{"iss": w.IdPIssuer(), "sub": "mallory", "aud": w.IdPClientID(), "exp": clock.Now().Add(time.Hour).Unix()})
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"wrong grant_type", edit("grant_type", "client_credentials"), 400, "unsupported_grant_type"},
		{"unknown client", edit("client_id", "nobody"), 401, "invalid_client"},
		{"subject_token_type", edit("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"), 400, "invalid_request"},
		{"requested_token_type", edit("requested_token_type", "urn:ietf:params:oauth:token-type:access_token"), 400, "invalid_request"},
		{"no subject_token", edit("subject_token", ""), 400, "invalid_request"},
		{"forged ID token", edit("subject_token", forged), 400, "invalid_grant"},
		{"audience elsewhere", edit("audience", "https://other.example"), 400, "invalid_target"},
		{"no audience", edit("audience", ""), 400, "invalid_target"},
		{"resource elsewhere", edit("resource", "https://other.example/mcp"), 400, "invalid_target"},
		{"no resource", edit("resource", ""), 400, "invalid_target"},
	} {
		status, m, _ := postForm(t, w.IdPTokenEndpoint(), tc.form, nil)
		wantOAuthError(t, tc.name, status, m, tc.status, tc.code)
	}
	clock.Advance(idTokenTTL)
	status, m, _ := postForm(t, w.IdPTokenEndpoint(), xExchangeForm(w, good), nil)
	wantOAuthError(t, "expired ID token", status, m, 400, "invalid_grant")

	w.RefuseTokenExchanges("access_denied")
	status, m, _ = postForm(t, w.IdPTokenEndpoint(), xExchangeForm(w, w.IssueIDToken("alice")), nil)
	wantOAuthError(t, "refusing IdP", status, m, 400, "access_denied")
	w.RefuseTokenExchanges("")
	status, m, _ = postForm(t, w.IdPTokenEndpoint(), xExchangeForm(w, w.IssueIDToken("alice")), nil)
	if status != http.StatusOK {
		t.Errorf("IdP after RefuseTokenExchanges(\"\"): %d %v", status, m)
	}
	if st := w.Stats(); st.TokenExchanges != 1 || st.TokenExchangesRefused != 12 || st.Paths["POST "+idpTokenPath] != 13 {
		t.Errorf("stats: exchanges %d refused %d paths %v", st.TokenExchanges, st.TokenExchangesRefused, st.Paths)
	}
}

func TestIdPNeedsEnterprise(t *testing.T) {
	w := startWorld(t, Options{})
	defer func() {
		if recover() == nil {
			t.Error("IdPTokenEndpoint without Enterprise did not panic")
		}
	}()
	_ = w.IdPTokenEndpoint()
}
