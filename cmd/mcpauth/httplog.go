package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// httpCounter counts the HTTP exchanges of a run, by kind.
type httpCounter struct {
	mu     sync.Mutex
	byKind map[string]int
}

func (c *httpCounter) add(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKind == nil {
		c.byKind = map[string]int{}
	}
	c.byKind[kind]++
}

// counts returns the total and a copy of the per-kind counts.
func (c *httpCounter) counts() (int, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	out := map[string]int{}
	for k, n := range c.byKind {
		total += n
		out[k] = n
	}
	return total, out
}

// httpLogger is an http.RoundTripper that prints one line per exchange:
// method, URL (its query, which may hold secrets, reduced to "?…"), the
// MCP method for JSON-RPC posts, status and time taken. It never prints
// headers or bodies. kind says whose requests these are ("mcp" for the
// protected requests, "oauth" for the machine's auxiliary requests,
// "browser" for the user agent).
type httpLogger struct {
	base  http.RoundTripper
	kind  string
	c     *console // nil: count only
	count *httpCounter
}

// RoundTrip implements http.RoundTripper; the request is not modified.
func (l *httpLogger) RoundTrip(req *http.Request) (*http.Response, error) {
	note := ""
	if l.kind == "mcp" {
		note = rpcMethod(req)
	}
	start := time.Now()
	resp, err := l.base.RoundTrip(req)
	took := time.Since(start)
	if l.count != nil {
		l.count.add(l.kind)
	}
	if l.c == nil {
		return resp, err
	}
	line := req.Method + " " + displayURL(req)
	if note != "" {
		line += "  " + note
	}
	if err != nil {
		l.c.event("http", styleRed, fmt.Sprintf("%s  ✗ %s  %s", line, trim(rootMessage(err)), ms(took)))
		return resp, err
	}
	status := l.c.paint(statusStyle(resp.StatusCode), fmt.Sprintf("→ %d", resp.StatusCode))
	l.c.event("http", styleBlue, fmt.Sprintf("%s  %s  %s", line, status, ms(took)))
	return resp, err
}

func statusStyle(code int) string {
	switch {
	case code < 300:
		return styleGreen
	case code < 400:
		return styleCyan
	case code < 500:
		return styleYellow
	}
	return styleRed
}

// displayURL is the request URL without its query: the authorization
// request's query carries state and the PKCE challenge, and a redirect's
// carries the code.
func displayURL(req *http.Request) string {
	u := *req.URL
	q := u.RawQuery != ""
	u.RawQuery, u.Fragment, u.User = "", "", nil
	if q {
		return u.String() + "?…"
	}
	return u.String()
}

// rpcMethod names the JSON-RPC method of an MCP post ("tools/call echo"),
// read from a copy of the body obtained through GetBody; nothing else of
// the body is kept.
func rpcMethod(req *http.Request) string {
	if req.Method != http.MethodPost || req.GetBody == nil {
		return ""
	}
	body, err := req.GetBody()
	if err != nil {
		return ""
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, 1<<20))
	if err != nil {
		return ""
	}
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) || json.Unmarshal(b, &msg) != nil {
		return ""
	}
	if msg.Method == "tools/call" && msg.Params.Name != "" {
		return msg.Method + " " + msg.Params.Name
	}
	return msg.Method
}
