package storetest

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/mcpauth/mcpauth/driver"
)

// Workers and IncrementsPerWorker size ConcurrentCAS: Workers goroutines
// each add IncrementsPerWorker to one counter with Get + Put(ifVersion),
// retrying on *ConflictError.
const (
	Workers             = 16
	IncrementsPerWorker = 10
)

func testConcurrentCAS(t *testing.T, open func(t *testing.T) driver.Store) {
	s := open(t)
	const key = "counter"
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		conflicts int
		start     = make(chan struct{})
	)
	for w := 0; w < Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			lost, err := Increment(context.Background(), s, key, IncrementsPerWorker)
			mu.Lock()
			conflicts += lost
			mu.Unlock()
			if err != nil {
				t.Errorf("worker %d: %v", w, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	const want = Workers * IncrementsPerWorker
	wantRecord(t, s, key, []byte(strconv.Itoa(want)), want)
	t.Logf("%d increments, %d conflicts retried", want, conflicts)
}

// Increment adds n to the decimal counter at key, one compare-and-swap at a
// time, retrying each on conflict. It returns the conflicts it retried.
func Increment(ctx context.Context, s driver.Store, key string, n int) (conflicts int, err error) {
	for done := 0; done < n; {
		var cur uint64
		count := 0
		r, err := s.Get(ctx, key)
		switch {
		case errors.Is(err, driver.ErrNotFound):
		case err != nil:
			return conflicts, err
		default:
			cur = r.Version
			if count, err = strconv.Atoi(string(r.Value)); err != nil {
				return conflicts, err
			}
		}
		runtime.Gosched() // let another worker in between read and write
		v, err := s.Put(ctx, key, []byte(strconv.Itoa(count+1)), cur)
		var ce *driver.ConflictError
		switch {
		case errors.As(err, &ce):
			conflicts++
			continue
		case err != nil:
			return conflicts, err
		case v != cur+1:
			return conflicts, errors.New("put returned a version other than ifVersion+1")
		}
		done++
	}
	return conflicts, nil
}
