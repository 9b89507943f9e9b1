package testworld

import (
	"context"
	"sync"
	"time"
)

// Fault makes the world misbehave on demand. The zero Fault behaves.
//
// Faults fire at one of five sites, and each site consumes its fields when it
// fires, so a fault happens once per SetFault unless Sticky:
//
//   - PRM document served: PRMResource, PRMBody
//   - AS metadata document served: MetadataIssuer, MetadataBody, DropS256
//   - /authorize request that passed validation: WrongState, WrongIss, AuthorizeError
//   - /token request: TokenStatus, TokenBody (before any processing, so a
//     code is not burnt); InvalidGrantOnRefresh on a refresh_token grant
//   - /register request: RegistrationStatus
//
// Delay applies to the next AS request (every AS request if Sticky).
type Fault struct {
	// TokenStatus answers /token with this status and an RFC 6749 §5.2 error
	// body (server_error, temporarily_unavailable for 503, invalid_client
	// for 401, invalid_request for other 4xx).
	TokenStatus int
	// TokenBody overrides the /token body (status TokenStatus, or 200).
	TokenBody []byte
	// MetadataIssuer is served as "issuer" in AS metadata.
	MetadataIssuer string
	// PRMResource is served as "resource" in PRM.
	PRMResource string
	// PRMBody and MetadataBody replace the whole document (status 200, JSON).
	PRMBody, MetadataBody []byte
	// DropS256 omits code_challenge_methods_supported (which only held S256).
	DropS256 bool
	// WrongState makes the authorization redirect carry a different state.
	WrongState bool
	// WrongIss makes the authorization redirect carry this iss.
	WrongIss string
	// AuthorizeError makes the authorization redirect carry error=<this>.
	AuthorizeError string
	// InvalidGrantOnRefresh answers the next refresh_token grant with
	// invalid_grant (without revoking anything).
	InvalidGrantOnRefresh bool
	// RegistrationStatus answers /register with this status.
	RegistrationStatus int
	// Delay sleeps before answering an AS request (or until the client gives up).
	Delay time.Duration
	// Sticky keeps every field armed after it fires.
	Sticky bool
}

// faults holds the armed Fault. Each take* method atomically reads and (unless
// Sticky) disarms one site's fields, so with 64 goroutines racing exactly one
// of them gets a one-shot fault.
type faults struct {
	mu sync.Mutex
	f  Fault
}

func (fs *faults) set(f Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f.TokenBody = cloneBytes(f.TokenBody)
	f.PRMBody = cloneBytes(f.PRMBody)
	f.MetadataBody = cloneBytes(f.MetadataBody)
	fs.f = f
}

type prmFault struct {
	resource string
	body     []byte
}

func (fs *faults) takePRM() prmFault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := prmFault{fs.f.PRMResource, fs.f.PRMBody}
	if !fs.f.Sticky {
		fs.f.PRMResource, fs.f.PRMBody = "", nil
	}
	return out
}

type metadataFault struct {
	issuer   string
	body     []byte
	dropS256 bool
}

func (fs *faults) takeMetadata() metadataFault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := metadataFault{fs.f.MetadataIssuer, fs.f.MetadataBody, fs.f.DropS256}
	if !fs.f.Sticky {
		fs.f.MetadataIssuer, fs.f.MetadataBody, fs.f.DropS256 = "", nil, false
	}
	return out
}

type authorizeFault struct {
	wrongState bool
	wrongIss   string
	err        string
}

func (fs *faults) takeAuthorize() authorizeFault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := authorizeFault{fs.f.WrongState, fs.f.WrongIss, fs.f.AuthorizeError}
	if !fs.f.Sticky {
		fs.f.WrongState, fs.f.WrongIss, fs.f.AuthorizeError = false, "", ""
	}
	return out
}

type tokenFault struct {
	status int
	body   []byte
}

func (fs *faults) takeToken() tokenFault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := tokenFault{fs.f.TokenStatus, fs.f.TokenBody}
	if !fs.f.Sticky {
		fs.f.TokenStatus, fs.f.TokenBody = 0, nil
	}
	return out
}

func (fs *faults) takeInvalidGrantOnRefresh() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := fs.f.InvalidGrantOnRefresh
	if !fs.f.Sticky {
		fs.f.InvalidGrantOnRefresh = false
	}
	return out
}

func (fs *faults) takeRegistration() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := fs.f.RegistrationStatus
	if !fs.f.Sticky {
		fs.f.RegistrationStatus = 0
	}
	return out
}

func (fs *faults) takeDelay() time.Duration {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := fs.f.Delay
	if !fs.f.Sticky {
		fs.f.Delay = 0
	}
	return out
}

// sleep waits d of real time, returning early when the client disconnects so
// a slow-AS test never leaves goroutines behind.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
