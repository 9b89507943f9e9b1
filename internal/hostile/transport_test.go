package hostile_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/machine"
)

// §4.1 Transport and HTTP layer: E-01 … E-10.

const prmPath = "/.well-known/oauth-protected-resource/mcp"
const asmPath = "/.well-known/oauth-authorization-server"

// status answers with a status and a small HTML body.
func status(code int, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		writeRaw(w, code, "text/html", []byte("<html><body>error</body></html>"))
	}
}

// body answers 200 with a raw body and content type.
func body(contentType string, b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { writeRaw(w, http.StatusOK, contentType, b) }
}

func TestE01_DiscoveryServerError(t *testing.T) {
	t.Run("prm 500", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.route("GET "+prmPath, status(500))
		_, _, err := w.c.call(defaultBudget)
		e := want[*machine.HTTPStatusError](t, err)
		if e.Status != 500 || !machine.IsRetryable(err) {
			t.Errorf("HTTPStatusError %+v, retryable %v; want 500, retryable", e, machine.IsRetryable(err))
		}
		// No fall-through: not the root well-known, not the legacy flow.
		if n := w.rs.Hits("/.well-known/oauth-protected-resource"); n != 0 {
			t.Errorf("root PRM tried %d times after a 500", n)
		}
		w.as.wantUntouched(t)
	})
	t.Run("as metadata 503", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("GET "+asmPath, status(503))
		_, _, err := w.c.call(defaultBudget)
		e := want[*machine.HTTPStatusError](t, err)
		if e.Status != 503 || !machine.IsRetryable(err) {
			t.Errorf("HTTPStatusError %+v; want 503, retryable", e)
		}
		if n := w.as.Hits("/.well-known/openid-configuration"); n != 0 {
			t.Errorf("OIDC discovery tried after a 503: a flaky server must not downgrade discovery")
		}
		if w.as.Hits("/authorize")+w.as.Hits("/register") != 0 {
			t.Errorf("the flow went on after a 503")
		}
	})
	t.Run("prm 429 Retry-After", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.route("GET "+prmPath, status(429, "Retry-After", "120"))
		for i := 1; i <= 2; i++ {
			_, _, err := w.c.call(defaultBudget)
			if e := want[*machine.HTTPStatusError](t, err); e.Status != 429 || !machine.IsRetryable(err) {
				t.Errorf("HTTPStatusError %+v; want 429, retryable", e)
			}
			if n := w.rs.Hits(prmPath); n != i {
				t.Errorf("PRM fetched %d times after %d calls: no hot loop on 429", n, i)
			}
		}
	})
}

// padJSON returns a valid JSON object of about n bytes.
func padJSON(n int) []byte {
	return []byte(`{"resource":"x","pad":"` + strings.Repeat("a", n) + `"}`)
}

