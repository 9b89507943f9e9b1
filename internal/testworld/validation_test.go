package testworld

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCodeExchangeValidation(t *testing.T) {
	w := startWorld(t, Options{DCR: true})
	c := register(t, w, AuthMethodNone)

	t.Run("wrong verifier", func(t *testing.T) {
		code, _ := getCode(t, w, c, "")
		other, _ := pkce("someone else")
		status, m := exchange(t, w, c, code, other)
		wantOAuthError(t, "wrong verifier", status, m, http.StatusBadRequest, "invalid_grant")
	})
	t.Run("wrong resource", func(t *testing.T) {
		code, verifier := getCode(t, w, c, "")
		status, m := tokenRequest(t, w, c, url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect},
			"code_verifier": {verifier}, "resource": {w.ResourceOrigin() + "/other"},
		})
		wantOAuthError(t, "wrong resource at token", status, m, http.StatusBadRequest, "invalid_target")
	})
	t.Run("missing resource", func(t *testing.T) {
		code, verifier := getCode(t, w, c, "")
		status, m := tokenRequest(t, w, c, url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect}, "code_verifier": {verifier},
		})
		wantOAuthError(t, "missing resource at token", status, m, http.StatusBadRequest, "invalid_target")
	})
	t.Run("wrong redirect_uri", func(t *testing.T) {
		code, verifier := getCode(t, w, c, "")
		status, m := tokenRequest(t, w, c, url.Values{
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect + "x"},
			"code_verifier": {verifier}, "resource": {w.MCPURL()},
		})
		wantOAuthError(t, "wrong redirect_uri", status, m, http.StatusBadRequest, "invalid_grant")
	})
	t.Run("code reuse revokes", func(t *testing.T) {
		code, verifier := getCode(t, w, c, "")
		status, tok := exchange(t, w, c, code, verifier)
		if status != http.StatusOK {
			t.Fatalf("first exchange: %d %v", status, tok)
		}
		status, m := exchange(t, w, c, code, verifier)
		wantOAuthError(t, "code reuse", status, m, http.StatusBadRequest, "invalid_grant")
		if resp, _ := mcpPost(t, w, str(tok, "access_token"), rpc(1, "tools/list", nil)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token from a replayed code still works: %d", resp.StatusCode)
		}
	})
	t.Run("expired code", func(t *testing.T) {
		clock := newFakeClock()
		w := startWorld(t, Options{DCR: true, Now: clock.Now})
		c := register(t, w, AuthMethodNone)
		code, verifier := getCode(t, w, c, "")
		clock.Advance(60 * time.Second) // codes live 60s: expired at exactly 60s
		status, m := exchange(t, w, c, code, verifier)
		wantOAuthError(t, "expired code", status, m, http.StatusBadRequest, "invalid_grant")
	})
	t.Run("another client's code", func(t *testing.T) {
		thief := register(t, w, AuthMethodNone)
		code, verifier := getCode(t, w, c, "")
		thief.redirect = c.redirect
		status, m := exchange(t, w, thief, code, verifier)
		wantOAuthError(t, "code of another client", status, m, http.StatusBadRequest, "invalid_grant")
	})
	// wrong verifier, wrong redirect_uri, code reuse, another client's code;
	// invalid_target is not invalid_grant.
	if got := w.Stats().InvalidGrants; got != 4 {
		t.Errorf("InvalidGrants = %d, want 4", got)
	}
}

func TestAuthorizeValidation(t *testing.T) {
	w := startWorld(t, Options{DCR: true})
	c := register(t, w, AuthMethodNone)
	_, challenge := pkce("authz")
	valid := func() url.Values { return authParams(w, c, challenge, "s1", "") }

	// Errors that must not redirect: the AS cannot trust the redirect URI.
	for name, mutate := range map[string]func(url.Values){
		"unknown client":      func(v url.Values) { v.Set("client_id", "nope") },
		"missing client":      func(v url.Values) { v.Del("client_id") },
		"unregistered uri":    func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:49153/callback") },
		"missing uri":         func(v url.Values) { v.Del("redirect_uri") },
		"uri with extra path": func(v url.Values) { v.Set("redirect_uri", c.redirect+"/x") },
	} {
		v := valid()
		mutate(v)
		if loc, err := w.Authorize(w.Issuer() + "/authorize?" + v.Encode()); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("%s: got Location %q, err %v; want a 400 page", name, loc, err)
		}
	}

	// Errors that go back to the client, with state.
	for name, tc := range map[string]struct {
		mutate func(url.Values)
		want   string
	}{
		"plain pkce":         {func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request"},
		"no pkce method":     {func(v url.Values) { v.Del("code_challenge_method") }, "invalid_request"},
		"no challenge":       {func(v url.Values) { v.Del("code_challenge") }, "invalid_request"},
		"short challenge":    {func(v url.Values) { v.Set("code_challenge", "abc") }, "invalid_request"},
		"token flow":         {func(v url.Values) { v.Set("response_type", "token") }, "unsupported_response_type"},
		"no resource":        {func(v url.Values) { v.Del("resource") }, "invalid_target"},
		"wrong resource":     {func(v url.Values) { v.Set("resource", w.ResourceOrigin()+"/") }, "invalid_target"},
		"two resources":      {func(v url.Values) { v.Add("resource", w.MCPURL()) }, "invalid_target"},
		"repeated parameter": {func(v url.Values) { v.Add("scope", "x"); v.Add("scope", "y") }, "invalid_request"},
	} {
		v := valid()
		tc.mutate(v)
		q := authorize(t, w, v)
		if q.Get("error") != tc.want || q.Get("state") != "s1" || q.Get("code") != "" {
			t.Errorf("%s: redirect %v, want error=%s with state", name, q, tc.want)
		}
	}
	v := valid()
	v.Del("state")
	if q := authorize(t, w, v); q.Get("error") != "invalid_request" {
		t.Errorf("missing state: %v", q)
	}
	if got := w.Stats().CodesIssued; got != 0 {
		t.Errorf("CodesIssued = %d after only invalid requests", got)
	}
}

