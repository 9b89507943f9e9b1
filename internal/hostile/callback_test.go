package hostile_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// §4.7 Authorization response / callback: E-43 … E-48.

// wantNoExchange requires that no code went to the token endpoint.
func wantNoExchange(t *testing.T, w *world) {
	t.Helper()
	if n := w.as.Hits("/token"); n != 0 {
		t.Errorf("the token endpoint was called %d times after a refused authorization response", n)
	}
	if w.c.stored().Tokens != nil {
		t.Errorf("a credential was stored")
	}
}

// testworldClient starts a test world and a client for it.
func testworldClient(t *testing.T, o testworld.Options) (*testworld.World, *client) {
	t.Helper()
	tw, err := testworld.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tw.Close)
	return tw, newClient(t, tw.MCPURL(), tw.Issuer()+"/token")
}

func TestE43_State(t *testing.T) {
	t.Run("different (test world WrongState)", func(t *testing.T) {
		t.Parallel()
		tw, c := testworldClient(t, testworld.Options{DCR: true})
		tw.SetFault(testworld.Fault{WrongState: true})
		_, _, err := c.call(defaultBudget)
		want[*machine.StateMismatchError](t, err)
		if n := tw.Stats().TokenRequests["authorization_code"]; n != 0 {
			t.Errorf("code exchanged after a state mismatch")
		}
	})
	for name, edit := range map[string]func(v url.Values){
		"missing":    func(v url.Values) { v.Del("state") },
		"empty":      func(v url.Values) { v.Set("state", "") },
		"duplicated": func(v url.Values) { v.Add("state", "attacker") },
		"prefix":     func(v url.Values) { v.Set("state", v.Get("state")[:8]) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.onAuthorize(edit)
			_, _, err := w.c.call(defaultBudget)
			var sm *machine.StateMismatchError
			var mal *machine.MalformedError
			if !errors.As(err, &sm) && !errors.As(err, &mal) {
				t.Fatalf("error %v (%T), want *machine.StateMismatchError or *machine.MalformedError", err, err)
			}
			wantNoExchange(t, w)
		})
	}
	t.Run("replayed after completion", func(t *testing.T) {
		t.Parallel()
		cb, query, _ := callbackRound(t, func(authURL string, st string) string { return "code=c1&state=" + st })
		if query == "" {
			t.Fatal("first callback not delivered")
		}
		if status := getCallback(t, cb.RedirectURI()+"?code=c1&state=x", ""); status != http.StatusGone {
			t.Errorf("replayed callback answered %d, want 410 Gone", status)
		}
	})
}

func TestE44_CallbackShape(t *testing.T) {
	for name, edit := range map[string]func(v url.Values){
		"code missing":    func(v url.Values) { v.Del("code") },
		"code duplicated": func(v url.Values) { v.Add("code", "attacker-code") },
		"code and error":  func(v url.Values) { v.Set("error", "access_denied") },
		"huge description": func(v url.Values) {
			v.Del("code")
			v.Set("error", "access_denied")
			v.Set("error_description", strings.Repeat("x", 20<<10))
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.as.onAuthorize(edit)
			_, _, err := w.c.call(defaultBudget)
			var mal *machine.MalformedError
			var denied *machine.AuthorizationDeniedError
			if !errors.As(err, &mal) && !errors.As(err, &denied) {
				t.Fatalf("error %v (%T), want *machine.MalformedError", err, err)
			}
			wantNoExchange(t, w)
		})
	}
	t.Run("semicolon smuggling", func(t *testing.T) {
		// "a=1;state=x": servers disagree on ";" as a separator.
		t.Parallel()
		w := newWorld(t)
		w.as.route("GET /authorize", func(rw http.ResponseWriter, r *http.Request) {
			rec := &capture{header: http.Header{}}
			w.as.handleAuthorize(rec, r)
			rw.Header().Set("Location", rec.header.Get("Location")+"&x=1;state=attacker")
			rw.WriteHeader(http.StatusFound)
		})
		_, _, err := w.c.call(defaultBudget)
		want[*machine.MalformedError](t, err)
		wantNoExchange(t, w)
	})
	t.Run("response in the fragment", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("GET /authorize", func(rw http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			http.Redirect(rw, r, q.Get("redirect_uri")+"#code=frag-code&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
		})
		_, _, err := w.c.call(defaultBudget)
		want[*machine.MalformedError](t, err)
		wantNoExchange(t, w)
	})
	t.Run("javascript error_uri", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.onAuthorize(func(v url.Values) {
			v.Del("code")
			v.Set("error", "access_denied")
			v.Set("error_uri", "javascript:alert(document.domain)")
		})
		_, _, err := w.c.call(defaultBudget)
		d := want[*machine.AuthorizationDeniedError](t, err)
		if d.Code != "access_denied" || strings.Contains(err.Error(), "javascript:") {
			t.Errorf("denied error %+v / %q: code kept, error_uri never shown", d, err)
		}
	})
	t.Run("error and description from the test world", func(t *testing.T) {
		t.Parallel()
		tw, c := testworldClient(t, testworld.Options{DCR: true})
		tw.SetFault(testworld.Fault{AuthorizeError: "access_denied"})
		_, _, err := c.call(defaultBudget)
		if d := want[*machine.AuthorizationDeniedError](t, err); d.Code != "access_denied" {
			t.Errorf("code %q", d.Code)
		}
	})
}

