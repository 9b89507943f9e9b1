package testworld

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// World is a running resource server plus its current authorization server
// (and any it migrated away from). All methods are safe for concurrent use.
type World struct {
	opts   Options
	stats  *stats
	faults faults
	rs     *resourceServer
	rsL    *listener

	mu        sync.RWMutex
	as        *authServer   // the AS the PRM currently names; the RS trusts only its tokens
	retired   []*authServer // ASes migrated away from: still serving, no longer trusted
	listeners []*listener
	closed    bool

	ext worldExt // the extensions' state (idp.go, dpop.go, as_grants.go)
}

// Start listens on 127.0.0.1:0 — once when opts.SameOrigin (or PRMNone),
// otherwise once for the RS and once for the AS — and serves until Close.
func Start(opts Options) (*World, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	w := &World{opts: o, stats: newStats()}

	rsMux := http.NewServeMux()
	name := "rs"
	if o.SameOrigin {
		name = "rs+as"
	}
	// Listen before registering routes: the handlers need the origin, and
	// ServeMux tolerates registration while serving (nothing can have
	// connected yet anyway, as the port is not known outside).
	rsL, err := listen(name, rsMux, w.stats, o.Logf)
	if err != nil {
		return nil, fmt.Errorf("testworld: listen: %w", err)
	}
	w.rsL = rsL
	w.listeners = append(w.listeners, rsL)
	w.rs = newResourceServer(w, rsL.origin)
	w.rs.routes(rsMux)

	asMux, asOrigin := rsMux, rsL.origin
	if !o.SameOrigin {
		asMux = http.NewServeMux()
		asL, err := listen("as", asMux, w.stats, o.Logf)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("testworld: listen: %w", err)
		}
		w.listeners = append(w.listeners, asL)
		asOrigin = asL.origin
	}
	w.as = newAuthServer(w, o, asOrigin)
	w.as.routes(asMux)
	if err := w.startExtensions(); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// MCPURL is the protected MCP endpoint, <rs>/mcp: the RFC 8707 resource and
// the PRM "resource" value.
func (w *World) MCPURL() string { return w.rs.mcpURL }

// ResourceOrigin is the RS origin, http://127.0.0.1:port.
func (w *World) ResourceOrigin() string { return w.rs.origin }

// Issuer is the current AS issuer.
func (w *World) Issuer() string { return w.currentAS().issuer }

// AuthorizationServerOrigin is the current AS origin (equal to
// ResourceOrigin when same-origin).
func (w *World) AuthorizationServerOrigin() string { return w.currentAS().origin }

// PRMURL is the one URL the PRM document is served at, or "" for PRMNone.
func (w *World) PRMURL() string { return w.rs.prmURL }

// MetadataURLs lists the URLs the current AS metadata is served at (none for
// MetadataNone).
func (w *World) MetadataURLs() []string {
	as := w.currentAS()
	var out []string
	for _, p := range as.metadataPaths() {
		out = append(out, as.origin+p)
	}
	return out
}

// Close stops every listener. It is idempotent.
func (w *World) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	ls := w.listeners
	w.mu.Unlock()
	for _, l := range ls {
		l.close()
	}
}

// Stats returns a snapshot copy of the counters.
func (w *World) Stats() Stats { return w.stats.snapshot() }

// ExpireAccessTokens makes every access token issued so far (by any AS of
// this world) answer 401 invalid_token, as if expired or revoked. Refresh
// tokens keep working.
func (w *World) ExpireAccessTokens() {
	for _, as := range w.allAS() {
		as.store.expireAccessTokens()
	}
}

// SetFault arms f, replacing any fault armed before. The zero Fault disarms.
func (w *World) SetFault(f Fault) { w.faults.set(f) }

// MigrateTo starts a second AS (on its own listener) configured by the AS
// fields of opts (Metadata, IssuerPath, DCR, CIMD, PreRegistered, AuthMethods,
// ASScopesSupported, AccessTTL, RefreshTTL, RotateRefresh, NoRefreshTokens,
// IssParameter, LoopbackAnyPort). From then on PRM names only the new AS and
// the RS rejects tokens from the old one with 401 (SEP-2352). The old AS
// keeps serving, so a client that ignores the migration still gets tokens —
// which the RS refuses.
func (w *World) MigrateTo(opts Options) (newIssuer string, err error) {
	if w.opts.PRM == PRMNone {
		return "", errors.New("testworld: MigrateTo needs PRM: with PRMNone the AS is the RS origin")
	}
	asOpts := w.opts
	asOpts.Metadata = opts.Metadata
	asOpts.IssuerPath = opts.IssuerPath
	asOpts.DCR = opts.DCR
	asOpts.CIMD = opts.CIMD
	asOpts.PreRegistered = opts.PreRegistered
	asOpts.PreRegisteredRedirectURIs = opts.PreRegisteredRedirectURIs
	asOpts.AuthMethods = opts.AuthMethods
	asOpts.ASScopesSupported = opts.ASScopesSupported
	asOpts.AccessTTL = opts.AccessTTL
	asOpts.RefreshTTL = opts.RefreshTTL
	asOpts.RotateRefresh = opts.RotateRefresh
	asOpts.NoRefreshTokens = opts.NoRefreshTokens
	asOpts.IssParameter = opts.IssParameter
	asOpts.LoopbackAnyPort = opts.LoopbackAnyPort
	asOpts.SameOrigin = false
	o, err := asOpts.normalize()
	if err != nil {
		return "", err
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return "", errors.New("testworld: MigrateTo on a closed world")
	}
	mux := http.NewServeMux()
	l, err := listen(fmt.Sprintf("as%d", len(w.retired)+2), mux, w.stats, w.opts.Logf)
	if err != nil {
		return "", fmt.Errorf("testworld: listen: %w", err)
	}
	as := newAuthServer(w, o, l.origin)
	as.routes(mux)
	w.listeners = append(w.listeners, l)
	w.retired = append(w.retired, w.as)
	w.as = as
	return as.issuer, nil
}

// Authorize is a headless user agent: it GETs authURL without following
// redirects and returns the Location the AS answered with (the AS approves
// automatically). A non-redirect answer is an error carrying the status and
// the AS's (secret-free) error text.
func (w *World) Authorize(authURL string) (location string, err error) {
	c := &http.Client{
		Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := c.Get(authURL)
	if err != nil {
		return "", fmt.Errorf("testworld: authorize: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch resp.StatusCode {
	case http.StatusFound, http.StatusSeeOther:
		loc := resp.Header.Get("Location")
		if loc == "" {
			return "", fmt.Errorf("testworld: authorize: %d without Location", resp.StatusCode)
		}
		return loc, nil
	}
	return "", fmt.Errorf("testworld: authorize: status %d: %s", resp.StatusCode, body)
}

func (w *World) currentAS() *authServer {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.as
}

func (w *World) allAS() []*authServer {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return append([]*authServer{w.as}, w.retired...)
}

func (w *World) now() time.Time { return w.opts.Now() }
