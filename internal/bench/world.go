package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// RedirectURI is registered by every client in the benchmarks and never
// contacted: the headless user agents read the authorization response from
// the authorization server's Location header.
const RedirectURI = "http://127.0.0.1:1/callback"

// Timeout bounds every wait in a benchmark: a guard against a hang, never
// a measurement.
const Timeout = 30 * time.Second

// Warm is a testworld whose MCP server mcpauth has already authorized
// against once: Store holds the credential, the registration and the
// discovery, so a transport built over it starts on the hot path.
type Warm struct {
	World  *testworld.World
	Store  *driver.MemoryStore
	Config machine.Config
	// Token is the access token held (the bare baselines send it too).
	Token string
}

// Config is the mcpauth configuration for w's MCP server.
func Config(w *testworld.World) machine.Config {
	return machine.Config{Server: w.MCPURL(), RedirectURI: RedirectURI}
}

// NewWarm starts a world with opts and authorizes mcpauth against it once
// (cold start: discovery, registration, authorization, code exchange).
func NewWarm(opts testworld.Options) (*Warm, error) {
	w, err := testworld.Start(opts)
	if err != nil {
		return nil, err
	}
	wm := &Warm{World: w, Store: driver.NewMemoryStore(), Config: Config(w)}
	base := NewBase(4, nil)
	defer base.CloseIdleConnections()
	tr, err := httpdriver.NewTransport(context.Background(), wm.Config, httpdriver.Options{
		Base: base, Store: wm.Store, UserAgent: httpdriver.HeadlessUserAgent{},
	})
	if err != nil {
		w.Close()
		return nil, err
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := Post(ctx, &http.Client{Transport: tr}, w.MCPURL(), ListTools(1), http.StatusOK); err != nil {
		w.Close()
		return nil, fmt.Errorf("bench: cold start: %w", err)
	}
	wm.Token = tr.Session().Snapshot().Credential.AccessToken
	if wm.Token == "" {
		w.Close()
		return nil, errors.New("bench: cold start left no credential")
	}
	return wm, nil
}

// Transport builds an mcpauth transport over the warm store (a restarted
// program): it loads the credential and sends with it at once.
func (wm *Warm) Transport(base http.RoundTripper, clock driver.Clock, ua driver.UserAgent) (*httpdriver.Transport, error) {
	if ua == nil {
		ua = httpdriver.HeadlessUserAgent{}
	}
	return httpdriver.NewTransport(context.Background(), wm.Config, httpdriver.Options{
		Base: base, Store: wm.Store, UserAgent: ua, Clock: clock,
	})
}

// Close stops the world.
func (wm *Warm) Close() { wm.World.Close() }

// RSAddr is the host:port of the world's resource server, the key for
// NewBase's redirect.
func RSAddr(w *testworld.World) string {
	u, err := url.Parse(w.ResourceOrigin())
	if err != nil {
		panic(err)
	}
	return u.Host
}

// OffsetClock is the system clock moved forward by an offset the benchmark
// sets: how a storm "right after expiry" is made without waiting for it.
// Timers run on real time.
type OffsetClock struct{ offset atomic.Int64 }

// Now returns time.Now() plus the offset.
func (c *OffsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// AfterFunc runs f after d of real time.
func (c *OffsetClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// JumpPast moves the clock to just after t.
func (c *OffsetClock) JumpPast(t time.Time) {
	c.offset.Store(int64(time.Until(t) + time.Second))
}

// CountingAgent wraps a driver.UserAgent and counts the user prompts:
// each call is one authorization shown to the user.
type CountingAgent struct {
	Agent   driver.UserAgent
	Prompts atomic.Int64
}

// Authorize implements driver.UserAgent.
func (c *CountingAgent) Authorize(ctx context.Context, authURL, redirectURI string) (string, error) {
	c.Prompts.Add(1)
	return c.Agent.Authorize(ctx, authURL, redirectURI)
}