func TestE02_OversizedBodies(t *testing.T) {
	t.Run("prm 2 MiB", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.route("GET "+prmPath, body("application/json", padJSON(2<<20)))
		_, _, err := w.c.call(heavyBudget)
		if e := want[*machine.TransportError](t, err); !strings.Contains(e.Reason, "exceeds") {
			t.Errorf("reason %q, want the size limit", e.Reason)
		}
		w.as.wantUntouched(t)
	})
	t.Run("endless chunked body", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.route("GET "+prmPath, func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Type", "application/json")
			chunk := bytes.Repeat([]byte(" "), 32<<10)
			_, _ = rw.Write([]byte(`{"resource":`))
			for r.Context().Err() == nil {
				if _, err := rw.Write(chunk); err != nil {
					return
				}
				rw.(http.Flusher).Flush()
			}
		})
		_, _, err := w.c.call(heavyBudget)
		want[*machine.TransportError](t, err)
	})
	t.Run("gzip bomb", func(t *testing.T) {
		t.Parallel()
		var z bytes.Buffer
		gw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		_, _ = gw.Write([]byte(`{"resource":"`))
		zeros := make([]byte, 1<<20)
		for i := 0; i < 4; i++ { // 4 MiB inflated (four times the cap), a few KiB on the wire
			_, _ = gw.Write(zeros)
		}
		gw.Close()
		if z.Len() > 64<<10 {
			t.Fatalf("bomb is %d bytes compressed", z.Len())
		}
		w := newWorld(t)
		w.rs.route("GET "+prmPath, func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Encoding", "gzip")
			writeRaw(rw, 200, "application/json", z.Bytes())
		})
		_, _, err := w.c.call(heavyBudget)
		if e := want[*machine.TransportError](t, err); !strings.Contains(e.Reason, "exceeds") {
			t.Errorf("reason %q: the cap must apply to the inflated body", e.Reason)
		}
	})
	t.Run("token response 2 MiB", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("POST /token", body("application/json", padJSON(2<<20)))
		_, _, err := w.c.call(heavyBudget)
		want[*machine.TransportError](t, err)
		if w.c.stored().Tokens != nil {
			t.Errorf("a credential was stored from an oversized response")
		}
	})
	t.Run("1 MiB response header", func(t *testing.T) {
		t.Parallel()
		// The Requester's own default client (the flow reaches only the
		// loopback servers of this test).
		w := newWorld(t)
		w.c.opts.Requester = &httpdriver.Requester{Timeout: auxTimeout} // its own default client
		w.rs.route("GET "+prmPath, func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("X-Pad", strings.Repeat("a", 1<<20))
			writeJSON(rw, 200, map[string]any{"resource": w.rs.mcpURL, "authorization_servers": []string{w.as.issuer}})
		})
		_, _, err := w.c.call(heavyBudget)
		if err == nil {
			t.Fatal("regression: httpdriver.Requester accepts a 1 MiB response header: its default client uses " +
				"http.DefaultTransport (MaxResponseHeaderBytes 10 MiB); spec-checklist E-02 asks for a header cap " +
				"(16 KiB suggested). Fix: give the default client a Transport with MaxResponseHeaderBytes = 64 KiB " +
				"and document it; NewPolicyTransport already sets 64 KiB")
		}
		want[*machine.TransportError](t, err)
	})
	t.Run("1 MiB response header with the policy transport", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		policy := (&httpdriver.PolicyDialer{Policy: loopbackOnly, Resolver: w.c.resolver}).Transport()
		t.Cleanup(policy.CloseIdleConnections)
		w.c.spy.next = policy
		w.rs.route("GET "+prmPath, func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("X-Pad", strings.Repeat("a", 1<<20))
			writeJSON(rw, 200, map[string]any{"resource": w.rs.mcpURL, "authorization_servers": []string{w.as.issuer}})
		})
		_, _, err := w.c.call(heavyBudget)
		want[*machine.TransportError](t, err)
	})
	t.Run("32 KiB challenge", func(t *testing.T) {
		t.Parallel()
		// The challenge parser refuses a header over 16 KiB; the 401 still
		// means "authorize", by well-known discovery (E-28).
		w := newWorld(t)
		w.rs.setChallenge(`Bearer resource_metadata="` + w.evil.URL + `/prm", realm="` + strings.Repeat("r", 32<<10) + `"`)
		w.c.mustCall()
		w.evil.wantUntouched(t)
	})
}

// hang blocks until the client gives up.
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func TestE03_SlowResponses(t *testing.T) {
	t.Run("hung metadata", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.c.timeouts(shortTimeout)
		w.as.route("GET "+asmPath, hang)
		start := time.Now()
		_, _, err := w.c.call(shortTimeout + time.Second)
		want[*machine.TransportError](t, err)
		if d := time.Since(start); d < shortTimeout {
			t.Errorf("gave up after %v, before the %v timeout", d, shortTimeout)
		}
	})
	t.Run("slow-loris body", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.c.timeouts(shortTimeout)
		w.rs.route("GET "+prmPath, func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(200)
			for r.Context().Err() == nil {
				if _, err := rw.Write([]byte(" ")); err != nil {
					return
				}
				rw.(http.Flusher).Flush()
				time.Sleep(20 * time.Millisecond)
			}
		})
		_, _, err := w.c.call(shortTimeout + time.Second)
		want[*machine.TransportError](t, err)
	})
	t.Run("hung token endpoint", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.c.timeouts(shortTimeout)
		w.as.route("POST /token", hang)
		_, _, err := w.c.call(shortTimeout + time.Second)
		want[*machine.TransportError](t, err)
	})
	t.Run("caller's deadline bounds the flow", func(t *testing.T) {
		t.Parallel()
		// A requester with a long timeout: the caller's context is the
		// overall flow deadline.
		w := newWorld(t)
		w.c.timeouts(time.Minute)
		w.as.route("POST /token", hang)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, w.rs.mcpURL, strings.NewReader(`{}`))
		start := time.Now()
		_, err := (&http.Client{Transport: w.c.transport()}).Do(req)
		if err == nil || ctx.Err() == nil {
			t.Fatalf("err %v, want the caller's deadline", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("returned %v after a 300ms deadline", d)
		}
	})
}