func TestE45_Iss(t *testing.T) {
	cases := map[string]struct {
		advertised bool
		edit       func(w *world, v url.Values)
		missing    bool
	}{
		"absent while advertised":       {true, func(_ *world, v url.Values) { v.Del("iss") }, true},
		"mismatched":                    {true, func(w *world, v url.Values) { v.Set("iss", w.evil.URL) }, false},
		"trailing slash":                {true, func(w *world, v url.Values) { v.Set("iss", w.as.issuer+"/") }, false},
		"upper case":                    {true, func(w *world, v url.Values) { v.Set("iss", strings.ToUpper(w.as.issuer)) }, false},
		"percent-encoded":               {true, func(w *world, v url.Values) { v.Set("iss", strings.Replace(w.as.issuer, ".", "%2E", 1)) }, false},
		"localhost variant":             {true, func(w *world, v url.Values) { v.Set("iss", strings.Replace(w.as.issuer, "127.0.0.1", "localhost", 1)) }, false},
		"present, not advertised, evil": {false, func(w *world, v url.Values) { v.Set("iss", w.evil.URL) }, false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			if c.advertised {
				w.as.sendIss()
			}
			w.as.onAuthorize(func(v url.Values) { c.edit(w, v) })
			_, _, err := w.c.call(defaultBudget)
			e := want[*machine.IssuerResponseError](t, err)
			if e.Missing != c.missing {
				t.Errorf("IssuerResponseError %+v, Missing want %v", e, c.missing)
			}
			wantNoExchange(t, w)
		})
	}
	t.Run("repeated", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.sendIss()
		w.as.onAuthorize(func(v url.Values) { v.Add("iss", w.as.issuer) })
		_, _, err := w.c.call(defaultBudget)
		want[*machine.MalformedError](t, err)
		wantNoExchange(t, w)
	})
	t.Run("test world WrongIss", func(t *testing.T) {
		t.Parallel()
		tw, c := testworldClient(t, testworld.Options{DCR: true, IssParameter: true})
		tw.SetFault(testworld.Fault{WrongIss: "https://attacker.example.test"})
		_, _, err := c.call(defaultBudget)
		want[*machine.IssuerResponseError](t, err)
		if n := tw.Stats().TokenRequests["authorization_code"]; n != 0 {
			t.Errorf("code exchanged after an iss mismatch")
		}
	})
}

