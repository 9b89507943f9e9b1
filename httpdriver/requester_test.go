package httpdriver_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
)

// serve starts a loopback server and closes it when the test ends.
func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func fetchGet(u string) effects.Fetch {
	return effects.Fetch{Seq: 9, Purpose: effects.PurposeServerMetadata, Method: http.MethodGet, URL: u, Header: map[string][]string{"Accept": {"application/json"}}}
}

func TestRequesterFetch(t *testing.T) {
	var got atomic.Value
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(r.Method + " " + r.URL.RequestURI() + " " + r.Header.Get("Content-Type") + " " + string(b))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Test", "1")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	r := &httpdriver.Requester{}
	resp, err := r.Fetch(context.Background(), effects.Fetch{
		Seq: 42, Method: http.MethodPost, URL: s.URL + "/register?x=1",
		Header: map[string][]string{"Content-Type": {"application/json"}}, Body: []byte(`{"a":1}`),
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if resp.Seq != 42 || resp.Status != http.StatusCreated || string(resp.Body) != `{"ok":true}` {
		t.Errorf("response %+v", resp)
	}
	if resp.Header["Content-Type"][0] != "application/json" || resp.Header["X-Test"][0] != "1" {
		t.Errorf("headers %v", resp.Header)
	}
	if g := got.Load().(string); g != `POST /register?x=1 application/json {"a":1}` {
		t.Errorf("server saw %q", g)
	}
}

func TestRequesterSizeLimit(t *testing.T) {
	size := httpdriver.MaxAuxiliaryBody
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		n := size
		if r.URL.Path == "/over" {
			n++
		}
		_, _ = w.Write([]byte(strings.Repeat("a", n)))
	})
	r := &httpdriver.Requester{}
	resp, err := r.Fetch(context.Background(), fetchGet(s.URL+"/exact"))
	if err != nil || len(resp.Body) != size {
		t.Errorf("a body of exactly %d bytes: %d bytes, %v", size, len(resp.Body), err)
	}
	_, err = r.Fetch(context.Background(), fetchGet(s.URL+"/over?secret=abc"))
	var tooLarge *httpdriver.ResponseTooLargeError
	if !errors.As(err, &tooLarge) {
		t.Fatalf("error %v (%T), want *ResponseTooLargeError", err, err)
	}
	if strings.Contains(err.Error(), "secret=abc") {
		t.Errorf("error quotes the query: %v", err)
	}
}

func TestRequesterRedirects(t *testing.T) {
	var otherHits atomic.Int32
	other := serve(t, func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		_, _ = io.WriteString(w, `{}`)
	})
	var targetHits atomic.Int32
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cross":
			http.Redirect(w, r, other.URL+"/elsewhere?code=SECRET", http.StatusFound)
		case "/same":
			http.Redirect(w, r, "/target", http.StatusMovedPermanently)
		case "/post":
			http.Redirect(w, r, "/target", http.StatusTemporaryRedirect)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/target":
			targetHits.Add(1)
			_, _ = io.WriteString(w, `{"target":true}`)
		}
	})
	r := &httpdriver.Requester{}
	ctx := context.Background()

	t.Run("same origin GET is followed", func(t *testing.T) {
		resp, err := r.Fetch(ctx, fetchGet(s.URL+"/same"))
		if err != nil || resp.Status != http.StatusOK || string(resp.Body) != `{"target":true}` {
			t.Errorf("got %+v, %v", resp, err)
		}
	})
	t.Run("another origin is refused", func(t *testing.T) {
		_, err := r.Fetch(ctx, fetchGet(s.URL+"/cross"))
		var rr *httpdriver.RedirectRefusedError
		if !errors.As(err, &rr) {
			t.Fatalf("error %v (%T), want *RedirectRefusedError", err, err)
		}
		if otherHits.Load() != 0 {
			t.Errorf("the other origin was contacted")
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error quotes the redirect's query: %v", err)
		}
	})
	t.Run("POST is never redirected", func(t *testing.T) {
		before := targetHits.Load()
		_, err := r.Fetch(ctx, effects.Fetch{Seq: 1, Purpose: effects.PurposeToken, Method: http.MethodPost, URL: s.URL + "/post", Body: []byte("code=abc")})
		var rr *httpdriver.RedirectRefusedError
		if !errors.As(err, &rr) {
			t.Fatalf("error %v (%T), want *RedirectRefusedError", err, err)
		}
		if targetHits.Load() != before {
			t.Errorf("the POST was redirected")
		}
	})
	t.Run("GET with credentials is never redirected", func(t *testing.T) {
		before := targetHits.Load()
		f := fetchGet(s.URL + "/same")
		f.Header = map[string][]string{"Authorization": {"Basic c2VjcmV0"}}
		_, err := r.Fetch(ctx, f)
		var rr *httpdriver.RedirectRefusedError
		if !errors.As(err, &rr) {
			t.Fatalf("error %v (%T), want *RedirectRefusedError", err, err)
		}
		if targetHits.Load() != before {
			t.Errorf("the request with credentials was redirected")
		}
	})
	t.Run("redirect loops end", func(t *testing.T) {
		_, err := r.Fetch(ctx, fetchGet(s.URL+"/loop"))
		var rr *httpdriver.RedirectRefusedError
		if !errors.As(err, &rr) {
			t.Fatalf("error %v (%T), want *RedirectRefusedError", err, err)
		}
	})
}

