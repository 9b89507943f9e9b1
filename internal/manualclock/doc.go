// Package manualclock is a driver.Clock for tests: its time moves only when
// the test says so, and its timers fire from Advance, in the test's
// goroutine, never under a lock a session holds.
package manualclock
