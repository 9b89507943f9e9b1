package driver

import (
	"context"
	"io"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// Requester performs auxiliary requests: discovery, registration, token.
// Implementations bound response bodies, refuse redirects that would carry
// a request to another origin, and never add credentials of their own. An
// error means no answer arrived; its message must not contain secrets.
type Requester interface {
	Fetch(ctx context.Context, f effects.Fetch) (machine.FetchResponse, error)
}

// UserAgent takes the user through authorization: it shows authURL (a
// browser, a printed link, or a headless fetch in tests) and returns the
// raw query of the authorization response that arrives at redirectURI.
type UserAgent interface {
	Authorize(ctx context.Context, authURL, redirectURI string) (rawQuery string, err error)
}

// Clock is the time source; production uses SystemClock.
type Clock interface {
	Now() time.Time
	// AfterFunc runs f once after d; the returned func stops it.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Deps are the I/O a Session needs. Requester and Store are required;
// UserAgent is required for the authorization-code flow.
type Deps struct {
	Requester Requester
	UserAgent UserAgent
	Store     Store
	Clock     Clock     // default SystemClock
	Rand      io.Reader // default crypto/rand.Reader
	Tracer    Tracer    // optional
}