// dialRecorder is an http.Transport whose dials are counted.
func dialRecorder(dials *atomic.Int32) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return nil, errors.New("test: no connection allowed")
		},
	}}
}

// TestRequesterRefusesInsecure: http to a host that is not loopback is
// refused before any connection is made.
func TestRequesterRefusesInsecure(t *testing.T) {
	var dials atomic.Int32
	r := &httpdriver.Requester{Client: dialRecorder(&dials)}
	for _, u := range []string{
		"http://example.com/.well-known/oauth-authorization-server",
		"http://10.0.0.1/token",
		"http://localhost.example.com/token",
		"ftp://127.0.0.1/x",
		"https://user:pass@example.com/token",
		"/relative",
	} {
		if _, err := r.Fetch(context.Background(), effects.Fetch{Seq: 1, Method: http.MethodPost, URL: u, Body: []byte("client_secret=x")}); err == nil {
			t.Errorf("Fetch(%s) succeeded", u)
		}
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("%d connections attempted", n)
	}
	// https and loopback http are allowed through to the dialer.
	for _, u := range []string{"https://example.com/x", "http://127.0.0.1:1/x", "http://localhost:1/x", "http://[::1]:1/x"} {
		before := dials.Load()
		_, _ = r.Fetch(context.Background(), fetchGet(u))
		if dials.Load() == before {
			t.Errorf("Fetch(%s) refused before dialing", u)
		}
	}
}

// TestRequesterTimeout: a server that never answers is given up after
// Requester.Timeout.
func TestRequesterTimeout(t *testing.T) {
	done := make(chan struct{})
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slowbody" {
			_, _ = io.WriteString(w, `{"partial":`)
			w.(http.Flusher).Flush()
		}
		select {
		case <-done:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(done) }) // runs before s.Close
	r := &httpdriver.Requester{Timeout: 50 * time.Millisecond}
	start := time.Now()
	_, err := r.Fetch(context.Background(), fetchGet(s.URL+"/slow"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	// The limit covers reading the body, not only the headers.
	if _, err := r.Fetch(context.Background(), fetchGet(s.URL+"/slowbody")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow body: error %v, want context.DeadlineExceeded", err)
	}
	// The caller's context is honoured as well.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = &httpdriver.Requester{}
	if _, err := r.Fetch(ctx, fetchGet(s.URL+"/slow")); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	// A client Timeout shorter than ours does not apply; ours does.
	r = &httpdriver.Requester{Client: &http.Client{Timeout: time.Nanosecond}, Timeout: 50 * time.Millisecond}
	if _, err := r.Fetch(context.Background(), fetchGet(s.URL+"/slow")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want context.DeadlineExceeded", err)
	}
}

// TestRequesterErrorsHaveNoSecrets: failures of requests that carry
// secrets never quote them.
func TestRequesterErrorsHaveNoSecrets(t *testing.T) {
	const secret = "s3cr3t-value-0123456789"
	done := make(chan struct{})
	s := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-done:
			case <-r.Context().Done():
			}
		case "/redirect":
			http.Redirect(w, r, "/x?token="+secret, http.StatusTemporaryRedirect)
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("a", httpdriver.MaxAuxiliaryBody+1)))
		}
	})
	t.Cleanup(func() { close(done) })
	r := &httpdriver.Requester{Timeout: 50 * time.Millisecond}
	for _, path := range []string{"/slow", "/redirect", "/big"} {
		_, err := r.Fetch(context.Background(), effects.Fetch{
			Seq: 1, Purpose: effects.PurposeToken, Method: http.MethodPost,
			URL:    s.URL + path + "?access_token=" + secret,
			Header: map[string][]string{"Authorization": {"Basic " + secret}},
			Body:   []byte("client_secret=" + secret + "&code=" + secret),
		})
		if err == nil {
			t.Fatalf("%s: no error", path)
		}
		wantNoSecret(t, "error for "+path, err.Error(), []string{secret})
	}
	// A refused URL is not quoted with its secrets either.
	_, err := r.Fetch(context.Background(), effects.Fetch{Seq: 1, Method: http.MethodGet, URL: "http://example.com/x?access_token=" + secret})
	if err == nil {
		t.Fatal("insecure URL accepted")
	}
	wantNoSecret(t, "insecure URL error", err.Error(), []string{secret})
}
