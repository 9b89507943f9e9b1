package httpdriver_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
)

// TestRequesterMaxBodyAtItsEdge: the configured limit is the largest body
// accepted; one byte more is refused with the limit named (issue 7 item 7).
func TestRequesterMaxBodyAtItsEdge(t *testing.T) {
	const limit = 100
	for _, tc := range []struct {
		size int
		ok   bool
	}{{limit, true}, {limit + 1, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(strings.Repeat("x", tc.size)))
		}))
		r := &httpdriver.Requester{MaxBody: limit}
		resp, err := r.Fetch(context.Background(), effects.Fetch{Seq: 1, Method: "GET", URL: srv.URL})
		srv.Close()
		var tooLarge *httpdriver.ResponseTooLargeError
		switch {
		case tc.ok && (err != nil || len(resp.Body) != tc.size):
			t.Errorf("%d bytes: %v, %d bytes read", tc.size, err, len(resp.Body))
		case !tc.ok && (!errors.As(err, &tooLarge) || tooLarge.Limit != limit):
			t.Errorf("%d bytes: err = %v, want *ResponseTooLargeError with limit %d", tc.size, err, limit)
		}
	}
}

// TestRequesterMaxRedirectsAtItsEdge: a discovery GET follows exactly
// MaxRedirects same-origin redirects; one more is refused, typed.
func TestRequesterMaxRedirectsAtItsEdge(t *testing.T) {
	const limit = 2
	for _, hops := range []int{limit, limit + 1} {
		var srv *httptest.Server
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := len(r.URL.Path) - len("/")
			if n < hops {
				http.Redirect(w, r, srv.URL+r.URL.Path+"x", http.StatusFound)
				return
			}
			_, _ = w.Write([]byte("{}"))
		}))
		r := &httpdriver.Requester{MaxRedirects: limit}
		resp, err := r.Fetch(context.Background(), effects.Fetch{Seq: 1, Purpose: effects.PurposeServerMetadata, Method: "GET", URL: srv.URL + "/"})
		srv.Close()
		var refused *httpdriver.RedirectRefusedError
		switch {
		case hops == limit && (err != nil || resp.Status != http.StatusOK):
			t.Errorf("%d redirects: %v (status %d), want the document", hops, err, resp.Status)
		case hops > limit && !errors.As(err, &refused):
			t.Errorf("%d redirects: err = %v, want *RedirectRefusedError", hops, err)
		}
	}
}
