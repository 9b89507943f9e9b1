package machine

import (
	"io"
	"time"
)

// Env is everything Step may learn from outside its inputs: the time and a
// source of entropy. Production drivers pass the wall clock's reading and crypto/rand's
// Reader; tests pass a fixed epoch and a seeded generator, which makes every
// trace reproducible.
type Env struct {
	Now  time.Time
	Rand io.Reader
}
