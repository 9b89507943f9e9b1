package driver

import (
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
	"github.com/mcpauth/mcpauth/states"
)

// Sessions that share a store coordinate: before an attempt to get a
// credential (a refresh, a grant, an authorization) sends anything, the
// session takes the store's lock for the server's credential and reads the
// stored credential again. When another process stored a newer one
// meanwhile, the machine adopts it (machine.CredentialChanged) and no token
// request is made; otherwise the attempt goes ahead under the lock, which is
// released when the attempt ends. With rotating refresh tokens this is what
// keeps two processes from redeeming the same refresh token.

// leaseChange reports how a transition affects the lease.
func leaseChange(e effects.Effect) (begins, ends bool) {
	t, ok := e.(effects.Transition)
	if !ok {
		return false, false
	}
	from, to := states.State(t.From), states.State(t.To)
	return !from.Attempting() && to.Attempting(), from.Attempting() && !to.Attempting()
}

// held reports whether an effect must wait for the lease.
func held(e effects.Effect) bool {
	switch e.(type) {
	case effects.Fetch, effects.AwaitCallback:
		return true
	}
	return false
}

// releaseLease gives the lease back. Called with s.mu held.
func (s *Session) releaseLease() {
	if s.lease != nil {
		s.lease()
		s.lease = nil
	}
}

// lead takes the lease for a new attempt, adopts a credential stored by
// someone else if there is a newer one, and otherwise runs the attempt's
// first effects.
func (s *Session) lead(first []effects.Effect, authURL string, attempt uint64) {
	locker, ok := s.deps.Store.(Locker)
	if ok {
		release, err := locker.Lock(s.ctx, TokensKey(s.server))
		if err != nil {
			s.failAttempt(0, err)
			s.abandon(first, "cannot take the credential lock: "+err.Error())
			return
		}
		s.mu.Lock()
		if !s.snap.State.Attempting() || s.attempt != attempt {
			// The attempt ended (or another began) while we waited.
			s.mu.Unlock()
			release()
			return
		}
		s.lease = release
		s.mu.Unlock()
		// The machine adopts the stored credential if it is newer than its
		// own, and refuses it otherwise.
		if in, ok := s.stored(); ok {
			s.feed(in)
		}
		// Adopted (here, or by a watch that raced us): the attempt is over
		// and its first request, which may carry a refresh token another
		// process has redeemed, must not go out.
		if !s.current(attempt) {
			return
		}
	}
	for _, e := range first {
		s.dispatch(e, authURL)
	}
}

// stored returns the stored credential as the input that reports it, when
// the record is not the one the machine itself holds (whether it is newer
// is the machine's to judge).
func (s *Session) stored() (machine.Input, bool) {
	var t effects.Tokens
	v, found, err := getJSON(s.ctx, s.deps.Store, TokensKey(s.server), &t)
	if err != nil {
		s.deps.Tracer.StoreError(err)
		return nil, false
	}
	if !found || s.holds(v, t) {
		return nil, false
	}
	return machine.CredentialChanged{Tokens: t, Version: v}, true
}

// holds reports whether the machine holds exactly the stored record.
func (s *Session) holds(v uint64, t effects.Tokens) bool {
	snap := s.Snapshot()
	return snap.CredentialVersion == v && snap.Credential.AccessToken == t.AccessToken
}

// abandon ends an attempt whose first request cannot be sent.
func (s *Session) abandon(first []effects.Effect, reason string) {
	for _, e := range first {
		if f, ok := e.(effects.Fetch); ok {
			s.feed(machine.FetchFailed{Seq: f.Seq, Reason: reason})
			return
		}
		if _, ok := e.(effects.AwaitCallback); ok {
			s.feed(machine.CallbackFailed{Reason: reason})
			return
		}
	}
}

// current reports whether attempt is still the one running.
func (s *Session) current(attempt uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap.State.Attempting() && s.attempt == attempt
}
