package testworld

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// Helpers of the extension tests are prefixed with x.

func xECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func xSign(t *testing.T, key crypto.Signer, typ string, claims any) string {
	t.Helper()
	s, err := SignJWT(key, typ, claims)
	if err != nil {
		t.Fatalf("SignJWT: %v", err)
	}
	return s
}

// xAssertion is a valid private_key_jwt assertion for client id at w.
func xAssertion(w *World, id string, now time.Time, jti string) map[string]any {
	return map[string]any{"iss": id, "sub": id, "aud": w.Issuer(), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": jti}
}

func xCCForm(w *World) url.Values {
	return url.Values{"grant_type": {GrantClientCredentials}, "resource": {w.MCPURL()}, "scope": {"mcp:read"}}
}

func TestExtensionMetadataOnlyWhenEnabled(t *testing.T) {
	plain := startWorld(t, Options{})
	_, m := getJSON(t, plain.MetadataURLs()[0])
	for _, k := range []string{"token_endpoint_auth_signing_alg_values_supported", "dpop_signing_alg_values_supported"} {
		if _, ok := m[k]; ok {
			t.Errorf("default metadata has %s", k)
		}
	}
	if got := m["grant_types_supported"]; len(got.([]any)) != 2 {
		t.Errorf("default grant_types_supported = %v", got)
	}

	key := xECKey(t)
	w := startWorld(t, Options{
		ClientCredentials: true, DPoP: true,
		AuthMethods:       []string{AuthMethodPrivateKeyJWT, AuthMethodBasic},
		ClientKeys:        map[string]crypto.PublicKey{"svc": key.Public()},
		ClientSigningAlgs: []string{"ES256", "EdDSA"},
		WorkloadIssuer:    "https://workload.example", WorkloadKey: key.Public(),
	})
	_, m = getJSON(t, w.MetadataURLs()[0])
	want := map[string]any{
		"grant_types_supported":                            []any{"authorization_code", "refresh_token", GrantClientCredentials, GrantJWTBearer},
		"token_endpoint_auth_methods_supported":            []any{AuthMethodPrivateKeyJWT, AuthMethodBasic},
		"token_endpoint_auth_signing_alg_values_supported": []any{"ES256", "EdDSA"},
		"dpop_signing_alg_values_supported":                []any{"ES256"},
	}
	for k, v := range want {
		if !slices.Equal(toStrings(m[k]), toStrings(v)) {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestExtensionOptionsRejected(t *testing.T) {
	key := xECKey(t)
	for name, o := range map[string]Options{
		"keys without private_key_jwt": {ClientKeys: map[string]crypto.PublicKey{"c": key.Public()}},
		"workload issuer without key":  {WorkloadIssuer: "https://w.example"},
		"enterprise without client":    {Enterprise: true},
		"enterprise unknown client":    {Enterprise: true, EnterpriseClientID: "nobody"},
		"nonce without DPoP":           {DPoPNonceRS: true},
		"unknown signing alg":          {AuthMethods: []string{AuthMethodPrivateKeyJWT}, ClientKeys: map[string]crypto.PublicKey{"c": key.Public()}, ClientSigningAlgs: []string{"HS256"}},
		"client twice":                 {PreRegistered: map[string]string{"c": "s"}, AuthMethods: []string{AuthMethodPrivateKeyJWT, AuthMethodBasic}, ClientKeys: map[string]crypto.PublicKey{"c": key.Public()}},
	} {
		if w, err := Start(o); err == nil {
			w.Close()
			t.Errorf("%s: Start succeeded", name)
		}
	}
}

func TestClientCredentialsGrant(t *testing.T) {
	for _, method := range []string{AuthMethodBasic, AuthMethodPost} {
		t.Run(method, func(t *testing.T) {
			w := startWorld(t, Options{ClientCredentials: true, AuthMethods: []string{method, AuthMethodNone},
				PreRegistered: map[string]string{"svc": "s3cr+t/=", "pub": ""}})
			svc := oclient{id: "svc", secret: "s3cr+t/=", method: method}
			status, m := tokenRequest(t, w, svc, xCCForm(w))
			if status != http.StatusOK || str(m, "token_type") != "Bearer" || m["refresh_token"] != nil || str(m, "scope") != "mcp:read" {
				t.Fatalf("client_credentials: %d %v", status, m)
			}
			if resp, body := mcpPost(t, w, str(m, "access_token"), callTool("echo", map[string]any{"text": "cc"})); resp.StatusCode != 200 || toolText(t, body) != "cc" {
				t.Fatalf("MCP with the token: %d %s", resp.StatusCode, body)
			}
			log := w.GrantLog()
			if len(log) != 1 || log[0].GrantType != GrantClientCredentials || log[0].ClientID != "svc" || log[0].AuthMethod != method || log[0].Resource != w.MCPURL() {
				t.Errorf("grant log %+v", log)
			}

			status, m = tokenRequest(t, w, oclient{id: "pub", method: AuthMethodNone}, xCCForm(w))
			wantOAuthError(t, "public client", status, m, 400, "unauthorized_client")
			form := xCCForm(w)
			form.Del("resource")
			status, m = tokenRequest(t, w, svc, form)
			wantOAuthError(t, "no resource", status, m, 400, "invalid_target")
			form.Set("resource", w.ResourceOrigin()+"/other")
			status, m = tokenRequest(t, w, svc, form)
			wantOAuthError(t, "other resource", status, m, 400, "invalid_target")
			status, m = tokenRequest(t, w, oclient{id: "svc", secret: "wrong", method: method}, xCCForm(w))
			wantOAuthError(t, "wrong secret", status, m, 401, "invalid_client")
			if st := w.Stats(); st.GrantsIssued[GrantClientCredentials] != 1 || st.TokenRequests[GrantClientCredentials] != 5 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestClientCredentialsDisabledByDefault(t *testing.T) {
	w := startWorld(t, Options{PreRegistered: map[string]string{"svc": "s"}})
	status, m := tokenRequest(t, w, oclient{id: "svc", secret: "s", method: AuthMethodBasic}, xCCForm(w))
	wantOAuthError(t, "client_credentials off", status, m, 400, "unsupported_grant_type")
	status, m = tokenRequest(t, w, oclient{id: "svc", secret: "s", method: AuthMethodBasic}, url.Values{"grant_type": {GrantJWTBearer}, "assertion": {"x"}})
	wantOAuthError(t, "jwt-bearer off", status, m, 400, "unsupported_grant_type")
}

// TestPrivateKeyJWT: the assertion is checked like RFC 7523 §3 says, and a
// jti is accepted once.
func TestPrivateKeyJWT(t *testing.T) {
	clock := newFakeClock()
	ec := xECKey(t)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other := xECKey(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	w := startWorld(t, Options{ClientCredentials: true, Now: clock.Now,
		AuthMethods:       []string{AuthMethodPrivateKeyJWT, AuthMethodPost},
		ClientKeys:        map[string]crypto.PublicKey{"ec": ec.Public(), "ed": ed.Public(), "p384": p384.Public()},
		ClientSigningAlgs: []string{"ES256", "EdDSA"},
		PreRegistered:     map[string]string{"post": "pw"},
	})
	now := clock.Now()
	send := func(assertion string, extra url.Values, basic *basicAuth) (int, map[string]any) {
		form := xCCForm(w)
		form.Set("client_assertion_type", clientAssertionType)
		form.Set("client_assertion", assertion)
		for k, v := range extra {
			form[k] = v
		}
		status, m, _ := postForm(t, w.Issuer()+"/token", form, basic)
		return status, m
	}
	good := func(key crypto.Signer, id, jti string) string {
		return xSign(t, key, "JWT", xAssertion(w, id, now, jti))
	}
	with := func(id, jti string, k string, v any) map[string]any {
		c := xAssertion(w, id, now, jti)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}

	for _, tc := range []struct {
		name      string
		assertion string
		extra     url.Values
		basic     *basicAuth
		status    int
		code      string
	}{
		{name: "ES256", assertion: good(ec, "ec", "j1"), status: 200},
		{name: "EdDSA", assertion: good(ed, "ed", "j2"), status: 200},
		{name: "client_id matches", assertion: good(ec, "ec", "j3"), extra: url.Values{"client_id": {"ec"}}, status: 200},
		{name: "aud array with issuer", assertion: xSign(t, ec, "JWT", with("ec", "j4", "aud", []string{w.Issuer()})), status: 200},
		{name: "jti replayed", assertion: good(ec, "ec", "j1"), status: 401, code: "invalid_client"},
		{name: "another key", assertion: good(other, "ec", "j5"), status: 401, code: "invalid_client"},
		{name: "alg not listed", assertion: good(p384, "p384", "j6"), status: 401, code: "invalid_client"},
		{name: "sub differs", assertion: xSign(t, ec, "JWT", with("ec", "j7", "sub", "someone")), status: 401, code: "invalid_client"},
		{name: "aud token endpoint", assertion: xSign(t, ec, "JWT", with("ec", "j8", "aud", w.Issuer()+"/token")), status: 401, code: "invalid_client"},
		{name: "expired", assertion: xSign(t, ec, "JWT", with("ec", "j9", "exp", now.Add(-time.Second).Unix())), status: 401, code: "invalid_client"},
		{name: "no exp", assertion: xSign(t, ec, "JWT", with("ec", "j10", "exp", nil)), status: 401, code: "invalid_client"},
		{name: "no jti", assertion: xSign(t, ec, "JWT", with("ec", "", "jti", nil)), status: 401, code: "invalid_client"},
		{name: "iat in the future", assertion: xSign(t, ec, "JWT", with("ec", "j11", "iat", now.Add(time.Hour).Unix())), status: 401, code: "invalid_client"},
		{name: "client_id differs", assertion: good(ec, "ec", "j12"), extra: url.Values{"client_id": {"ed"}}, status: 401, code: "invalid_client"},
		{name: "secret client", assertion: xSign(t, ec, "JWT", xAssertion(w, "post", now, "j13")), status: 401, code: "invalid_client"},
		{name: "with a secret too", assertion: good(ec, "ec", "j14"), extra: url.Values{"client_secret": {"pw"}}, status: 400, code: "invalid_request"},
		{name: "with Basic too", assertion: good(ec, "ec", "j15"), basic: &basicAuth{id: "post", secret: "pw"}, status: 400, code: "invalid_request"},
		{name: "wrong assertion type", assertion: good(ec, "ec", "j16"), extra: url.Values{"client_assertion_type": {"urn:x"}}, status: 401, code: "invalid_client"},
		{name: "not a JWS", assertion: "not.a.jws", status: 401, code: "invalid_client"},
	} {
		status, m := send(tc.assertion, tc.extra, tc.basic)
		if status != tc.status || str(m, "error") != tc.code {
			t.Errorf("%s: %d %v, want %d %q", tc.name, status, m, tc.status, tc.code)
		}
	}
	st := w.Stats()
	if st.ClientAssertionsAccepted != 4 || st.ClientAssertionsRefused != 15 || st.JTIReplays != 1 {
		t.Errorf("assertions accepted %d refused %d replays %d; want 4, 15, 1", st.ClientAssertionsAccepted, st.ClientAssertionsRefused, st.JTIReplays)
	}
	for _, g := range w.GrantLog() {
		if g.AuthMethod != AuthMethodPrivateKeyJWT {
			t.Errorf("grant %+v not by private_key_jwt", g)
		}
	}
	// The secret client still authenticates with its secret.
	status, m := tokenRequest(t, w, oclient{id: "post", secret: "pw", method: AuthMethodPost}, xCCForm(w))
	if status != 200 {
		t.Errorf("client_secret_post next to private_key_jwt: %d %v", status, m)
	}
}

// TestWorkloadGrant: jwt-bearer with a workload token (SEP-1933) and no
// client authentication.
func TestWorkloadGrant(t *testing.T) {
	clock := newFakeClock()
	key := xECKey(t)
	const iss = "https://kubernetes.default.svc"
	w := startWorld(t, Options{WorkloadIssuer: iss, WorkloadKey: key.Public(), Now: clock.Now, PreRegistered: map[string]string{"svc": "s"}})
	now := clock.Now()
	claims := func(k string, v any) map[string]any {
		c := map[string]any{"iss": iss, "sub": "system:serviceaccount:ns:app", "aud": w.Issuer(), "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "jti": "w1"}
		if v == nil {
			delete(c, k)
		} else if k != "" {
			c[k] = v
		}
		return c
	}
	grant := func(assertion string) (int, map[string]any) {
		status, m, _ := postForm(t, w.Issuer()+"/token", url.Values{"grant_type": {GrantJWTBearer}, "assertion": {assertion}, "resource": {w.MCPURL()}}, nil)
		return status, m
	}
	status, m := grant(xSign(t, key, "JWT", claims("", "")))
	if status != 200 || str(m, "token_type") != "Bearer" || m["refresh_token"] != nil {
		t.Fatalf("workload grant: %d %v", status, m)
	}
	if resp, body := mcpPost(t, w, str(m, "access_token"), rpc(1, "tools/list", map[string]any{})); resp.StatusCode != 200 {
		t.Fatalf("MCP with the workload token: %d %s", resp.StatusCode, body)
	}
	// The same token again: workload tokens are reused until rotated.
	if status, m := grant(xSign(t, key, "JWT", claims("", ""))); status != 200 {
		t.Fatalf("second workload grant: %d %v", status, m)
	}
	log := w.GrantLog()
	if len(log) != 2 || log[0].ClientID != "" || log[0].AuthMethod != "" || log[0].Subject != "system:serviceaccount:ns:app" || log[0].AssertionID != "w1" {
		t.Errorf("grant log %+v", log)
	}
	for name, assertion := range map[string]string{
		"wrong aud":          xSign(t, key, "JWT", claims("aud", "https://elsewhere.example")),
		"expired":            xSign(t, key, "JWT", claims("exp", now.Add(-time.Second).Unix())),
		"no exp":             xSign(t, key, "JWT", claims("exp", nil)),
		"no sub":             xSign(t, key, "JWT", claims("sub", nil)),
		"other issuer":       xSign(t, key, "JWT", claims("iss", "https://other.example")),
		"other key":          xSign(t, xECKey(t), "JWT", claims("", "")),
		"not yet valid":      xSign(t, key, "JWT", claims("nbf", now.Add(time.Hour).Unix())),
		"not a JWT":          "abc",
		"ID-JAG typ, no IdP": xSign(t, key, typIDJAG, claims("", "")),
	} {
		status, m := grant(assertion)
		wantOAuthError(t, name, status, m, 400, "invalid_grant")
	}
	// A client that authenticates is fine too; a wrong secret is not.
	status, m = tokenRequest(t, w, oclient{id: "svc", secret: "s", method: AuthMethodBasic}, url.Values{"grant_type": {GrantJWTBearer}, "assertion": {xSign(t, key, "JWT", claims("", ""))}, "resource": {w.MCPURL()}})
	if status != 200 {
		t.Errorf("authenticated workload grant: %d %v", status, m)
	}
	status, m = tokenRequest(t, w, oclient{id: "svc", secret: "x", method: AuthMethodBasic}, url.Values{"grant_type": {GrantJWTBearer}, "assertion": {xSign(t, key, "JWT", claims("", ""))}, "resource": {w.MCPURL()}})
	wantOAuthError(t, "wrong secret", status, m, 401, "invalid_client")
	if st := w.Stats(); st.GrantsIssued[GrantJWTBearer] != 3 {
		t.Errorf("jwt-bearer grants issued %d, want 3", st.GrantsIssued[GrantJWTBearer])
	}
}
