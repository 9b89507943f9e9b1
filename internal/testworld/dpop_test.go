package testworld

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

var b64 = base64.RawURLEncoding

// xJWK is key as a JWK object (private members included for a private key).
func xJWK(t *testing.T, key any) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func xThumbprint(t *testing.T, key *ecdsa.PrivateKey) string {
	t.Helper()
	jwk := jose.JSONWebKey{Key: key.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(tp)
}

// xRawJWS signs header and claims with ES256 by hand, so that tests can
// send headers no JOSE library would produce.
func xRawJWS(t *testing.T, key *ecdsa.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	hb, err1 := json.Marshal(header)
	cb, err2 := json.Marshal(claims)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64.EncodeToString(sig)
}

// xProof is a valid proof by key for method and htu at now, after edit
// changes its header or claims (a nil value deletes a member).
func xProof(t *testing.T, key *ecdsa.PrivateKey, method, htu string, now time.Time, edit func(h, c map[string]any)) string {
	t.Helper()
	h := map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": xJWK(t, key.Public())}
	c := map[string]any{"jti": newSecret("jti_"), "htm": method, "htu": htu, "iat": now.Unix()}
	if edit != nil {
		edit(h, c)
	}
	for _, m := range []map[string]any{h, c} {
		for k, v := range m {
			if v == nil {
				delete(m, k)
			}
		}
	}
	return xRawJWS(t, key, h, c)
}

func ath(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return b64.EncodeToString(sum[:])
}

// xTokenPost sends a client_credentials grant for svc with the given DPoP
// headers.
func xTokenPost(t *testing.T, w *World, proofs ...string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, w.Issuer()+"/token", strings.NewReader(xCCForm(w).Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", basicAuth{id: "svc", secret: "s"}.header())
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	return xDo(t, req)
}

func xDo(t *testing.T, req *http.Request) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, resp.Header
}

// xMCP sends tools/list to target with an Authorization value and proofs.
func xMCP(t *testing.T, target, authz string, proofs ...string) (int, http.Header) {
	t.Helper()
	body, _ := json.Marshal(rpc(1, "tools/list", map[string]any{}))
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	status, _, h := xDo(t, req)
	return status, h
}

func xDPoPWorld(t *testing.T, clock *fakeClock, o Options) *World {
	t.Helper()
	o.DPoP, o.ClientCredentials, o.Now = true, true, clock.Now
	o.PreRegistered = map[string]string{"svc": "s"}
	return startWorld(t, o)
}

func TestDPoPTokenEndpoint(t *testing.T) {
	clock := newFakeClock()
	w := xDPoPWorld(t, clock, Options{})
	key, other := xECKey(t), xECKey(t)
	now, htu := clock.Now(), w.Issuer()+"/token"

	status, m, _ := xTokenPost(t, w)
	if status != 200 || str(m, "token_type") != "Bearer" {
		t.Fatalf("without a proof: %d %v", status, m)
	}
	status, m, _ = xTokenPost(t, w, xProof(t, key, "POST", htu, now, nil))
	if status != 200 || str(m, "token_type") != "DPoP" {
		t.Fatalf("with a proof: %d %v", status, m)
	}
	upper := "HTTP://" + strings.TrimPrefix(htu, "http://")
	if status, m, _ = xTokenPost(t, w, xProof(t, key, "POST", upper, now, nil)); status != 200 {
		t.Errorf("htu with an upper-case scheme (normalised): %d %v", status, m)
	}
	log := w.GrantLog()
	if len(log) != 3 || log[0].JKT != "" || log[0].TokenType != "Bearer" || log[1].JKT != xThumbprint(t, key) || log[1].TokenType != "DPoP" {
		t.Errorf("grant log %+v", log)
	}

	replayed := xProof(t, key, "POST", htu, now, nil)
	if status, _, _ := xTokenPost(t, w, replayed); status != 200 {
		t.Fatalf("first use of a proof: %d", status)
	}
	set := func(k string, v any) func(h, c map[string]any) {
		return func(h, c map[string]any) {
			if _, inHeader := h[k]; inHeader || k == "kid" {
				h[k] = v
			} else {
				c[k] = v
			}
		}
	}
	for _, tc := range []struct {
		name   string
		proofs []string
	}{
		{"replayed jti", []string{replayed}},
		{"typ JWT", []string{xProof(t, key, "POST", htu, now, set("typ", "JWT"))}},
		{"alg ES384", []string{xProof(t, key, "POST", htu, now, set("alg", "ES384"))}},
		{"no jwk", []string{xProof(t, key, "POST", htu, now, set("jwk", nil))}},
		{"private jwk", []string{xProof(t, key, "POST", htu, now, set("jwk", xJWK(t, key)))}},
		{"jwk of another key", []string{xProof(t, key, "POST", htu, now, set("jwk", xJWK(t, other.Public())))}},
		{"htm GET", []string{xProof(t, key, "GET", htu, now, nil)}},
		{"htu elsewhere", []string{xProof(t, key, "POST", w.Issuer()+"/authorize", now, nil)}},
		{"htu with query", []string{xProof(t, key, "POST", htu+"?x=1", now, nil)}},
		{"htu with fragment", []string{xProof(t, key, "POST", htu+"#f", now, nil)}},
		{"iat too old", []string{xProof(t, key, "POST", htu, now.Add(-2*proofWindow), nil)}},
		{"iat in the future", []string{xProof(t, key, "POST", htu, now.Add(2*proofWindow), nil)}},
		{"no iat", []string{xProof(t, key, "POST", htu, now, set("iat", nil))}},
		{"no jti", []string{xProof(t, key, "POST", htu, now, set("jti", nil))}},
		{"two proofs", []string{xProof(t, key, "POST", htu, now, nil), xProof(t, key, "POST", htu, now, nil)}},
		{"garbage", []string{"a.b.c"}},
	} {
		status, m, _ := xTokenPost(t, w, tc.proofs...)
		wantOAuthError(t, tc.name, status, m, 400, "invalid_dpop_proof")
	}
	st := w.Stats()
	if st.DPoPProofsAccepted != 3 || st.DPoPProofsRefused != 16 || st.JTIReplays != 1 || st.GrantsIssued[GrantClientCredentials] != 4 {
		t.Errorf("stats: accepted %d refused %d replays %d grants %v", st.DPoPProofsAccepted, st.DPoPProofsRefused, st.JTIReplays, st.GrantsIssued)
	}
	proofs := w.DPoPProofs()
	if len(proofs) != 19 || proofs[0].Server != "as" || proofs[0].Outcome != ProofAccepted || proofs[3].Outcome != "jti already used" {
		t.Errorf("proof log %+v", proofs)
	}
}

// xDPoPToken gets a DPoP token bound to key.
func xDPoPToken(t *testing.T, w *World, key *ecdsa.PrivateKey, now time.Time) string {
	t.Helper()
	status, m, _ := xTokenPost(t, w, xProof(t, key, "POST", w.Issuer()+"/token", now, nil))
	if status != 200 || str(m, "token_type") != "DPoP" {
		t.Fatalf("DPoP token: %d %v", status, m)
	}
	return str(m, "access_token")
}

func TestDPoPResourceServer(t *testing.T) {
	clock := newFakeClock()
	w := xDPoPWorld(t, clock, Options{})
	key, other := xECKey(t), xECKey(t)
	now, mcp := clock.Now(), w.MCPURL()
	tok := xDPoPToken(t, w, key, now)
	withAth := func(tok string) func(h, c map[string]any) {
		return func(_, c map[string]any) { c["ath"] = ath(tok) }
	}

	if status, _ := xMCP(t, mcp, "DPoP "+tok, xProof(t, key, "POST", mcp, now, withAth(tok))); status != 200 {
		t.Fatalf("DPoP request: %d", status)
	}
	// The request URI's query is not part of htu.
	if status, _ := xMCP(t, mcp+"?session=1", "DPoP "+tok, xProof(t, key, "POST", mcp, now, withAth(tok))); status != 200 {
		t.Errorf("request with a query, htu without: %d", status)
	}
	replayed := xProof(t, key, "POST", mcp, now, withAth(tok))
	if status, _ := xMCP(t, mcp, "DPoP "+tok, replayed); status != 200 {
		t.Fatalf("first use: %d", status)
	}
	bearerTok := func() string {
		status, m, _ := xTokenPost(t, w)
		if status != 200 {
			t.Fatalf("bearer token: %d", status)
		}
		return str(m, "access_token")
	}()
	for _, tc := range []struct {
		name, target, authz string
		proofs              []string
		code                string
	}{
		{"replayed proof", mcp, "DPoP " + tok, []string{replayed}, "invalid_dpop_proof"},
		{"bound token as Bearer", mcp, "Bearer " + tok, nil, "invalid_token"},
		{"bound token as Bearer with a proof", mcp, "Bearer " + tok, []string{xProof(t, key, "POST", mcp, now, withAth(tok))}, "invalid_token"},
		{"no proof", mcp, "DPoP " + tok, nil, "invalid_dpop_proof"},
		{"two proofs", mcp, "DPoP " + tok, []string{xProof(t, key, "POST", mcp, now, withAth(tok)), xProof(t, key, "POST", mcp, now, withAth(tok))}, "invalid_dpop_proof"},
		{"no ath", mcp, "DPoP " + tok, []string{xProof(t, key, "POST", mcp, now, nil)}, "invalid_dpop_proof"},
		{"ath of another token", mcp, "DPoP " + tok, []string{xProof(t, key, "POST", mcp, now, withAth(bearerTok))}, "invalid_dpop_proof"},
		{"another key", mcp, "DPoP " + tok, []string{xProof(t, other, "POST", mcp, now, withAth(tok))}, "invalid_token"},
		{"htm GET", mcp, "DPoP " + tok, []string{xProof(t, key, "GET", mcp, now, withAth(tok))}, "invalid_dpop_proof"},
		{"htu with query", mcp + "?session=1", "DPoP " + tok, []string{xProof(t, key, "POST", mcp+"?session=1", now, withAth(tok))}, "invalid_dpop_proof"},
		{"htu of the AS", mcp, "DPoP " + tok, []string{xProof(t, key, "POST", w.Issuer()+"/token", now, withAth(tok))}, "invalid_dpop_proof"},
		{"unbound token as DPoP", mcp, "DPoP " + bearerTok, []string{xProof(t, key, "POST", mcp, now, withAth(bearerTok))}, "invalid_token"},
		{"malformed credentials", mcp, "DPoP a b", []string{xProof(t, key, "POST", mcp, now, withAth(tok))}, "invalid_token"},
	} {
		status, h := xMCP(t, tc.target, tc.authz, tc.proofs...)
		c := h.Get("WWW-Authenticate")
		if status != 401 || !strings.HasPrefix(c, "DPoP ") || !strings.Contains(c, `error="`+tc.code+`"`) {
			t.Errorf("%s: %d %q, want 401 DPoP error=%s", tc.name, status, c, tc.code)
		}
	}
	// An unbound Bearer token still works as Bearer.
	if status, _ := xMCP(t, mcp, "Bearer "+bearerTok); status != 200 {
		t.Errorf("unbound Bearer token: %d", status)
	}
	// No credentials: a Bearer challenge first, then a DPoP one.
	if status, h := xMCP(t, mcp, ""); status != 401 || len(h.Values("WWW-Authenticate")) != 2 || h.Values("WWW-Authenticate")[1] != `DPoP algs="ES256"` {
		t.Errorf("unauthenticated: %d %q", status, h.Values("WWW-Authenticate"))
	}
	var rs []DPoPProof
	for _, p := range w.DPoPProofs() {
		if p.Server == "rs" {
			rs = append(rs, p)
		}
	}
	if len(rs) != 13 || rs[0].Outcome != ProofAccepted || rs[0].ATH != ath(tok) || rs[0].JKT != xThumbprint(t, key) || rs[0].URL != mcp || rs[1].URL != mcp {
		t.Errorf("RS proof log %+v", rs)
	}
	if st := w.Stats(); st.JTIReplays != 1 {
		t.Errorf("JTIReplays %d, want 1", st.JTIReplays)
	}
}

func TestDPoPNonces(t *testing.T) {
	clock := newFakeClock()
	w := xDPoPWorld(t, clock, Options{DPoPNonceAS: true, DPoPNonceRS: true})
	key := xECKey(t)
	now, mcp, htu := clock.Now(), w.MCPURL(), w.Issuer()+"/token"
	withNonce := func(n string) func(h, c map[string]any) { return func(_, c map[string]any) { c["nonce"] = n } }

	status, m, h := xTokenPost(t, w, xProof(t, key, "POST", htu, now, nil))
	asNonce := h.Get("DPoP-Nonce")
	if status != 400 || str(m, "error") != "use_dpop_nonce" || asNonce == "" {
		t.Fatalf("token request without a nonce: %d %v nonce %q", status, m, asNonce)
	}
	status, m, h = xTokenPost(t, w, xProof(t, key, "POST", htu, now, withNonce(asNonce)))
	if status != 200 || str(m, "token_type") != "DPoP" || h.Get("DPoP-Nonce") != asNonce {
		t.Fatalf("token request with the nonce: %d %v nonce %q", status, m, h.Get("DPoP-Nonce"))
	}
	tok := str(m, "access_token")
	proof := func(nonce string) string {
		return xProof(t, key, "POST", mcp, now, func(_, c map[string]any) {
			c["ath"] = ath(tok)
			if nonce != "" {
				c["nonce"] = nonce
			}
		})
	}
	status, h = xMCP(t, mcp, "DPoP "+tok, proof(""))
	rsNonce := h.Get("DPoP-Nonce")
	if status != 401 || !strings.Contains(h.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || rsNonce == "" || rsNonce == asNonce {
		t.Fatalf("RS without a nonce: %d %q nonce %q", status, h.Get("WWW-Authenticate"), rsNonce)
	}
	if status, _ = xMCP(t, mcp, "DPoP "+tok, proof(asNonce)); status != 401 {
		t.Errorf("RS with the AS nonce: %d", status)
	}
	if status, _ = xMCP(t, mcp, "DPoP "+tok, proof(rsNonce)); status != 200 {
		t.Fatalf("RS with its nonce: %d", status)
	}
	if status, _ = xMCP(t, mcp, "DPoP "+tok, proof(rsNonce)); status != 200 {
		t.Fatalf("RS with its nonce, again (fresh jti): %d", status)
	}
	w.RotateDPoPNonces()
	status, h = xMCP(t, mcp, "DPoP "+tok, proof(rsNonce))
	if status != 401 || h.Get("DPoP-Nonce") == "" || h.Get("DPoP-Nonce") == rsNonce {
		t.Fatalf("RS with a rotated-out nonce: %d nonce %q", status, h.Get("DPoP-Nonce"))
	}
	if status, _ = xMCP(t, mcp, "DPoP "+tok, proof(h.Get("DPoP-Nonce"))); status != 200 {
		t.Errorf("RS with the new nonce: %d", status)
	}
	st := w.Stats()
	if st.ASNonceChallenges != 1 || st.RSNonceChallenges != 3 || st.DPoPProofsRefused != 0 || st.DPoPProofsAccepted != 4 {
		t.Errorf("stats: AS challenges %d RS challenges %d refused %d accepted %d", st.ASNonceChallenges, st.RSNonceChallenges, st.DPoPProofsRefused, st.DPoPProofsAccepted)
	}
}

func TestDPoPStubbornNonce(t *testing.T) {
	clock := newFakeClock()
	w := xDPoPWorld(t, clock, Options{DPoPNonceAS: true, DPoPStubbornNonce: true})
	key := xECKey(t)
	htu := w.Issuer() + "/token"
	nonce := ""
	seen := map[string]bool{}
	for i := range 3 {
		status, m, h := xTokenPost(t, w, xProof(t, key, "POST", htu, clock.Now(), func(_, c map[string]any) {
			if nonce != "" {
				c["nonce"] = nonce
			}
		}))
		nonce = h.Get("DPoP-Nonce")
		if status != 400 || str(m, "error") != "use_dpop_nonce" || nonce == "" || seen[nonce] {
			t.Fatalf("attempt %d: %d %v nonce %q", i, status, m, nonce)
		}
		seen[nonce] = true
	}
}

// TestDPoPRefreshBinding: a refresh token issued with a proof is redeemed
// only with a proof by the same key (RFC 9449 §5).
func TestDPoPRefreshBinding(t *testing.T) {
	clock := newFakeClock()
	w := startWorld(t, Options{DCR: true, DPoP: true, Now: clock.Now})
	c := register(t, w, AuthMethodNone)
	key, other := xECKey(t), xECKey(t)
	htu := w.Issuer() + "/token"
	send := func(form url.Values, proofs ...string) (int, map[string]any) {
		form.Set("client_id", c.id)
		req, _ := http.NewRequest(http.MethodPost, htu, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, p := range proofs {
			req.Header.Add("DPoP", p)
		}
		status, m, _ := xDo(t, req)
		return status, m
	}
	code, verifier := getCode(t, w, c, "")
	status, m := send(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect}, "code_verifier": {verifier}, "resource": {w.MCPURL()}},
		xProof(t, key, "POST", htu, clock.Now(), nil))
	if status != 200 || str(m, "token_type") != "DPoP" || str(m, "refresh_token") == "" {
		t.Fatalf("code exchange with a proof: %d %v", status, m)
	}
	refreshForm := func() url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {str(m, "refresh_token")}, "resource": {w.MCPURL()}}
	}
	status, got := send(refreshForm(), xProof(t, other, "POST", htu, clock.Now(), nil))
	wantOAuthError(t, "refresh with another key", status, got, 400, "invalid_grant")
	status, got = send(refreshForm())
	wantOAuthError(t, "refresh without a proof", status, got, 400, "invalid_grant")
	status, got = send(refreshForm(), xProof(t, key, "POST", htu, clock.Now(), nil))
	if status != 200 || str(got, "token_type") != "DPoP" {
		t.Errorf("refresh with the bound key: %d %v", status, got)
	}
}