func TestAuthorizeFaults(t *testing.T) {
	w := startWorld(t, Options{DCR: true, IssParameter: true})
	c := register(t, w, AuthMethodNone)
	_, challenge := pkce("faults")

	w.SetFault(Fault{WrongState: true, WrongIss: "http://evil.example"})
	q := authorize(t, w, authParams(w, c, challenge, "s1", ""))
	if q.Get("state") == "s1" || q.Get("iss") != "http://evil.example" || q.Get("code") == "" {
		t.Errorf("WrongState/WrongIss: %v", q)
	}
	w.SetFault(Fault{AuthorizeError: "access_denied"})
	q = authorize(t, w, authParams(w, c, challenge, "s1", ""))
	if q.Get("error") != "access_denied" || q.Get("state") != "s1" || q.Get("iss") != w.Issuer() || q.Get("code") != "" {
		t.Errorf("AuthorizeError: %v", q)
	}
	q = authorize(t, w, authParams(w, c, challenge, "s1", ""))
	if q.Get("code") == "" || q.Get("state") != "s1" || q.Get("iss") != w.Issuer() {
		t.Errorf("after one-shot faults: %v", q)
	}
}

// TestClientSecretBasicEncoding: RFC 6749 §2.3.1 form-encodes id and secret
// before Basic. A client that does so works; one that does not is refused.
func TestClientSecretBasicEncoding(t *testing.T) {
	const id, secret = "client:ü one", "s3cr+t/%20&=é:x"
	w := startWorld(t, Options{PreRegistered: map[string]string{id: secret}})
	c := oclient{id: id, secret: secret, method: AuthMethodBasic, redirect: "http://127.0.0.1:41000/cb"}

	code, verifier := getCode(t, w, c, "")
	form := url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect},
		"code_verifier": {verifier}, "resource": {w.MCPURL()},
	}
	status, m, hdr := postForm(t, w.Issuer()+"/token", form, &basicAuth{id: id, secret: secret, raw: true})
	wantOAuthError(t, "unencoded Basic credentials", status, m, http.StatusUnauthorized, "invalid_client")
	if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("401 invalid_client after Basic lacks WWW-Authenticate: Basic (got %q)", hdr.Get("WWW-Authenticate"))
	}
	// The failed client authentication did not burn the code.
	status, m, _ = postForm(t, w.Issuer()+"/token", form, &basicAuth{id: id, secret: secret})
	if status != http.StatusOK {
		t.Fatalf("encoded Basic credentials: %d %v", status, m)
	}

	// Mixing methods and using the wrong method are refused.
	code, verifier = getCode(t, w, c, "")
	form.Set("code", code)
	form.Set("code_verifier", verifier)
	mixed := url.Values{}
	for k, v := range form {
		mixed[k] = v
	}
	mixed.Set("client_secret", secret)
	status, m, _ = postForm(t, w.Issuer()+"/token", mixed, &basicAuth{id: id, secret: secret})
	wantOAuthError(t, "basic+post", status, m, http.StatusBadRequest, "invalid_request")
	mixed.Set("client_id", id)
	status, m, _ = postForm(t, w.Issuer()+"/token", mixed, nil)
	wantOAuthError(t, "post for a basic client", status, m, http.StatusUnauthorized, "invalid_client")
	status, m, _ = postForm(t, w.Issuer()+"/token", form, &basicAuth{id: id, secret: "wrong"})
	wantOAuthError(t, "wrong secret", status, m, http.StatusUnauthorized, "invalid_client")
}
