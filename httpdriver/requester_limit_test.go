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