func TestE46_ErrorWithWrongIss(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.as.sendIss()
	const lure = "Your account is locked, call +1-555-0100"
	w.as.onAuthorize(func(v url.Values) {
		v.Del("code")
		v.Set("error", "access_denied")
		v.Set("error_description", lure)
		v.Set("iss", w.evil.URL)
	})
	_, _, err := w.c.call(defaultBudget)
	want[*machine.IssuerResponseError](t, err)
	var denied *machine.AuthorizationDeniedError
	if errors.As(err, &denied) || strings.Contains(err.Error(), "555-0100") {
		t.Errorf("the attacker's error text is shown: %v", err)
	}
}

// callbackRound runs one CallbackServer.Authorize; respond builds the
// query the "browser" delivers from the authorization URL's state. It
// returns the server, the query Authorize returned and its error.
func callbackRound(t *testing.T, respond func(authURL, state string) string) (*httpdriver.CallbackServer, string, error) {
	t.Helper()
	cb, err := httpdriver.ListenCallback(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cb.Close() })
	cb.Timeout = 2 * time.Second
	cb.Open = func(authURL string) error {
		u, err := url.Parse(authURL)
		if err != nil {
			return err
		}
		go getCallback(t, cb.RedirectURI()+"?"+respond(authURL, u.Query().Get("state")), "")
		return nil
	}
	q, err := cb.Authorize(context.Background(), "http://127.0.0.1:1/authorize?state=s-123", cb.RedirectURI())
	return cb, q, err
}

