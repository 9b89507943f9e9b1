package driver

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// Session runs one authorization context: it owns the machine's snapshot
// and carries out its effects. It is safe for concurrent use; requests
// from many goroutines are multiplexed through it.
type Session struct {
	deps   Deps
	server string // the MCP server (immutable; readable without the lock)

	mu      sync.Mutex // guards snap, waiters, authURL, stopWake; held across Step and store writes
	snap    machine.Snapshot
	waiters map[effects.RequestID]chan effects.Effect
	authURL string
	wake    func() bool
	lease   func() // releases the credential lock held by the running attempt
	attempt uint64 // counts attempts, so a late lease cannot serve a newer one
	cause   error  // a driver-side reason the running attempt failed (a source, a signer, the lock)

	ids    atomic.Uint64
	ctx    context.Context // lifetime of background work (fetches, the callback wait, timers)
	cancel context.CancelFunc
}

// Answer is what the protected resource said to one send of a request.
type Answer struct {
	Status     int
	Challenges []string // WWW-Authenticate values
	Nonce      string   // the DPoP-Nonce header, if any (RFC 9449 §9)
}

// SendFunc sends the caller's request once, with header added (the
// credential, or nothing), and reports the answer. The caller keeps the
// response itself: Do only returns whether it is the final one.
type SendFunc func(ctx context.Context, header map[string][]string) (Answer, error)

