package pgstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mcpauth/mcpauth/driver"
)

// Listener timing: reconnect backoff (doubling, with jitter) and how long
// the listener waits for a notification before checking that its
// connection still answers.
const (
	minBackoff   = 100 * time.Millisecond
	maxBackoff   = 2 * time.Second
	listenerIdle = 30 * time.Second
	watchRetry   = time.Second
)

// watch is one Watch call.
type watch struct {
	key    string
	signal chan struct{} // "look again"; holds at most one
}

func (w *watch) poke() {
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// Watch implements driver.Watcher. The channel first receives the record
// as it stands once the watch is set up (if there is one), so a change
// between the caller's last read and Watch is not missed, then the record
// after each change written by anyone (this process or another, through
// this package or plain SQL: a trigger notifies). It holds at most one
// record: a reader that falls behind gets the newest, skipping versions in
// between. A deleted record is not sent. After the listener's connection
// is lost and comes back the record is read again, so changes made
// meanwhile are not missed either. The channel is closed when ctx ends or
// the store is closed.
func (s *Store) Watch(ctx context.Context, key string) (<-chan driver.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := driver.CheckStoreKey(key); err != nil {
		return nil, err
	}
	w := &watch{key: key, signal: make(chan struct{}, 1)}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.watches == nil {
		s.watches = make(map[string]map[*watch]struct{})
	}
	if s.watches[key] == nil {
		s.watches[key] = make(map[*watch]struct{})
	}
	s.watches[key][w] = struct{}{}
	s.bg.Add(1)
	s.mu.Unlock()
	s.startListener()
	out := make(chan driver.Record, 1)
	w.poke()
	go s.runWatch(ctx, w, out)
	return out, nil
}

// runWatch reads the record each time it is poked and sends it when it
// differs from the last one sent.
func (s *Store) runWatch(ctx context.Context, w *watch, out chan driver.Record) {
	defer s.bg.Done()
	defer close(out)
	defer s.dropWatch(w)
	var (
		last driver.Record
		have bool
	)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.ctx.Done():
			return
		case <-w.signal:
		case <-retry.C:
		}
		octx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
		r, found, err := s.get(octx, w.key)
		cancel()
		switch {
		case err != nil:
			// Unreachable: look again later (a listener reconnect pokes
			// too).
			retry.Reset(watchRetry)
			continue
		case !found:
			have = false
			continue
		case have && r.Version == last.Version && bytes.Equal(r.Value, last.Value):
			continue
		}
		last, have = r, true
		select { // the newest replaces one the reader has not taken
		case <-out:
		default:
		}
		out <- driver.Record{Key: r.Key, Value: bytes.Clone(r.Value), Version: r.Version}
	}
}

func (s *Store) dropWatch(w *watch) {
	s.mu.Lock()
	delete(s.watches[w.key], w)
	if len(s.watches[w.key]) == 0 {
		delete(s.watches, w.key)
	}
	s.mu.Unlock()
}

// startListener starts the listener goroutine once.
func (s *Store) startListener() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listening || s.closing {
		return
	}
	s.listening = true
	s.bg.Add(1)
	go s.listen()
}

// listen holds a dedicated connection that LISTENs on the store's
// channel, reconnecting with backoff when it is lost. After each
// (re)connection every watch and lease waiter looks again, since
// notifications sent while nobody listened are lost.
func (s *Store) listen() {
	defer s.bg.Done()
	backoff := minBackoff
	for s.ctx.Err() == nil {
		conn, err := s.connectListener()
		if err != nil {
			t := time.NewTimer(backoff + jitter(backoff/2))
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		s.pokeAll()
		s.receive(conn)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(ctx)
		cancel()
	}
}

func (s *Store) connectListener() (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.OpTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		_ = conn.Close(ctx)
		return nil, err
	}
	return conn, nil
}

// receive dispatches notifications until the connection fails or the
// store closes. An idle connection is pinged every listenerIdle, so a
// silently dead one is noticed.
func (s *Store) receive(conn *pgx.Conn) {
	for {
		ctx, cancel := context.WithTimeout(s.ctx, listenerIdle)
		n, err := conn.WaitForNotification(ctx)
		cancel()
		if err == nil {
			s.dispatch(n.Payload)
			continue
		}
		if s.ctx.Err() != nil || conn.IsClosed() {
			return
		}
		if pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
			pctx, cancel := context.WithTimeout(s.ctx, s.cfg.OpTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err == nil {
				continue
			}
		}
		return
	}
}

// dispatch handles one payload: "r<version>:<key>" (a record changed) or
// "l:<key>" (a lease was released); an empty key means any key.
func (s *Store) dispatch(payload string) {
	kind, rest, ok := strings.Cut(payload, ":")
	if !ok || kind == "" {
		return
	}
	key := rest
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case kind == "l" && key == "":
		for _, chs := range s.waiters {
			for ch := range chs {
				signal(ch)
			}
		}
	case kind == "l":
		for ch := range s.waiters[key] {
			signal(ch)
		}
	case kind[0] == 'r' && key == "":
		for _, ws := range s.watches {
			for w := range ws {
				w.poke()
			}
		}
	case kind[0] == 'r':
		for w := range s.watches[key] {
			w.poke()
		}
	}
}

// pokeAll makes every watch and lease waiter look again.
func (s *Store) pokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, chs := range s.waiters {
		for ch := range chs {
			signal(ch)
		}
	}
	for _, ws := range s.watches {
		for w := range ws {
			w.poke()
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
