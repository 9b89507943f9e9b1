package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/mcpauth/mcpauth/internal/testworld"
)

// Counts are the HTTP requests the in-repo servers saw during one case.
type Counts struct {
	HTTP           int // every request, to any server
	Authorized     int // MCP requests that passed the bearer check: useful work
	Discovery      int // requests under /.well-known/ (PRM, AS metadata, probes)
	Registrations  int // clients registered (RFC 7591)
	Authorizations int // requests to the authorization endpoint
	TokenRequests  int // requests to the token endpoint, any grant
	Refused        int // 401 and 403 answers from the MCP server
}

// Auth is the requests spent on authorization rather than on MCP work.
func (c Counts) Auth() int { return c.HTTP - c.Authorized }

// Delta returns what the world saw between two snapshots of its stats.
func Delta(before, after testworld.Stats) Counts {
	c := Counts{
		Authorized:     after.Authorized - before.Authorized,
		Registrations:  after.Registrations - before.Registrations,
		Authorizations: after.Authorizations - before.Authorizations,
		Refused:        after.Unauthorized + after.Forbidden - before.Unauthorized - before.Forbidden,
	}
	for k, n := range after.Paths {
		d := n - before.Paths[k]
		c.HTTP += d
		if strings.Contains(k, "/.well-known/") {
			c.Discovery += d
		}
	}
	for g, n := range after.TokenRequests {
		c.TokenRequests += n - before.TokenRequests[g]
	}
	return c
}

// RoundTrips is the outcome of one case for one library.
type RoundTrips struct {
	Counts  Counts
	Prompts int
	// Err is why the library could not do the case (the counts are what it
	// sent until it gave up); Setup is a failure before the measured part.
	Err, Setup error
}

// The cases of issue 6, item 5.
var Cases = []string{"cold", "warm", "expired", "step-up"}

// SpecMinimum is the fewest requests the MCP authorization spec allows each
// case to spend on authorization, in the world RunRoundTrips uses (PRM
// advertised in the 401, RFC 8414 metadata at the first well-known URL,
// dynamic registration, refresh tokens): cold = the 401, PRM, AS metadata,
// registration, authorization, code exchange; warm = nothing; expired = one
// refresh; step-up = the 403, authorization, code exchange (discovery and
// registration are already known).
var SpecMinimum = map[string]int{"cold": 6, "warm": 0, "expired": 1, "step-up": 3}

// CaseWorld is the world each case runs against.
func CaseWorld(c string) testworld.Options {
	o := testworld.Options{DCR: true}
	if c == "step-up" {
		o.ChallengeScope = "mcp:read"
		o.ToolScopes = map[string]string{"write": "mcp:write"}
	}
	return o
}

// NewClient returns a fresh instance of the named library.
func NewClient(lib string) (Client, error) {
	switch lib {
	case "mcpauth":
		return NewMCPAuth(), nil
	case "go-sdk":
		return NewGoSDK(), nil
	case "mcp-go":
		return NewMCPGo(), nil
	}
	return nil, fmt.Errorf("bench: unknown client %q", lib)
}

// RunRoundTrips runs case c for library lib in a fresh world and counts
// the requests of the measured part only: for warm and expired the first
// session (a cold start) is setup; for step-up the session and its first
// call are.
func RunRoundTrips(c, lib string) (r RoundTrips) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	w, err := testworld.Start(CaseWorld(c))
	if err != nil {
		r.Setup = err
		return r
	}
	defer w.Close()
	cl, err := NewClient(lib)
	if err != nil {
		r.Setup = err
		return r
	}
	session := func(expired bool) error {
		s, err := cl.Connect(ctx, w, expired)
		if err != nil {
			return err
		}
		defer s.Close()
		return s.Call(ctx, "echo")
	}
	var measure func() error
	switch c {
	case "cold":
		measure = func() error { return session(false) }
	case "warm", "expired":
		if err := session(false); err != nil {
			r.Setup = err
			return r
		}
		measure = func() error { return session(c == "expired") }
	case "step-up":
		s, err := cl.Connect(ctx, w, false)
		if err != nil {
			r.Setup = err
			return r
		}
		defer s.Close()
		if err := s.Call(ctx, "echo"); err != nil {
			r.Setup = err
			return r
		}
		measure = func() error { return s.Call(ctx, "write") }
	default:
		r.Setup = fmt.Errorf("bench: unknown case %q", c)
		return r
	}
	before, prompts := w.Stats(), cl.Prompts()
	r.Err = measure()
	r.Counts = Delta(before, w.Stats())
	r.Prompts = cl.Prompts() - prompts
	return r
}
