package bench

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Run makes n calls of do (with indexes 0..n-1) from p goroutines and
// returns the wall time and the first error.
func Run(n, p int, do func(i int) error) (time.Duration, error) {
	if p < 1 {
		p = 1
	}
	if p > n {
		p = n
	}
	var (
		next  atomic.Int64
		first atomic.Pointer[error]
		wg    sync.WaitGroup
	)
	start := time.Now()
	for range p {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first.Load() != nil {
					return
				}
				if err := do(i); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if e := first.Load(); e != nil {
		return elapsed, *e
	}
	return elapsed, nil
}

// Side is what one side of a comparison cost: wall time, calls, and heap
// allocations (the whole process: client and the in-process server alike,
// so the difference between two sides is what the client adds).
type Side struct {
	Elapsed time.Duration
	CPU     time.Duration // process CPU time (see processCPU)
	N       int
	Mallocs uint64
	Bytes   uint64
}

// NsPerOp is the wall time per call.
func (s Side) NsPerOp() float64 { return float64(s.Elapsed.Nanoseconds()) / float64(s.N) }

// CPUPerOp is the process CPU time per call, in ns: unlike the wall time it
// does not grow when other processes take the cores.
func (s Side) CPUPerOp() float64 { return float64(s.CPU.Nanoseconds()) / float64(s.N) }

// AllocsPerOp is the heap allocations per call.
func (s Side) AllocsPerOp() float64 { return float64(s.Mallocs) / float64(s.N) }

// BytesPerOp is the heap bytes allocated per call.
func (s Side) BytesPerOp() float64 { return float64(s.Bytes) / float64(s.N) }

// Alternate measures two sides under the same load: n calls each, in
// rounds of n/rounds calls from p goroutines, alternating a-b, b-a, … so
// that drift (a busy neighbour, frequency changes) falls on both alike.
func Alternate(n, p, rounds int, a, b func(i int) error) (Side, Side, error) {
	if rounds < 2 {
		rounds = 2
	}
	per := n / rounds
	if per < 1 {
		per = 1
	}
	var sa, sb Side
	measure := func(s *Side, do func(int) error, count int) error {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cpu := processCPU()
		d, err := Run(count, p, func(i int) error { return do(s.N + i) })
		s.CPU += processCPU() - cpu
		runtime.ReadMemStats(&after)
		s.Elapsed += d
		s.N += count
		s.Mallocs += after.Mallocs - before.Mallocs
		s.Bytes += after.TotalAlloc - before.TotalAlloc
		return err
	}
	for r := 0; r < rounds; r++ {
		first, second := &sa, &sb
		fa, fb := a, b
		if r%2 == 1 {
			first, second, fa, fb = &sb, &sa, b, a
		}
		if err := measure(first, fa, per); err != nil {
			return sa, sb, err
		}
		if err := measure(second, fb, per); err != nil {
			return sa, sb, err
		}
	}
	return sa, sb, nil
}

// Percentile returns the q-th quantile (0 < q ≤ 1) of ds by the
// nearest-rank method; ds is sorted in place.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(ds) {
		i = len(ds) - 1
	}
	return ds[i]
}

// Storm releases n goroutines at once, each calling do once, and returns
// the latency of each call and the first error.
func Storm(n int, do func(i int) error) ([]time.Duration, error) {
	lat := make([]time.Duration, n)
	var (
		first atomic.Pointer[error]
		wg    sync.WaitGroup
		ready sync.WaitGroup
	)
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-gate
			t := time.Now()
			err := do(i)
			lat[i] = time.Since(t)
			if err != nil {
				first.CompareAndSwap(nil, &err)
			}
		}()
	}
	ready.Wait()
	close(gate)
	wg.Wait()
	if e := first.Load(); e != nil {
		return lat, *e
	}
	return lat, nil
}
