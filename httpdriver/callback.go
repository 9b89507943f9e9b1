package httpdriver

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// CallbackServer is the loopback redirect target of a native client (RFC
// 8252 §7.3): it listens on 127.0.0.1 (never on all interfaces), takes one
// authorization response per wait, and answers the browser with a short
// page. It implements driver.UserAgent together with an Opener.
type CallbackServer struct {
	// Open shows the authorization URL to the user; default OpenBrowser.
	Open func(authURL string) error
	// Timeout bounds the wait for the user. Default 5 minutes.
	Timeout time.Duration

	ln     net.Listener
	srv    *http.Server
	path   string
	mu     sync.Mutex
	waiter chan string
	state  string // the state of the authorization request awaited
}

// ListenCallback listens on 127.0.0.1:port (0: an ephemeral port) with the
// given path (default "/callback").
func ListenCallback(port int, path string) (*CallbackServer, error) {
	if path == "" {
		path = "/callback"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)))
	if err != nil {
		return nil, err
	}
	c := &CallbackServer{ln: ln, path: path}
	mux := http.NewServeMux()
	mux.HandleFunc(path, c.serve)
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

// RedirectURI is the URI to register and send: http://127.0.0.1:port/path.
func (c *CallbackServer) RedirectURI() string {
	return "http://" + c.ln.Addr().String() + c.path
}

// Close stops listening.
func (c *CallbackServer) Close() error { return c.srv.Close() }

// Authorize implements driver.UserAgent: it opens the URL and waits for the
// authorization response at the callback path.
func (c *CallbackServer) Authorize(ctx context.Context, authURL, redirectURI string) (string, error) {
	if redirectURI != c.RedirectURI() {
		return "", fmt.Errorf("httpdriver: redirect URI %s is not this callback server's %s", redirectURI, c.RedirectURI())
	}
	ch := make(chan string, 1)
	c.mu.Lock()
	if c.waiter != nil {
		c.mu.Unlock()
		return "", errors.New("httpdriver: another sign-in is already waiting on this callback server")
	}
	c.waiter = ch
	c.state = stateOf(authURL)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.waiter == ch { // never clear another sign-in's wait
			c.waiter, c.state = nil, ""
		}
		c.mu.Unlock()
	}()
	open := c.Open
	if open == nil {
		open = OpenBrowser
	}
	if err := open(authURL); err != nil {
		return "", err
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	select {
	case q := <-ch:
		return q, nil
	case <-time.After(timeout):
		return "", errors.New("httpdriver: no authorization response before the timeout")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (c *CallbackServer) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// A page on another site that rebinds its name to 127.0.0.1 reaches
	// this listener with its own Host: refuse it (DNS rebinding).
	if r.Host != c.ln.Addr().String() {
		w.WriteHeader(http.StatusMisdirectedRequest)
		fmt.Fprint(w, page("Wrong address", "This sign-in page is only served at "+c.RedirectURI()+"."))
		return
	}
	c.mu.Lock()
	ch := c.waiter
	// Only the answer to our request ends the wait: a request without our
	// state (another page, a stale tab) is refused and the wait goes on.
	// The machine checks the state again, in constant time.
	if ch != nil && c.state != "" && r.URL.Query().Get("state") != c.state {
		c.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, page("Not this sign-in", "This response does not belong to the sign-in in progress. You can close this window."))
		return
	}
	c.waiter = nil
	c.mu.Unlock()
	if ch == nil {
		w.WriteHeader(http.StatusGone)
		fmt.Fprint(w, page("No sign-in is waiting", "This link has already been used or has expired. You can close this window."))
		return
	}
	ch <- r.URL.RawQuery
	q, _ := url.ParseQuery(r.URL.RawQuery)
	if e := q.Get("error"); e != "" {
		// The machine decides whether the response is genuine; the page
		// only says what arrived, escaped.
		fmt.Fprint(w, page("Sign-in did not complete", "The authorization server answered: "+e+". You can close this window."))
		return
	}
	fmt.Fprint(w, page("Signed in", "You can close this window and return to the application."))
}

func page(title, text string) string {
	return "<!doctype html><meta charset=utf-8><title>" + html.EscapeString(title) + "</title>" +
		"<body style=\"font-family:sans-serif;margin:3em\"><h1>" + html.EscapeString(title) + "</h1><p>" + html.EscapeString(text) + "</p>"
}

// stateOf returns the state parameter of an authorization URL.
func stateOf(authURL string) string {
	u, err := url.Parse(authURL)
	if err != nil {
		return ""
	}
	return u.Query().Get("state")
}
