package httpdriver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// MaxAuxiliaryBody bounds metadata, registration and token responses.
const MaxAuxiliaryBody = 1 << 20

// MaxAuxiliaryHeader bounds their headers (net/http's default is 10 MiB).
const MaxAuxiliaryHeader = 64 << 10

// defaultAuxiliaryClient is http.DefaultTransport's configuration with the
// header bound.
var defaultAuxiliaryClient = func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxResponseHeaderBytes = MaxAuxiliaryHeader
	return &http.Client{Transport: t}
}()

// Requester performs auxiliary requests (discovery, registration, token)
// for the machine. It implements driver.Requester.
type Requester struct {
	// Client sends the requests; its CheckRedirect and Timeout are replaced
	// by Requester's own rules. Default: a client over http.DefaultTransport.
	Client *http.Client
	// Timeout bounds one request. Default 30 s.
	Timeout time.Duration
	// MaxRedirects bounds same-origin redirects of discovery GETs. Default 3.
	MaxRedirects int
	// MaxBody bounds a response body. Default MaxAuxiliaryBody (1 MiB).
	MaxBody int64
}

// ResponseTooLargeError reports a body over the requester's limit.
type ResponseTooLargeError struct {
	URL   string
	Limit int64
}

// Retryable: the same server will send the same body again.
func (e *ResponseTooLargeError) Retryable() bool { return false }

func (e *ResponseTooLargeError) Error() string {
	return fmt.Sprintf("httpdriver: response from %s exceeds %d bytes", e.URL, e.Limit)
}

// RedirectRefusedError reports a redirect the requester would not follow.
type RedirectRefusedError struct {
	From, To string
	Reason   string
}

// Retryable: the same request will be redirected the same way.
func (e *RedirectRefusedError) Retryable() bool { return false }

func (e *RedirectRefusedError) Error() string {
	return fmt.Sprintf("httpdriver: redirect from %s to %s refused: %s", e.From, e.To, e.Reason)
}

// Fetch implements driver.Requester.
func (r *Requester) Fetch(ctx context.Context, f effects.Fetch) (machine.FetchResponse, error) {
	// Design §4.7: HTTPS for every endpoint except loopback hosts.
	if err := machine.CheckSecureURL(f.URL); err != nil {
		return machine.FetchResponse{}, err
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, f.Method, f.URL, bytes.NewReader(f.Body))
	if err != nil {
		return machine.FetchResponse{}, err
	}
	for k, vs := range f.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	resp, err := r.client(f).Do(req)
	if err != nil {
		var rr *RedirectRefusedError
		if errors.As(err, &rr) {
			return machine.FetchResponse{}, rr
		}
		return machine.FetchResponse{}, fmt.Errorf("httpdriver: %s %s: %w", f.Method, stripQuery(f.URL), unwrapURLError(err))
	}
	defer resp.Body.Close()
	limit := r.MaxBody
	if limit <= 0 {
		limit = MaxAuxiliaryBody
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return machine.FetchResponse{}, fmt.Errorf("httpdriver: reading %s: %w", stripQuery(f.URL), err)
	}
	if int64(len(body)) > limit {
		return machine.FetchResponse{}, &ResponseTooLargeError{URL: stripQuery(f.URL), Limit: limit}
	}
	return machine.FetchResponse{Seq: f.Seq, Status: resp.StatusCode, Header: map[string][]string(resp.Header.Clone()), Body: body}, nil
}

// client returns an http.Client with this fetch's redirect rule: requests
// with a body or credentials never follow redirects (a 307 would resend the
// secrets), discovery GETs follow a few, same-origin only (Q-28, A-SEC-10).
func (r *Requester) client(f effects.Fetch) *http.Client {
	base := r.Client
	if base == nil {
		base = defaultAuxiliaryClient
	}
	c := *base
	c.Timeout = 0 // the context bounds the request
	max := r.MaxRedirects
	if max == 0 {
		max = 3
	}
	// Only discovery documents may be fetched through a redirect; every
	// other request carries something for its endpoint alone.
	secret := (f.Purpose != effects.PurposeResourceMetadata && f.Purpose != effects.PurposeServerMetadata) ||
		f.Method != http.MethodGet || len(f.Header["Authorization"]) > 0
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		from := via[0].URL.String()
		switch {
		case secret:
			return &RedirectRefusedError{From: stripQuery(from), To: stripQuery(req.URL.String()), Reason: "the request carries secrets"}
		case len(via) > max:
			return &RedirectRefusedError{From: stripQuery(from), To: stripQuery(req.URL.String()), Reason: "too many redirects"}
		case !machine.SameOrigin(from, req.URL.String()):
			return &RedirectRefusedError{From: stripQuery(from), To: stripQuery(req.URL.String()), Reason: "another origin"}
		}
		return machine.CheckSecureURL(req.URL.String())
	}
	return &c
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func stripQuery(u string) string {
	if i := bytes.IndexByte([]byte(u), '?'); i >= 0 {
		return u[:i]
	}
	return u
}
