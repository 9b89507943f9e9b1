package httpdriver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/machine"
)

// Options configure a Transport beyond the machine's Config.
type Options struct {
	// Base sends the protected requests. Default http.DefaultTransport.
	Base http.RoundTripper
	// Requester performs auxiliary requests. Default &Requester{}.
	Requester driver.Requester
	// UserAgent takes the user through authorization. Required for the
	// authorization-code flow.
	UserAgent driver.UserAgent
	// Store keeps credentials, registrations and discovery. Default a
	// memory store.
	Store  driver.Store
	Clock  driver.Clock
	Tracer driver.Tracer
	// Signer signs DPoP proofs and client assertions; default
	// driver.NewKeySigner().
	Signer driver.Signer
	// Sources supply the secrets the machine never holds (a workload
	// token, the user's ID token).
	Sources map[string]driver.Source
}

// Transport is an http.RoundTripper that authorizes every request to the
// MCP server through the machine. Requests from many goroutines are
// multiplexed: they never wait for each other while the credential is
// good, and wait for a single refresh or authorization when it is not.
type Transport struct {
	session *driver.Session
	base    http.RoundTripper
	server  string
}

// NewTransport builds the transport for cfg and loads what the store holds;
// a store it cannot read is an error (nothing is overwritten on a guess).
func NewTransport(ctx context.Context, cfg machine.Config, opts Options) (*Transport, error) {
	if opts.Base == nil {
		opts.Base = http.DefaultTransport
	}
	if opts.Requester == nil {
		opts.Requester = &Requester{}
	}
	if opts.Store == nil {
		opts.Store = driver.NewMemoryStore()
	}
	s, err := driver.NewSession(cfg, driver.Deps{
		Requester: opts.Requester,
		UserAgent: opts.UserAgent,
		Store:     opts.Store,
		Clock:     opts.Clock,
		Tracer:    opts.Tracer,
		Signer:    opts.Signer,
		Sources:   opts.Sources,
	})
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		// A store that cannot be read is the caller's to decide about:
		// going on would authorize again and fail to save over it.
		s.Close()
		return nil, err
	}
	return &Transport{session: s, base: opts.Base, server: cfg.Server}, nil
}

// Session exposes the driver session (for status and tests).
func (t *Transport) Session() *driver.Session { return t.session }

// Close stops the transport's background work.
func (t *Transport) Close() { t.session.Close() }

// RoundTrip implements http.RoundTripper. Per its contract the request is
// not modified: each send is a clone with the credential added.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	firstBody, getBody, err := replayableBody(req)
	if err != nil {
		return nil, err
	}
	// Do calls send from this goroutine, one send at a time: last and sent
	// need no lock.
	var (
		last   *http.Response
		sent   bool
		target = req.URL.String()
		own    = machine.SameOriginAsServer(target, t.server)
	)
	send := func(ctx context.Context, header map[string][]string) (driver.Answer, error) {
		clone := req.Clone(ctx)
		// The first send takes the caller's body (or the copy read from
		// it); a re-send takes a fresh copy.
		clone.Body = firstBody
		if sent && getBody != nil {
			body, err := getBody()
			if err != nil {
				return driver.Answer{}, err
			}
			clone.Body = body
		}
		sent = true
		// The machine owns the credential of the MCP server's origin: one
		// set by the caller is replaced, never combined. A request to
		// another origin goes untouched.
		if own {
			clone.Header.Del("Authorization")
		}
		for k, vs := range header {
			clone.Header[k] = vs
		}
		resp, err := t.base.RoundTrip(clone)
		if err != nil {
			return driver.Answer{}, err
		}
		if last != nil {
			drainAndClose(last.Body)
		}
		last = resp
		// Canonical keys read directly: no allocation per response.
		ans := driver.Answer{Status: resp.StatusCode, Challenges: resp.Header["Www-Authenticate"]}
		if n := resp.Header["Dpop-Nonce"]; len(n) > 0 {
			ans.Nonce = n[0]
		}
		return ans, nil
	}
	err = t.session.Do(req.Context(), req.Method, target, send)
	if !sent && firstBody != nil {
		firstBody.Close() // http.RoundTripper closes the body, even unsent
	}
	if err != nil {
		if last != nil {
			drainAndClose(last.Body)
		}
		return nil, err
	}
	if last == nil {
		return nil, errors.New("httpdriver: internal: request delivered without a response")
	}
	return last, nil
}

// replayableBody returns the body of the first send and a function that
// yields a fresh copy for each later one: the caller's body itself, then
// GetBody, when the caller set it; else copies of the body read once. The
// request itself is left as it is.
func replayableBody(req *http.Request) (first io.ReadCloser, again func() (io.ReadCloser, error), err error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req.Body, nil, nil
	}
	if req.GetBody != nil {
		return req.Body, req.GetBody, nil
	}
	b, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, nil, err
	}
	again = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	first, _ = again()
	return first, again, nil
}

// drainAndClose lets the connection be reused when a refused response's
// body is small.
func drainAndClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 64<<10)
	body.Close()
}