// redirect answers with a redirect to loc.
func redirect(code int, loc string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", loc)
		w.WriteHeader(code)
	}
}

func TestE04_DiscoveryRedirects(t *testing.T) {
	prmOK := func(w *world) http.HandlerFunc {
		return func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, map[string]any{"resource": w.rs.mcpURL, "authorization_servers": []string{w.as.issuer}})
		}
	}
	t.Run("to another origin", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.evil.route("GET /prm", prmOK(w))
		w.rs.route("GET "+prmPath, redirect(302, w.evil.URL+"/prm"))
		_, _, err := w.c.call(defaultBudget)
		if e := want[*machine.TransportError](t, err); !strings.Contains(e.Reason, "another origin") {
			t.Errorf("reason %q", e.Reason)
		}
		w.evil.wantUntouched(t)
	})
	t.Run("to http on a foreign host", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.route("GET "+prmPath, redirect(301, "http://metadata.example.test/prm"))
		_, _, err := w.c.call(defaultBudget)
		want[*machine.TransportError](t, err)
		w.c.wantNoDNS()
	})
	t.Run("to a private address", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.route("GET "+prmPath, redirect(307, "http://127.0.0.2:9/prm"))
		_, _, err := w.c.call(defaultBudget)
		want[*machine.TransportError](t, err)
		if n := w.c.spy.Sent("http://127.0.0.2"); n != 0 {
			t.Errorf("followed a redirect to another address %d times", n)
		}
	})
	t.Run("loop", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.route("GET "+prmPath, redirect(302, prmPath))
		_, _, err := w.c.call(defaultBudget)
		if e := want[*machine.TransportError](t, err); !strings.Contains(e.Reason, "too many") {
			t.Errorf("reason %q", e.Reason)
		}
		if n := w.rs.Hits(prmPath); n > 4 {
			t.Errorf("followed %d hops, limit 3", n-1)
		}
	})
	t.Run("same origin is followed", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.route("GET /moved-prm", prmOK(w))
		w.rs.route("GET "+prmPath, redirect(302, "/moved-prm"))
		w.c.mustCall()
	})
	t.Run("metadata to another origin", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("GET "+asmPath, redirect(302, w.evil.URL+asmPath))
		_, _, err := w.c.call(defaultBudget)
		want[*machine.TransportError](t, err)
		w.evil.wantUntouched(t)
	})
}

func TestE05_PostRedirects(t *testing.T) {
	for _, code := range []int{307, 308} {
		t.Run("token "+http.StatusText(code), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.route("POST /token", redirect(code, w.evil.URL+"/token"))
			_, _, err := w.c.call(defaultBudget)
			if e := want[*machine.TransportError](t, err); !strings.Contains(e.Reason, "carries secrets") {
				t.Errorf("reason %q", e.Reason)
			}
			w.evil.wantUntouched(t)
		})
	}
	t.Run("token same-origin 307", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("POST /token", redirect(307, "/token2"))
		_, _, err := w.c.call(defaultBudget)
		want[*machine.TransportError](t, err)
		if n := w.as.Hits("/token2"); n != 0 {
			t.Errorf("a POST with secrets followed a same-origin redirect")
		}
	})
	t.Run("registration 307", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("POST /register", redirect(307, w.evil.URL+"/register"))
		_, _, err := w.c.call(defaultBudget)
		want[*machine.TransportError](t, err)
		w.evil.wantUntouched(t)
	})
	t.Run("refresh 308", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.login(t)
		rt := w.c.storedRefresh()
		w.as.expire()
		w.as.route("POST /token", redirect(308, w.evil.URL+"/token"))
		_, _, err := w.c.call(defaultBudget)
		want[*machine.TransportError](t, err)
		w.evil.wantUntouched(t)
		if got := w.c.storedRefresh(); got != rt {
			t.Errorf("a transport failure changed the stored refresh token")
		}
	})
}

func TestE06_ResourceRedirect(t *testing.T) {
	for _, code := range []int{302, 307, 308} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.login(t)
			w.rs.route("POST /mcp", redirect(code, w.evil.URL+"/mcp"))
			w.evil.route("POST /mcp", func(rw http.ResponseWriter, r *http.Request) { writeJSON(rw, 200, map[string]any{}) })
			w.evil.route("GET /mcp", func(rw http.ResponseWriter, r *http.Request) { writeJSON(rw, 200, map[string]any{}) })
			status, _, err := w.c.call(defaultBudget)
			if err != nil || status != 200 {
				t.Fatalf("status %d, err %v: the redirect is the caller's to follow", status, err)
			}
			if len(w.evil.Got()) != 1 {
				t.Fatalf("the redirect was not followed")
			}
			w.evil.wantNoCredentials(t)
		})
	}
}

