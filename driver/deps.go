package driver

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
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
	// Signer signs DPoP proofs and client assertions; default a
	// StoredKeySigner that keeps this server's DPoP key in Store.
	Signer Signer
	// Sources supply secrets the machine never holds, by name
	// (effects.SourceWorkloadToken, effects.SourceIDToken): read them
	// fresh each time, so a platform can rotate a token file.
	Sources map[string]Source
}

// Source returns the current value of a configured secret.
type Source func(ctx context.Context) (string, error)

// FileSource reads a secret from a file each time (a workload token the
// platform rotates), trimming surrounding whitespace.
func FileSource(path string) Source {
	return func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
}

// EnvSource reads a secret from an environment variable each time.
func EnvSource(name string) Source {
	return func(context.Context) (string, error) {
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return "", fmt.Errorf("driver: environment variable %s is not set", name)
		}
		return v, nil
	}
}

// StaticSource returns value.
func StaticSource(value string) Source {
	return func(context.Context) (string, error) { return value, nil }
}