// getCallback sends a GET to the callback server (with a Host header of
// its own when host is set) and returns the status.
func getCallback(t *testing.T, u, host string) int {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Error(err)
		return 0
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestE47_LoopbackListener(t *testing.T) {
	t.Run("binds loopback only", func(t *testing.T) {
		t.Parallel()
		cb, err := httpdriver.ListenCallback(0, "")
		if err != nil {
			t.Fatal(err)
		}
		defer cb.Close()
		if !strings.HasPrefix(cb.RedirectURI(), "http://127.0.0.1:") {
			t.Errorf("redirect URI %s is not on 127.0.0.1", cb.RedirectURI())
		}
	})
	t.Run("port already bound", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if cb, err := httpdriver.ListenCallback(ln.Addr().(*net.TCPAddr).Port, ""); err == nil {
			cb.Close()
			t.Fatal("listening on a bound port succeeded")
		}
	})
	t.Run("other paths and probes do not consume the wait", func(t *testing.T) {
		t.Parallel()
		cb, err := httpdriver.ListenCallback(0, "")
		if err != nil {
			t.Fatal(err)
		}
		defer cb.Close()
		origin := strings.TrimSuffix(cb.RedirectURI(), "/callback")
		cb.Timeout = 2 * time.Second
		cb.Open = func(string) error {
			go func() {
				for _, p := range []string{"/favicon.ico", "/", "/callback/x", "/callbackx"} {
					if s := getCallback(t, origin+p+"?code=probe&state=s-123", ""); s != http.StatusNotFound {
						t.Errorf("GET %s answered %d, want 404", p, s)
					}
				}
				getCallback(t, cb.RedirectURI()+"?code=real&state=s-123", "")
			}()
			return nil
		}
		q, err := cb.Authorize(context.Background(), "http://127.0.0.1:1/authorize?state=s-123", cb.RedirectURI())
		if err != nil || q != "code=real&state=s-123" {
			t.Errorf("Authorize = %q, %v; want the real callback", q, err)
		}
	})
	t.Run("foreign Host header (DNS rebinding)", func(t *testing.T) {
		t.Parallel()
		cb, err := httpdriver.ListenCallback(0, "")
		if err != nil {
			t.Fatal(err)
		}
		defer cb.Close()
		cb.Timeout = time.Second
		statuses := make(chan int, 1)
		cb.Open = func(string) error {
			go func() {
				port := cb.RedirectURI()[len("http://127.0.0.1:"):]
				port = port[:strings.Index(port, "/")]
				statuses <- getCallback(t, cb.RedirectURI()+"?code=rebound&state=s-123", "evil.example.test:"+port)
				getCallback(t, cb.RedirectURI()+"?code=real&state=s-123", "")
			}()
			return nil
		}
		q, _ := cb.Authorize(context.Background(), "http://127.0.0.1:1/authorize?state=s-123", cb.RedirectURI())
		if st := <-statuses; st < 400 || q != "code=real&state=s-123" {
			t.Fatalf("regression: httpdriver.CallbackServer accepts a request whose Host header is not "+
				"127.0.0.1:<port> (answered %d, Authorize returned %q): a DNS-rebinding page can deliver or consume "+
				"the authorization response (spec-checklist E-47). Fix: in callback.go serve, answer 400 (or "+
				"421) unless r.Host equals the listener's host:port (or localhost:<port>), without touching the "+
				"waiter", st, q)
		}
	})
	t.Run("a callback without our state does not end the wait", func(t *testing.T) {
		t.Parallel()
		cb, err := httpdriver.ListenCallback(0, "")
		if err != nil {
			t.Fatal(err)
		}
		defer cb.Close()
		cb.Timeout = time.Second
		cb.Open = func(string) error {
			go func() {
				getCallback(t, cb.RedirectURI()+"?code=attacker&state=guess", "")
				getCallback(t, cb.RedirectURI()+"?code=real&state=s-123", "")
			}()
			return nil
		}
		q, _ := cb.Authorize(context.Background(), "http://127.0.0.1:1/authorize?state=s-123", cb.RedirectURI())
		if q != "code=real&state=s-123" {
			t.Fatal("regression: httpdriver.CallbackServer hands the first request to its path to the flow, whatever its " +
				"state (got " + fmt.Sprintf("%q", q) + "): any local page or process that reaches the port first " +
				"ends the user's sign-in (the machine then refuses the state, so no code is injected, but the " +
				"flow fails). spec-checklist E-47: accept exactly one valid callback. Fix: Authorize knows authURL: " +
				"take its state and, in serve, answer 400 to a query whose state differs and keep waiting")
		}
	})
	t.Run("concurrent callbacks: exactly one", func(t *testing.T) {
		t.Parallel()
		cb, err := httpdriver.ListenCallback(0, "")
		if err != nil {
			t.Fatal(err)
		}
		defer cb.Close()
		cb.Timeout = 2 * time.Second
		results := make(chan int, 8)
		cb.Open = func(string) error {
			for i := 0; i < 8; i++ {
				go func(i int) {
					results <- getCallback(t, fmt.Sprintf("%s?code=c%d&state=s-123", cb.RedirectURI(), i), "")
				}(i)
			}
			return nil
		}
		q, err := cb.Authorize(context.Background(), "http://127.0.0.1:1/authorize?state=s-123", cb.RedirectURI())
		if err != nil || !strings.HasPrefix(q, "code=c") {
			t.Fatalf("Authorize = %q, %v", q, err)
		}
		ok, gone := 0, 0
		for i := 0; i < 8; i++ {
			switch <-results {
			case http.StatusOK:
				ok++
			case http.StatusGone:
				gone++
			}
		}
		if ok != 1 || gone != 7 {
			t.Errorf("%d accepted, %d gone; want 1 and 7", ok, gone)
		}
	})
}

func TestE48_NoCallback(t *testing.T) {
	t.Run("callback server times out", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		cb, err := httpdriver.ListenCallback(0, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cb.Close() })
		cb.Timeout = 300 * time.Millisecond
		cb.Open = func(string) error { return nil } // the browser never comes back
		w.c.cfg.RedirectURI = cb.RedirectURI()
		w.c.opts.UserAgent = cb
		_, _, err = w.c.call(time.Second + cb.Timeout)
		if e := want[*machine.CallbackError](t, err); !strings.Contains(e.Reason, "timeout") {
			t.Errorf("reason %q should say it timed out", e.Reason)
		}
	})
	t.Run("authorization server refuses to redirect", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.as.route("GET /authorize", status(400))
		_, _, err := w.c.call(defaultBudget)
		if e := want[*machine.CallbackError](t, err); !strings.Contains(e.Reason, "400") {
			t.Errorf("reason %q should carry the status", e.Reason)
		}
		wantNoExchange(t, w)
	})
}
