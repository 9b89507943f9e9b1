package httpdriver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mcpauth/mcpauth/httpdriver"
)

func listenCallback(t *testing.T, path string) *httpdriver.CallbackServer {
	t.Helper()
	c, err := httpdriver.ListenCallback(0, path)
	if err != nil {
		t.Fatalf("ListenCallback: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// browserHit is what a browser got from the callback server.
type browserHit struct {
	status int
	body   string
	header http.Header
	err    error
}

func hit(u string) browserHit {
	resp, err := http.Get(u)
	if err != nil {
		return browserHit{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return browserHit{status: resp.StatusCode, body: string(b), header: resp.Header}
}

func TestCallbackServerAddress(t *testing.T) {
	c := listenCallback(t, "")
	ru := c.RedirectURI()
	if !regexp.MustCompile(`^http://127\.0\.0\.1:[0-9]+/callback$`).MatchString(ru) {
		t.Fatalf("RedirectURI %q, want http://127.0.0.1:<port>/callback", ru)
	}
	u, _ := url.Parse(ru)
	port := u.Port()
	if p, _ := strconv.Atoi(port); p == 0 {
		t.Fatalf("no port in %q", ru)
	}
	c2 := listenCallback(t, "/oauth/cb")
	if !strings.HasSuffix(c2.RedirectURI(), "/oauth/cb") {
		t.Errorf("RedirectURI %q, want path /oauth/cb", c2.RedirectURI())
	}

	// Only 127.0.0.1 listens: every other address of this host refuses.
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.Equal(net.IPv4(127, 0, 0, 1)) || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		tried++
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(ipn.IP.String(), port), 2*time.Second)
		if err == nil {
			conn.Close()
			t.Errorf("callback server reachable on %s", ipn.IP)
		}
	}
	t.Logf("checked %d other local addresses", tried)
}

func TestCallbackServerAuthorize(t *testing.T) {
	c := listenCallback(t, "")
	const query = "code=abc%2Fdef&state=xyz&iss=https%3A%2F%2Fas.example"
	hits := make(chan browserHit, 1)
	var opened string
	c.Open = func(authURL string) error {
		opened = authURL
		go func() { hits <- hit(c.RedirectURI() + "?" + query) }()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	got, err := c.Authorize(ctx, "https://as.example/authorize?state=xyz", c.RedirectURI())
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	if got != query {
		t.Errorf("query %q, want the raw query %q", got, query)
	}
	if opened != "https://as.example/authorize?state=xyz" {
		t.Errorf("opened %q", opened)
	}
	h := <-hits
	if h.err != nil || h.status != http.StatusOK || !strings.Contains(h.body, "Signed in") {
		t.Errorf("browser got %d %q %v", h.status, h.body, h.err)
	}
	if h.header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(h.header.Get("Content-Type"), "text/html") {
		t.Errorf("headers %v", h.header)
	}
	if strings.Contains(h.body, "abc") || strings.Contains(h.body, "xyz") {
		t.Errorf("the page shows the code or state: %s", h.body)
	}

	// A second hit finds nobody waiting.
	h = hit(c.RedirectURI() + "?" + query)
	if h.status != http.StatusGone {
		t.Errorf("second hit: status %d, want 410", h.status)
	}
	// Other paths are not the callback.
	u, _ := url.Parse(c.RedirectURI())
	if h := hit("http://" + u.Host + "/other?code=a"); h.status != http.StatusNotFound {
		t.Errorf("other path: status %d, want 404", h.status)
	}
}

func TestCallbackServerErrorPageEscaped(t *testing.T) {
	c := listenCallback(t, "")
	const inject = `<script>alert(1)</script><img src=x onerror=alert(2)>`
	hits := make(chan browserHit, 1)
	c.Open = func(string) error {
		go func() {
			hits <- hit(c.RedirectURI() + "?error=" + url.QueryEscape(inject) + "&error_description=" + url.QueryEscape(inject) + "&state=s")
		}()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	q, err := c.Authorize(ctx, "https://as.example/authorize", c.RedirectURI())
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	// The machine judges the response: the raw query is passed on as it is.
	if v, _ := url.ParseQuery(q); v.Get("error") != inject {
		t.Errorf("query %q lost the error", q)
	}
	h := <-hits
	if h.err != nil || h.status != http.StatusOK {
		t.Fatalf("browser got %d %v", h.status, h.err)
	}
	for _, bad := range []string{"<script", "<img", "onerror=alert"} {
		if strings.Contains(strings.ToLower(h.body), bad) && !strings.Contains(h.body, "&lt;") {
			t.Errorf("page is injectable (%s): %s", bad, h.body)
		}
	}
	if strings.Contains(h.body, "<script>") || strings.Contains(h.body, "<img") {
		t.Errorf("unescaped markup in the page: %s", h.body)
	}
	if !strings.Contains(h.body, "&lt;script&gt;") {
		t.Errorf("the error is not shown escaped: %s", h.body)
	}
}

func TestCallbackServerCancel(t *testing.T) {
	c := listenCallback(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	c.Open = func(string) error { cancel(); return nil }
	_, err := c.Authorize(ctx, "https://as.example/authorize", c.RedirectURI())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	// Nobody waits any more.
	if h := hit(c.RedirectURI() + "?code=late&state=s"); h.status != http.StatusGone {
		t.Errorf("hit after cancel: status %d, want 410", h.status)
	}
}

func TestCallbackServerRefusals(t *testing.T) {
	c := listenCallback(t, "")
	opened := false
	c.Open = func(string) error { opened = true; return nil }
	if _, err := c.Authorize(context.Background(), "https://as.example/a", "http://127.0.0.1:1/callback"); err == nil {
		t.Errorf("Authorize accepted another redirect URI")
	}
	openErr := errors.New("test: cannot open")
	c.Open = func(string) error { return openErr }
	if _, err := c.Authorize(context.Background(), "https://as.example/a", c.RedirectURI()); !errors.Is(err, openErr) {
		t.Errorf("error %v, want the opener's", err)
	}
	if opened {
		t.Errorf("opened a URL for a foreign redirect URI")
	}
}

// TestCallbackServerTimeout: with nobody answering, Authorize gives up
// after Timeout (default five minutes), measured on synctest's clock.
func TestCallbackServerTimeout(t *testing.T) {
	c := listenCallback(t, "")
	c.Open = func(string) error { return nil }
	for _, tc := range []struct {
		timeout, want time.Duration
	}{{0, 5 * time.Minute}, {3 * time.Second, 3 * time.Second}} {
		c.Timeout = tc.timeout
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			_, err := c.Authorize(context.Background(), "https://as.example/a", c.RedirectURI())
			if err == nil {
				t.Fatal("Authorize returned without a response")
			}
			if d := time.Since(start); d != tc.want {
				t.Errorf("gave up after %v, want %v", d, tc.want)
			}
		})
	}
}

// TestOpenBrowserRefusals: only https and loopback http URLs are opened;
// nothing else reaches a browser or the terminal.
func TestOpenBrowserRefusals(t *testing.T) {
	var buf bytes.Buffer
	old := httpdriver.Stderr
	httpdriver.Stderr = &buf
	t.Cleanup(func() { httpdriver.Stderr = old })
	for _, u := range []string{
		"javascript:alert(1)",
		"file:///etc/passwd",
		"http://example.com/authorize",
		"http://evil.example/authorize?x=1",
		"data:text/html,<script>alert(1)</script>",
		"https://user:pw@as.example/authorize",
		"-a /bin/sh",
		"",
	} {
		if err := httpdriver.OpenBrowser(u); err == nil {
			t.Errorf("OpenBrowser(%q) accepted", u)
		}
		if err := httpdriver.PrintURL(u); err == nil {
			t.Errorf("PrintURL(%q) accepted", u)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("refused URLs printed: %q", buf.String())
	}
	const ok = "https://as.example/authorize?client_id=a&state=b"
	if err := httpdriver.PrintURL(ok); err != nil {
		t.Fatalf("PrintURL: %v", err)
	}
	if !strings.Contains(buf.String(), ok) {
		t.Errorf("PrintURL wrote %q, want the URL", buf.String())
	}
	buf.Reset()
	if err := httpdriver.PrintURL("http://127.0.0.1:8080/authorize"); err != nil || !strings.Contains(buf.String(), "http://127.0.0.1:8080/authorize") {
		t.Errorf("PrintURL(loopback) = %v, wrote %q", err, buf.String())
	}
}

// authServer answers /authorize as the test says.
func authServer(t *testing.T, h http.HandlerFunc) string {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

func TestHeadlessUserAgent(t *testing.T) {
	const redirectURI = "http://127.0.0.1:1/callback"
	origin := authServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			http.Redirect(w, r, redirectURI+"?code=c0de-SECRET&state=st", http.StatusFound)
		case "/see-other":
			http.Redirect(w, r, redirectURI+"?code=c2&state=s2", http.StatusSeeOther)
		case "/elsewhere":
			http.Redirect(w, r, "https://evil.example/callback?code=c0de-SECRET&state=st", http.StatusFound)
		case "/other-port":
			http.Redirect(w, r, "http://127.0.0.1:2/callback?code=c0de-SECRET", http.StatusFound)
		case "/other-path":
			http.Redirect(w, r, "http://127.0.0.1:1/callbackx?code=c0de-SECRET", http.StatusFound)
		case "/hop":
			// A redirect within the authorization server (a login page) is
			// not an authorization response.
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/page":
			_, _ = io.WriteString(w, "<html>log in</html>")
		case "/no-location":
			w.WriteHeader(http.StatusFound)
		case "/error":
			http.Error(w, "bad request", http.StatusBadRequest)
		}
	})
	ua := httpdriver.HeadlessUserAgent{}
	ctx := context.Background()

	q, err := ua.Authorize(ctx, origin+"/ok", redirectURI)
	if err != nil || q != "code=c0de-SECRET&state=st" {
		t.Errorf("Authorize(/ok) = %q, %v", q, err)
	}
	if q, err := ua.Authorize(ctx, origin+"/see-other", redirectURI); err != nil || q != "code=c2&state=s2" {
		t.Errorf("Authorize(/see-other) = %q, %v", q, err)
	}
	for _, p := range []string{"/elsewhere", "/other-port", "/other-path", "/hop"} {
		_, err := ua.Authorize(ctx, origin+p, redirectURI)
		if err == nil {
			t.Errorf("Authorize(%s) accepted a redirect elsewhere", p)
			continue
		}
		wantNoSecret(t, "error for "+p, err.Error(), []string{"c0de-SECRET"})
	}
	for p, status := range map[string]int{"/page": 200, "/no-location": 302, "/error": 400} {
		_, err := ua.Authorize(ctx, origin+p, redirectURI)
		var nr *httpdriver.NoRedirectError
		if !errors.As(err, &nr) || nr.Status != status {
			t.Errorf("Authorize(%s) error %v, want *NoRedirectError{%d}", p, err, status)
		}
	}
	// Only https or loopback authorization URLs are fetched.
	var dials int
	ua = httpdriver.HeadlessUserAgent{Client: &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		dials++
		return nil, errors.New("test: no request allowed")
	})}}
	for _, u := range []string{"http://as.example/authorize", "javascript:alert(1)", "file:///etc/passwd"} {
		if _, err := ua.Authorize(ctx, u, redirectURI); err == nil {
			t.Errorf("Authorize(%s) accepted", u)
		}
	}
	if dials != 0 {
		t.Errorf("%d requests made for refused URLs", dials)
	}
}

// TestHeadlessUserAgentTimeout: an authorization endpoint that never
// answers is given up after Timeout.
func TestHeadlessUserAgentTimeout(t *testing.T) {
	done := make(chan struct{})
	origin := authServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(done) })
	ua := httpdriver.HeadlessUserAgent{Timeout: 50 * time.Millisecond}
	if _, err := ua.Authorize(context.Background(), origin+"/slow", "http://127.0.0.1:1/callback"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want context.DeadlineExceeded", err)
	}
}