// NewSession checks cfg and deps and returns a session that has not
// started: call Start before Do.
func NewSession(cfg machine.Config, deps Deps) (*Session, error) {
	if deps.Requester == nil || deps.Store == nil {
		return nil, errors.New("driver: a Requester and a Store are required")
	}
	if deps.Clock == nil {
		deps.Clock = SystemClock{}
	}
	if deps.Tracer == nil {
		deps.Tracer = Tracers(nil) // traces nothing, costs nothing
	}
	if deps.Rand == nil {
		deps.Rand = rand.Reader
	}
	snap, first, err := machine.New(cfg)
	if err != nil {
		return nil, err
	}
	if deps.Signer == nil {
		deps.Signer = NewStoredKeySigner(deps.Store, snap.Config.Server)
	}
	s := &Session{deps: deps, server: snap.Config.Server, snap: snap, waiters: map[effects.RequestID]chan effects.Effect{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range first {
		s.deps.Tracer.Effect(e)
	}
	return s, nil
}

// Start loads what the store holds for the server. Requests made before
// Start returns wait for it.
func (s *Session) Start(ctx context.Context) error {
	in, err := LoadStored(ctx, s.deps.Store, s.server)
	if err != nil {
		// An unreadable store is reported and the session starts empty:
		// nothing is overwritten without a compare-and-swap, so a record
		// that cannot be read is not lost by going on.
		s.deps.Tracer.StoreError(err)
	}
	s.feed(in)
	s.watch()
	return err
}

// Close stops background work; requests in flight fail with their
// contexts or on their next step.
func (s *Session) Close() {
	s.cancel()
	s.mu.Lock()
	if s.wake != nil {
		s.wake()
	}
	s.releaseLease()
	s.mu.Unlock()
}

// Snapshot returns the machine's current snapshot (a value; safe to keep).
func (s *Session) Snapshot() machine.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// Do performs one protected request to url through the machine: send is
// called once per (re)send with the headers to add. Do returns nil when the
// last answer is the caller's to use, or the error that ended the request.
func (s *Session) Do(ctx context.Context, method, url string, send SendFunc) error {
	id := effects.RequestID(s.ids.Add(1))
	ch := waiterPool.Get().(chan effects.Effect)
	s.mu.Lock()
	s.waiters[id] = ch
	s.mu.Unlock()
	reusable := true
	defer func() {
		s.mu.Lock()
		delete(s.waiters, id)
		s.mu.Unlock()
		// Once the machine has answered (or forgotten) the request, nothing
		// more can arrive on ch: it can serve another request. After a
		// cancellation an effect may still be on its way, so it cannot.
		if reusable {
			waiterPool.Put(ch)
		}
	}()
	s.feed(machine.RequestStarted{Request: id, Method: method, URL: url})
	for {
		var e effects.Effect
		select {
		case e = <-ch:
		case <-ctx.Done():
			reusable = false
			s.feed(machine.ProtectedFailed{Request: id})
			return ctx.Err()
		}
		switch e := e.(type) {
		case effects.Deliver:
			return nil
		case effects.Fail:
			return e.Err
		case effects.SendProtected:
			header, err := s.withProof(ctx, e, method, url)
			if err != nil {
				s.feed(machine.ProtectedFailed{Request: id})
				return err
			}
			ans, err := send(ctx, header)
			if err != nil {
				s.feed(machine.ProtectedFailed{Request: id})
				return err
			}
			s.feed(machine.ProtectedResponse{Request: id, Credential: e.Credential, Status: ans.Status, Challenges: ans.Challenges, Nonce: ans.Nonce})
		}
	}
}

// waiterPool recycles the channels requests wait on: one request in
// flight needs one, and making a buffered channel costs two allocations.
var waiterPool = sync.Pool{New: func() any { return make(chan effects.Effect, 1) }}

// feed steps the machine with in and carries out the effects, feeding any
// follow-up inputs (a lost compare-and-swap) in turn.
func (s *Session) feed(in machine.Input) {
	queue := s.step(in) // usually nothing follows
	for len(queue) > 0 {
		next := s.step(queue[0])
		queue = append(queue[1:], next...)
	}
}

// step runs one Step under the lock, with the store effects, so that no
// request can carry a credential before it is saved; then dispatches the
// other effects outside the lock.
func (s *Session) step(in machine.Input) (followUps []machine.Input) {
	s.mu.Lock()
	now := s.deps.Clock.Now()
	s.deps.Tracer.Input(in, now)
	next, out, err := machine.Step(s.snap, in, machine.Env{Now: now, Rand: s.deps.Rand})
	if err != nil {
		s.deps.Tracer.Refused(in, err)
		s.mu.Unlock()
		return nil
	}
	s.snap = next
	var later, first []effects.Effect
	var routesBuf [2]routed // most steps route one or two effects: kept off the heap
	routes := routesBuf[:0]
	var withheld []machine.Input
	leading, lostSave, ended := false, false, false
	for _, e := range out {
		s.deps.Tracer.Effect(e)
		begins, ends := leaseChange(e)
		if ends {
			s.releaseLease()
			leading, ended = false, true
		}
		if begins {
			leading = true
			s.attempt++
			s.cause = nil
		}
		if leading && held(e) {
			first = append(first, e)
			continue
		}
		switch ev := e.(type) {
		case effects.SaveTokens, effects.ForgetTokens, effects.SaveClient, effects.ForgetClient, effects.SaveDiscovery:
			f, err := saveEffect(s.ctx, s.deps.Store, e)
			if err != nil {
				s.deps.Tracer.StoreError(err)
			}
			if f != nil {
				// Another writer stored a newer credential: the machine
				// adopts it, and no request carries the unsaved one.
				followUps = append(followUps, f)
				lostSave = true
			}
		case effects.OpenURL:
			s.authURL = ev.URL
		case effects.WakeAt:
			s.schedule(ev, now)
		case effects.SendProtected:
			if lostSave {
				withheld = append(withheld, machine.SendWithheld{Request: ev.Request})
				continue
			}
			routes = append(routes, s.route(e))
		case effects.Deliver, effects.Fail:
			routes = append(routes, s.route(e))
		default:
			later = append(later, e)
		}
	}
	if ended {
		s.cause = nil // it explained the Fails routed above, and nothing later
	}
	authURL, attempt := s.authURL, s.attempt
	s.mu.Unlock()
	for _, r := range routes {
		if r.to != nil {
			r.to <- r.Effect
		}
	}
	for _, e := range later {
		s.dispatch(e, authURL)
	}
	if len(first) > 0 {
		go s.lead(first, authURL, attempt)
	}
	if len(withheld) == 0 {
		return followUps
	}
	return append(followUps, withheld...)
}

// routed is a request effect paired with its waiter's channel.
type routed struct {
	effects.Effect
	to chan effects.Effect
}

// route pairs a request effect with its waiter (nil when the caller has
// gone). Called with s.mu held.
func (s *Session) route(e effects.Effect) routed {
	var id effects.RequestID
	switch e := e.(type) {
	case effects.SendProtected:
		id = e.Request
	case effects.Deliver:
		id = e.Request
	case effects.Fail:
		id = e.Request
		if s.cause != nil {
			e.Err = &CausedError{Err: e.Err, Cause: s.cause}
		}
		return routed{Effect: e, to: s.waiters[id]}
	}
	return routed{Effect: e, to: s.waiters[id]}
}

// dispatch carries out one effect that needs no lock.
func (s *Session) dispatch(e effects.Effect, authURL string) {
	switch e := e.(type) {
	case effects.Fetch:
		go s.fetch(e)
	case effects.AwaitCallback:
		go s.awaitCallback(authURL, e.RedirectURI)
	case effects.LoadClient:
		go func() {
			in, err := LoadClient(s.ctx, s.deps.Store, e.Issuer)
			if err != nil {
				s.deps.Tracer.StoreError(err)
			}
			s.feed(in)
		}()
	case effects.LoadStored:
		go func() {
			in, err := LoadStored(s.ctx, s.deps.Store, e.Server)
			if err != nil {
				s.deps.Tracer.StoreError(err)
			}
			s.feed(in)
		}()
	}
}

// withProof signs the DPoP proof of a protected send, in the caller's
// goroutine: requests never wait for each other's signatures.
func (s *Session) withProof(ctx context.Context, e effects.SendProtected, method, target string) (map[string][]string, error) {
	if e.Proof == nil {
		return e.Header, nil
	}
	j, err := BindToRequest(*e.Proof, method, target)
	if err != nil {
		return nil, err
	}
	proof, err := s.deps.Signer.Sign(ctx, j)
	if err != nil {
		return nil, err
	}
	h := make(map[string][]string, len(e.Header)+1)
	for k, v := range e.Header {
		h[k] = v
	}
	h["Dpop"] = []string{proof}
	return h, nil
}

func (s *Session) fetch(f effects.Fetch) {
	f, err := s.complete(s.ctx, f)
	if err != nil {
		s.failAttempt(f.Seq, err)
		s.feed(machine.FetchFailed{Seq: f.Seq, Reason: err.Error()})
		return
	}
	r, err := s.deps.Requester.Fetch(s.ctx, f)
	if err != nil {
		s.failAttempt(f.Seq, err) // the requester's typed error reaches the caller too
		s.feed(machine.FetchFailed{Seq: f.Seq, Reason: err.Error()})
		return
	}
	r.Seq = f.Seq
	s.feed(r)
}

func (s *Session) awaitCallback(authURL, redirectURI string) {
	if s.deps.UserAgent == nil {
		s.feed(machine.CallbackFailed{Reason: "no user agent is configured"})
		return
	}
	q, err := s.deps.UserAgent.Authorize(s.ctx, authURL, redirectURI)
	if err != nil {
		s.feed(machine.CallbackFailed{Reason: err.Error()})
		return
	}
	s.feed(machine.CallbackReceived{Query: q})
}

// schedule arms the refresh-ahead timer, replacing the previous one.
// Called with s.mu held.
func (s *Session) schedule(w effects.WakeAt, now time.Time) {
	if s.wake != nil {
		s.wake()
	}
	d := w.At.Sub(now)
	if d < 0 {
		d = 0
	}
	s.wake = s.deps.Clock.AfterFunc(d, func() {
		if s.ctx.Err() == nil {
			s.feed(machine.Tick{})
		}
	})
}
