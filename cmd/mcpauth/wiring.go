package main

import (
	"context"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/machine"
)

// wiring is the HTTP plumbing of one command: one connection pool for
// everything, and with -v the HTTP logger and the live trace on stderr.
type wiring struct {
	pool  *http.Transport
	net   http.RoundTripper // pool, or a test's wrapper around it
	trace *console          // nil unless the live trace is on
	count httpCounter
	errs  storeErrors
}

func newWiring(inv *invocation) *wiring {
	w := &wiring{pool: http.DefaultTransport.(*http.Transport).Clone()}
	w.net = w.pool
	if inv.verbose {
		w.trace = inv.env.stderrConsole()
	}
	return w
}

// rt is the round tripper for one kind of request: logged and counted.
func (w *wiring) rt(kind string) http.RoundTripper {
	return &httpLogger{base: w.net, kind: kind, c: w.trace, count: &w.count}
}

// tracer fans out to the given tracers, the live trace when on, and the
// store error collector.
func (w *wiring) tracer(ts ...driver.Tracer) driver.Tracer {
	out := driver.Tracers{&w.errs}
	if w.trace != nil {
		out = append(out, &liveTracer{c: w.trace})
	}
	for _, t := range ts {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// transport builds the mcpauth transport: protected requests, auxiliary
// requests and (through opts.UserAgent) the user agent all go through w.
// opts gives the rest: store, tracer, signer, sources.
func (w *wiring) transport(ctx context.Context, cfg machine.Config, opts httpdriver.Options) (*httpdriver.Transport, error) {
	opts.Base = w.rt("mcp")
	opts.Requester = &httpdriver.Requester{Client: &http.Client{Transport: w.rt("oauth")}}
	return httpdriver.NewTransport(ctx, cfg, opts)
}

func (w *wiring) close() { w.pool.CloseIdleConnections() }

// connectMCP connects the official MCP Go SDK client through rt
// (initialize, then notifications/initialized).
//
// It speaks MCP 2025-11-25, the version whose authorization the machine
// implements by default. Newer versions make the SDK try server/discover
// first and fall back to initialize on any error, so a sign-in that failed
// (a denied consent) would be attempted a second time.
func connectMCP(ctx context.Context, rt http.RoundTripper, server string) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpauth", Version: version()}, nil)
	return client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:             server,
		HTTPClient:           &http.Client{Transport: rt},
		DisableStandaloneSSE: true,
		MaxRetries:           -1,
	}, &mcp.ClientSessionOptions{ProtocolVersion: machine.Version20251125})
}

// version is the module version this binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// storeErrors is a tracer that keeps the store errors the session met
// (the session reports them only to its tracer), so a command can fail
// rather than carry on with a credential it could not save.
type storeErrors struct {
	nopTracer
	mu   sync.Mutex
	errs []error
}

// StoreError implements driver.Tracer.
func (s *storeErrors) StoreError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
}

func (s *storeErrors) first() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) == 0 {
		return nil
	}
	return s.errs[0]
}

// untilDeadline is how long ctx has left, or fallback.
func untilDeadline(ctx context.Context, fallback time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return fallback
}
