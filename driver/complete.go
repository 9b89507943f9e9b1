package driver

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/mcpauth/mcpauth/effects"
)

// complete fills in what the machine left to the driver: values from
// configured sources and signed JWTs, appended to the form body or set as
// headers.
func (s *Session) complete(ctx context.Context, f effects.Fetch) (effects.Fetch, error) {
	return CompleteFetch(ctx, f, s.deps.Signer, s.deps.Sources)
}

// CompleteFetch fills in what the machine left to the driver in f: values
// from configured sources and signed JWTs, appended to the form body or set
// as headers. Drivers that send a Fetch outside a Session (a revocation)
// call it before sending.
func CompleteFetch(ctx context.Context, f effects.Fetch, signer Signer, sources map[string]Source) (effects.Fetch, error) {
	if len(f.Supply) == 0 && len(f.Sign) == 0 {
		return f, nil
	}
	body := string(f.Body)
	add := func(name, value string) {
		if body != "" {
			body += "&"
		}
		body += url.QueryEscape(name) + "=" + url.QueryEscape(value)
	}
	for _, sup := range f.Supply {
		src, ok := sources[sup.Source]
		if !ok {
			return f, &SourceError{Source: sup.Source, Reason: "not configured"}
		}
		v, err := src(ctx)
		if err != nil {
			return f, &SourceError{Source: sup.Source, Reason: err.Error()}
		}
		add(sup.Form, v)
	}
	header := make(map[string][]string, len(f.Header)+1)
	for k, v := range f.Header {
		header[k] = v
	}
	for _, sg := range f.Sign {
		if signer == nil {
			return f, &SignError{KeyID: sg.JWT.KeyID, Reason: "no signer is configured"}
		}
		jws, err := signer.Sign(ctx, sg.JWT)
		if err != nil {
			return f, err
		}
		if sg.Header != "" {
			header[http.CanonicalHeaderKey(sg.Header)] = []string{jws}
		} else {
			add(sg.Form, jws)
		}
	}
	f.Body, f.Header = []byte(body), header
	return f, nil
}

// CausedError is the error of a request whose attempt failed for a reason
// on the driver's side: Err is the machine's account (what could not be
// done), Cause the driver's (a source that could not be read, a key that
// could not sign, a lock that could not be taken). errors.As reaches both.
type CausedError struct {
	Err   error
	Cause error
}

func (e *CausedError) Error() string { return e.Err.Error() }

// Unwrap returns both errors, the cause first: it decides whether trying
// again can help (a refused destination cannot; a network error may).
func (e *CausedError) Unwrap() []error { return []error{e.Cause, e.Err} }

// failAttempt records the driver-side cause of the running attempt's end,
// when the attempt still awaits request seq (0: the attempt's first
// request, not yet sent): a late failure of an abandoned attempt explains
// nothing.
func (s *Session) failAttempt(seq uint64, cause error) {
	s.mu.Lock()
	if s.snap.State.Attempting() && (seq == 0 || s.snap.Attempt.Pending == seq) {
		s.cause = cause
	}
	s.mu.Unlock()
}

// SourceError reports a configured secret that could not be read.
type SourceError struct {
	Source string
	Reason string
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("driver: source %s: %s", e.Source, e.Reason)
}
