package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
)

func testLocker(t *testing.T, open func(t *testing.T) driver.Store) {
	if _, ok := open(t).(driver.Locker); !ok {
		t.Skip("store does not implement driver.Locker")
	}
	locker := func(t *testing.T) driver.Locker { return open(t).(driver.Locker) }
	t.Run("MutualExclusion", func(t *testing.T) { testLockExcludes(t, locker(t)) })
	t.Run("ContextEndsWait", func(t *testing.T) { testLockContext(t, locker(t)) })
	t.Run("KeysIndependent", func(t *testing.T) { testLockKeys(t, locker(t)) })
	t.Run("UnlockTwice", func(t *testing.T) { testUnlockTwice(t, locker(t)) })
}

// lockFor takes the lock named key, failing the test if that takes longer
// than a second.
func lockFor(t *testing.T, l driver.Locker, key string) func() {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	unlock, err := l.Lock(ctx, key)
	if err != nil {
		t.Fatalf("Lock(%q): %v", key, err)
	}
	return unlock
}

// wantHeld fails the test unless key stays locked for a short while.
func wantHeld(t *testing.T, l driver.Locker, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	unlock, err := l.Lock(ctx, key)
	if err == nil {
		unlock()
		t.Fatalf("Lock(%q) succeeded while the lock is held", key)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock(%q) while held: %v, want context.DeadlineExceeded", key, err)
	}
}

func testLockExcludes(t *testing.T, l driver.Locker) {
	const goroutines, rounds = 8, 20
	var (
		inside atomic.Int32
		count  int // guarded by the lock under test
		wg     sync.WaitGroup
	)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				unlock, err := l.Lock(ctx, "refresh")
				cancel()
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("%d holders of one lock at once", n)
				}
				c := count
				time.Sleep(50 * time.Microsecond)
				count = c + 1
				inside.Add(-1)
				unlock()
			}
		}()
	}
	wg.Wait()
	if count != goroutines*rounds {
		t.Errorf("count = %d, want %d", count, goroutines*rounds)
	}
}

func testLockContext(t *testing.T, l driver.Locker) {
	unlock := lockFor(t, l, "k")
	start := time.Now()
	wantHeld(t, l, "k")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Lock returned %v after its deadline", d)
	}

	// An already-canceled context fails even for a free lock.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if u, err := l.Lock(ctx, "free"); !errors.Is(err, context.Canceled) {
		if u != nil {
			u()
		}
		t.Errorf("Lock(canceled) = %v, want context.Canceled", err)
	}

	// Cancellation while waiting.
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		u, err := l.Lock(ctx, "k")
		if u != nil {
			u()
		}
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Lock canceled while waiting = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock did not return after its context was canceled")
	}

	// The waiters that gave up left the lock usable.
	unlock()
	lockFor(t, l, "k")()
}

func testLockKeys(t *testing.T, l driver.Locker) {
	ua := lockFor(t, l, "a")
	ub := lockFor(t, l, "b")
	wantHeld(t, l, "a")
	ub()
	wantHeld(t, l, "a")
	ua()
	lockFor(t, l, "a")()
}

func testUnlockTwice(t *testing.T, l driver.Locker) {
	u1 := lockFor(t, l, "k")
	u1()
	u2 := lockFor(t, l, "k")
	u1() // must not release u2's hold
	wantHeld(t, l, "k")
	u2()
	u2()
	lockFor(t, l, "k")()
}
