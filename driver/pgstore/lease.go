package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/mcpauth/driver"
)

// A lease is a row in mcpauth_leases: (key, holder, acquired_at,
// expires_at). Lock inserts it, or takes over a row whose expires_at has
// passed, in one statement; the holder renews it every LeaseTTL/3 while it
// holds it; unlock deletes it (a trigger then notifies the waiters). A
// holder that dies stops renewing, and its lease lapses within LeaseTTL of
// its last renewal. Times are the database's clock_timestamp(): the
// replicas' clocks play no part.
//
// Within one process, Lock first takes a per-key mutex, so only one
// goroutine per process contends in the database, and the next one in
// line starts after the release has reached it.

// lease is one held lease.
type lease struct {
	s      *Store
	key    string
	holder string
	stop   context.CancelFunc // ends the heartbeat
	local  func()             // releases the in-process mutex
	once   sync.Once
}

// Lock implements driver.Locker with a lease. It waits, honouring ctx,
// while another holder's lease is live; it fails with *UnavailableError
// when the database cannot be reached, without waiting for it to come
// back. The returned func gives the lease back without blocking (the
// DELETE runs in the background; Close waits for it) and may be called
// more than once.
func (s *Store) Lock(ctx context.Context, key string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := driver.CheckStoreKey(key); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	local, err := s.local.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	holder := s.holder + randomHex(8)
	ttl := s.cfg.LeaseTTL.Milliseconds()
	for {
		wake := s.addWaiter(key)
		ok, left, err := s.tryLease(ctx, key, holder, ttl)
		if err != nil || ok {
			s.dropWaiter(key, wake)
		}
		if err != nil {
			local()
			return nil, err
		}
		if ok {
			break
		}
		// Held by a live holder: wait for its release notification, its
		// expiry, or LeasePoll, whichever is first.
		s.startListener()
		d := min(left+5*time.Millisecond, s.cfg.LeasePoll) + jitter(10*time.Millisecond)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			s.dropWaiter(key, wake)
			local()
			return nil, ctx.Err()
		case <-s.ctx.Done():
			t.Stop()
			s.dropWaiter(key, wake)
			local()
			return nil, ErrClosed
		case <-wake:
		case <-t.C:
		}
		t.Stop()
		s.dropWaiter(key, wake)
	}
	hctx, stop := context.WithCancel(s.ctx)
	l := &lease{s: s, key: key, holder: holder, stop: stop, local: local}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		// Close ran meanwhile and did not see this lease.
		l.unlock()
		return nil, ErrClosed
	}
	if s.held == nil {
		s.held = make(map[*lease]struct{})
	}
	s.held[l] = struct{}{}
	s.bg.Add(1)
	s.mu.Unlock()
	go l.heartbeat(hctx)
	return l.unlock, nil
}

// tryLease makes one attempt. left is how long the live lease in the way
// has to run.
func (s *Store) tryLease(ctx context.Context, key, holder string, ttl int64) (ok bool, left time.Duration, err error) {
	octx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	var got string
	err = s.pool.QueryRow(octx, s.sql.leaseTake, key, holder, ttl).Scan(&got)
	switch {
	case err == nil:
		return true, 0, nil
	case !errors.Is(err, pgx.ErrNoRows):
		if ctx.Err() != nil {
			// The insert may have committed before the cancellation
			// reached it: give back whatever we might hold.
			s.release(key, holder)
			return false, 0, ctx.Err()
		}
		return false, 0, classify(ctx, "lock", key, err)
	}
	var ms int64
	err = s.pool.QueryRow(octx, s.sql.leaseLeft, key).Scan(&ms)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, 0, nil // released meanwhile: try again at once
	case err != nil:
		if ctx.Err() != nil {
			return false, 0, ctx.Err()
		}
		return false, 0, classify(ctx, "lock", key, err)
	}
	return false, time.Duration(ms) * time.Millisecond, nil
}

// heartbeat renews the lease every LeaseTTL/3 until stopped. A renewal
// that fails is tried again at the next beat; a lease found taken over
// (it lapsed while the database was out of reach) is not renewed again.
func (l *lease) heartbeat(ctx context.Context) {
	defer l.s.bg.Done()
	s := l.s
	every := s.cfg.LeaseTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		octx, cancel := context.WithTimeout(ctx, min(every, s.cfg.OpTimeout))
		tag, err := s.pool.Exec(octx, s.sql.leaseExtend, l.key, l.holder, s.cfg.LeaseTTL.Milliseconds())
		cancel()
		if err == nil && tag.RowsAffected() == 0 {
			return // lost: someone else holds it now
		}
	}
}

// unlock stops the heartbeat and deletes the row in the background; the
// next goroutine of this process in line for the key starts after that.
func (l *lease) unlock() {
	l.once.Do(func() {
		l.stop()
		s := l.s
		s.mu.Lock()
		delete(s.held, l)
		async := !s.relDone
		if async {
			s.rel.Add(1)
		}
		s.mu.Unlock()
		if !async {
			// The store is closed: the row lapses on its own.
			l.local()
			return
		}
		go func() {
			defer s.rel.Done()
			s.release(l.key, l.holder)
			l.local()
		}()
	})
}

// release deletes the lease row if holder still has it. A failure leaves
// the row to lapse on its own.
func (s *Store) release(key, holder string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.OpTimeout)
	defer cancel()
	_, _ = s.pool.Exec(ctx, s.sql.leaseRelease, key, holder)
}

// addWaiter registers a channel that a release notification for key (or
// a listener reconnect) signals.
func (s *Store) addWaiter(key string) chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.waiters == nil {
		s.waiters = make(map[string]map[chan struct{}]struct{})
	}
	if s.waiters[key] == nil {
		s.waiters[key] = make(map[chan struct{}]struct{})
	}
	s.waiters[key][ch] = struct{}{}
	s.mu.Unlock()
	return ch
}

func (s *Store) dropWaiter(key string, ch chan struct{}) {
	s.mu.Lock()
	delete(s.waiters[key], ch)
	if len(s.waiters[key]) == 0 {
		delete(s.waiters, key)
	}
	s.mu.Unlock()
}

// holderPrefix names this process in lease rows: "<host>:<pid>:".
func holderPrefix() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return fmt.Sprintf("%s:%d:", host, os.Getpid())
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// jitter is a random duration in [0, d), so that waiters do not look in
// lockstep.
func jitter(d time.Duration) time.Duration {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(d)))
	if err != nil {
		return 0
	}
	return time.Duration(n.Int64())
}
