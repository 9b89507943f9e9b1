package hostile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// §4.6 Registration: E-40 … E-42.

// registerWith answers /register with the honest response changed by edit.
func registerWith(w *world, status int, edit func(m map[string]any)) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		rec := &capture{header: http.Header{}}
		w.as.handleRegister(rec, r)
		var m map[string]any
		_ = json.Unmarshal(rec.body, &m)
		edit(m)
		writeJSON(rw, status, m)
	}
}

// sentAnywhere reports whether any request carried v.
func sentAnywhere(c *client, v string) bool {
	for _, r := range c.spy.Requests() {
		if strings.Contains(r.URL, v) || bytes.Contains(r.Body, []byte(v)) {
			return true
		}
		for _, vs := range r.Header {
			for _, h := range vs {
				if strings.Contains(h, v) || containsBasic(h, v) {
					return true
				}
			}
		}
	}
	return false
}

func TestE40_RegistrationChanged(t *testing.T) {
	t.Run("method changed to client_secret_basic: used", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		secret := randomValue("secret-")
		w.as.route("POST /register", registerWith(w, 201, func(m map[string]any) {
			m["token_endpoint_auth_method"] = "client_secret_basic"
			m["client_secret"] = secret
		}))
		w.c.mustCall()
		var basic bool
		for _, r := range w.c.spy.Requests() {
			if stripQuery(r.URL) == w.as.tokenURL() && containsBasic(r.Header.Get("Authorization"), secret) {
				basic = true
			}
		}
		if !basic {
			t.Errorf("the returned method and secret were not used at the token endpoint")
		}
		// The leak check proves the secret went nowhere else.
	})
	t.Run("method none with a secret: secret dropped", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		secret := randomValue("secret-")
		w.as.route("POST /register", registerWith(w, 201, func(m map[string]any) {
			m["token_endpoint_auth_method"] = "none"
			m["client_secret"] = secret
		}))
		w.c.mustCall()
		if sentAnywhere(w.c, secret) {
			t.Errorf("a secret returned with method none was sent")
		}
	})
	t.Run("secret method without a secret", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("POST /register", registerWith(w, 201, func(m map[string]any) {
			m["token_endpoint_auth_method"] = "client_secret_post"
		}))
		_, _, err := w.c.call(defaultBudget)
		if err == nil {
			t.Fatal("regression: a registration that says client_secret_post but returns no client_secret is used as a " +
				"secret-less client (spec-checklist E-40: fail when the secret is missing for a secret-based " +
				"method). Fix: in machine/registration.go registrationAnswered, refuse method client_secret_basic/" +
				"client_secret_post with an empty ClientSecret with *RegistrationError{Err: &MalformedError{Field: " +
				"\"client_secret\", Reason: \"missing\"}}")
		}
		want[*machine.RegistrationError](t, err)
	})
	t.Run("our redirect_uri dropped", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("POST /register", registerWith(w, 201, func(m map[string]any) {
			m["redirect_uris"] = []string{"https://evil.example.test/callback"}
		}))
		_, _, err := w.c.call(defaultBudget)
		if err == nil {
			t.Fatal("regression: a registration whose redirect_uris no longer contain ours is used (B-7591-05, " +
				"spec-checklist E-40). Fix: in registrationAnswered, when reg.RedirectURIs is present and lacks " +
				"Config.RedirectURI, fail with *RegistrationError")
		}
		want[*machine.RegistrationError](t, err)
		if w.as.Hits("/authorize") != 0 {
			t.Errorf("authorized with a registration that lost our redirect URI")
		}
	})
	t.Run("secret already expired", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("POST /register", registerWith(w, 201, func(m map[string]any) {
			m["token_endpoint_auth_method"] = "client_secret_post"
			m["client_secret"] = randomValue("secret-")
			m["client_secret_expires_at"] = time.Now().Add(-time.Hour).Unix()
		}))
		_, _, err := w.c.call(defaultBudget)
		if err == nil {
			t.Fatal("regression: a registration whose client_secret_expires_at is in the past is used (spec-checklist " +
				"E-40). Fix: in registrationAnswered, refuse a SecretExpiresAt not after Env.Now with *RegistrationError")
		}
		want[*machine.RegistrationError](t, err)
		if w.as.Hits("/authorize") != 0 || w.as.Hits("/token") != 0 {
			t.Errorf("a registration with an expired secret was used")
		}
	})
}

func TestE41_RegistrationRefused(t *testing.T) {
	for _, code := range []string{"invalid_redirect_uri", "invalid_client_metadata"} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.route("POST /register", func(rw http.ResponseWriter, r *http.Request) {
				writeJSON(rw, 400, map[string]string{"error": code, "error_description": "application_type native\r\nnot allowed"})
			})
			_, _, err := w.c.call(defaultBudget)
			want[*machine.RegistrationError](t, err)
			oe := want[*machine.OAuthError](t, err)
			if oe.Code != code || !strings.Contains(oe.Description, "native") {
				t.Errorf("OAuthError %+v: the code and description must be surfaced", oe)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error text not sanitized: %q", err.Error())
			}
			if n := w.as.Hits("/register"); n > 2 {
				t.Errorf("%d registration attempts, at most one retry", n)
			}
		})
	}
}

func TestE42_ClientFromAnotherIssuer(t *testing.T) {
	t.Run("stored registration for another issuer is not used", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		// A registration stored under this issuer's key but bound to another.
		foreign := effects.Client{Issuer: w.evil.URL, ClientID: "foreign-client", ClientSecret: randomValue("foreign-"),
			AuthMethod: "client_secret_post", RedirectURIs: []string{redirectURI}, Source: effects.ClientDynamic}
		b, _ := json.Marshal(foreign)
		if _, err := w.c.store.Put(context.Background(), "client:"+w.as.issuer, b, 0); err != nil {
			t.Fatal(err)
		}
		w.c.mustCall()
		if sentAnywhere(w.c, "foreign-client") || sentAnywhere(w.c, foreign.ClientSecret) {
			t.Errorf("a client registered at another issuer was presented")
		}
		if n := w.as.Hits("/register"); n != 1 {
			t.Errorf("registrations %d, want a new one", n)
		}
	})
	t.Run("pre-registered client bound to another issuer", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.set("registration_endpoint", nil)
		w.c.cfg.Clients = []effects.Client{{Issuer: w.evil.URL, ClientID: "pinned-elsewhere", ClientSecret: "pinned-secret"}}
		_, _, err := w.c.call(defaultBudget)
		want[*machine.NoClientError](t, err)
		if sentAnywhere(w.c, "pinned-secret") || sentAnywhere(w.c, "pinned-elsewhere") {
			t.Errorf("a client pinned to another issuer was presented")
		}
	})
}
