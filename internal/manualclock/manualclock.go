package manualclock

import (
	"sort"
	"sync"
	"time"
)

// Clock is a manual clock. The zero value starts at the zero time; New
// starts at a given one.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

type timer struct {
	at             time.Time
	f              func()
	stopped, fired bool
}

// New returns a clock reading at.
func New(at time.Time) *Clock { return &Clock{now: at} }

// Now implements driver.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements driver.Clock: f runs when Advance passes now+d.
func (c *Clock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := &timer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, tm)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !tm.stopped && !tm.fired
		tm.stopped = true
		return was
	}
}

// Advance moves time on by d and runs the timers that came due, in order
// of their due times; it returns how many ran.
func (c *Clock) Advance(d time.Duration) (fired int) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*timer
	for _, tm := range c.timers {
		if !tm.stopped && !tm.fired && !tm.at.After(c.now) {
			tm.fired = true
			due = append(due, tm)
		}
	}
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, tm := range due {
		tm.f()
	}
	return len(due)
}

// Armed returns the due times of the timers neither stopped nor fired.
func (c *Clock) Armed() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, tm := range c.timers {
		if !tm.stopped && !tm.fired {
			out = append(out, tm.at)
		}
	}
	return out
}

// Funcs returns every timer function ever registered, stopped or not.
func (c *Clock) Funcs() []func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []func()
	for _, tm := range c.timers {
		out = append(out, tm.f)
	}
	return out
}
