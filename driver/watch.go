package driver

import (
	"context"
	"encoding/json"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// Watcher is implemented by stores that can tell when a record changes
// under another writer (PostgreSQL LISTEN/NOTIFY, for example). A session
// whose store is a Watcher adopts credentials other processes store as soon
// as they are written, instead of finding out on its next attempt.
type Watcher interface {
	// Watch sends the record of key each time it changes, until ctx ends.
	// It may skip intermediate versions; the channel is closed when ctx
	// ends.
	Watch(ctx context.Context, key string) (<-chan Record, error)
}

// watch feeds the credentials other writers store into the machine.
func (s *Session) watch() {
	w, ok := s.deps.Store.(Watcher)
	if !ok {
		return
	}
	ch, err := w.Watch(s.ctx, TokensKey(s.server))
	if err != nil {
		s.deps.Tracer.StoreError(err)
		return
	}
	go func() {
		for r := range ch {
			var t effects.Tokens
			if err := json.Unmarshal(r.Value, &t); err != nil {
				s.deps.Tracer.StoreError(&RecordError{Key: r.Key, Err: err})
				continue
			}
			if s.holds(r.Version, t) {
				continue // our own write, come back
			}
			// Whether it is newer is the machine's to judge.
			s.feed(machine.CredentialChanged{Tokens: t, Version: r.Version})
		}
	}()
}