func TestE07_TLSFailures(t *testing.T) {
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			writeJSON(rw, 200, map[string]any{"resource": w.rs.mcpURL, "authorization_servers": []string{w.as.issuer}})
		}))
		tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
		tlsSrv.StartTLS()
		t.Cleanup(tlsSrv.Close)
		w.rs.setChallenge(`Bearer resource_metadata="` + tlsSrv.URL + `/prm"`)
		_, _, err := w.c.call(defaultBudget)
		if e := want[*machine.TransportError](t, err); !strings.Contains(e.Reason, "certificate") {
			t.Errorf("reason %q, want the certificate error", e.Reason)
		}
		// Never retried over plain http.
		if n := w.c.spy.Sent("http://" + strings.TrimPrefix(tlsSrv.URL, "https://")); n != 0 {
			t.Errorf("retried over http %d times", n)
		}
		w.as.wantUntouched(t)
	})
	t.Run("http authorization server on a foreign host", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.setPRM("authorization_servers", []string{"http://as.example.test"})
		_, _, err := w.c.call(defaultBudget)
		want[*machine.MalformedError](t, err)
		w.c.wantNoDNS()
	})
}

func TestE08_WrongContentType(t *testing.T) {
	prm := func(w *world) []byte {
		return []byte(`{"resource":"` + w.rs.mcpURL + `","authorization_servers":["` + w.as.issuer + `"]}`)
	}
	for _, ct := range []string{"application/json; charset=utf-8", "application/json", "APPLICATION/JSON", "application/ld+json"} {
		t.Run("accepted "+ct, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.rs.route("GET "+prmPath, body(ct, prm(w)))
			w.c.mustCall()
		})
	}
	t.Run("html login page", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.route("GET "+prmPath, body("text/html", []byte("<!doctype html><form action=/login>Sign in</form>")))
		_, _, err := w.c.call(defaultBudget)
		want[*machine.MalformedError](t, err)
		w.as.wantUntouched(t)
	})
	t.Run("jwt", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.rs.route("GET "+prmPath, body("application/jwt", []byte("eyJhbGciOiJub25lIn0.eyJyZXNvdXJjZSI6IngifQ.")))
		_, _, err := w.c.call(defaultBudget)
		want[*machine.MalformedError](t, err)
	})
	t.Run("token response as html", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("POST /token", body("text/html", []byte("<html>Welcome</html>")))
		_, _, err := w.c.call(defaultBudget)
		want[*machine.TokenError](t, err)
		want[*machine.MalformedError](t, err)
	})
}

func TestE09_ErrorWith200(t *testing.T) {
	cases := map[string]string{
		"github style": `{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}`,
		"slack style":  `{"ok":false,"error":"invalid_code"}`,
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.route("POST /token", body("application/json", []byte(b)))
			_, _, err := w.c.call(defaultBudget)
			want[*machine.TokenError](t, err)
			oe := want[*machine.OAuthError](t, err)
			if oe.Code == "" {
				t.Errorf("OAuthError %+v: the error code must be read, not 'missing access_token'", oe)
			}
		})
	}
}

func TestE10_NonJSONErrorBody(t *testing.T) {
	cases := []struct {
		name   string
		status int
		ct     string
		body   string
	}{
		{"html 500", 500, "text/html", "<html><script>alert(document.cookie)</script></html>"},
		{"empty 400", 400, "", ""},
		{"plain text 502", 502, "text/plain", "Bad Gateway\r\nX-Injected: yes"},
		{"json with control characters", 400, "application/json", `{"error":"invalid_request","error_description":"line1\r\nX-Injected: yes\u001b[31m"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.route("POST /token", func(rw http.ResponseWriter, r *http.Request) { writeRaw(rw, c.status, c.ct, []byte(c.body)) })
			_, _, err := w.c.call(defaultBudget)
			oe := want[*machine.OAuthError](t, err)
			if oe.Status != c.status {
				t.Errorf("status %d, want %d", oe.Status, c.status)
			}
			msg := err.Error()
			for _, bad := range []string{"<script>", "\r", "\n", "\x1b"} {
				if strings.Contains(msg, bad) {
					t.Errorf("error text carries raw server bytes %q: %q", bad, msg)
				}
			}
		})
	}
}
