package machine_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// Benchmarks for issue 6, item 1: the cost of one protected request's start
// and response through Step while other requests are in flight. The
// snapshot keeps requests in flight in a persistent hash trie, so the cost
// must not grow with their number (target: the 100,000 case at most 1.5×
// the 1 case, and under 2 µs per pair).

const (
	benchServer = "https://mcp.example.com/mcp"
	benchIssuer = "https://auth.example.com"
)

var benchEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// benchAuthenticated returns a snapshot holding a valid credential loaded
// from the store (no discovery, no attempt): every request passes straight
// through.
func benchAuthenticated(tb testing.TB) (machine.Snapshot, machine.Env) {
	tb.Helper()
	env := machine.Env{Now: benchEpoch, Rand: zeroReader{}}
	s, _, err := machine.New(machine.Config{Server: benchServer, RedirectURI: "http://127.0.0.1:1/callback"})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	s, _, err = machine.Step(s, machine.StoredLoaded{
		Tokens: &effects.Tokens{
			Resource: benchServer, Issuer: benchIssuer, ClientID: "bench",
			AccessToken: "access-token", TokenType: "Bearer", RefreshToken: "refresh-token",
			ExpiresAt: benchEpoch.Add(time.Hour),
		},
		TokensVersion: 1,
		Discovery: &effects.Discovery{
			Server: benchServer,
			Resource: effects.ResourceMetadata{
				Resource: benchServer, AuthorizationServers: []string{benchIssuer},
			},
			Authorization: effects.ServerMetadata{
				Issuer:                        benchIssuer,
				AuthorizationEndpoint:         benchIssuer + "/authorize",
				TokenEndpoint:                 benchIssuer + "/token",
				CodeChallengeMethodsSupported: []string{"S256"},
			},
		},
		Client: &effects.Client{Issuer: benchIssuer, ClientID: "bench", AuthMethod: "none", Source: effects.ClientDynamic},
	}, env)
	if err != nil {
		tb.Fatalf("StoredLoaded: %v", err)
	}
	if !s.HasCredential() {
		tb.Fatalf("no credential after StoredLoaded: %v", s)
	}
	return s, env
}

// benchInFlight starts n requests (ids 1..n) that stay in flight.
func benchInFlight(tb testing.TB, s machine.Snapshot, env machine.Env, n int) machine.Snapshot {
	tb.Helper()
	for id := 1; id <= n; id++ {
		next, out, err := machine.Step(s, machine.RequestStarted{Request: effects.RequestID(id), Method: "POST", URL: benchServer}, env)
		if err != nil {
			tb.Fatalf("RequestStarted %d: %v", id, err)
		}
		if !sentWithCredential(out) {
			tb.Fatalf("request %d was not sent with the credential: %v", id, out)
		}
		s = next
	}
	if s.Requests.Len() != n {
		tb.Fatalf("%d requests in flight, want %d", s.Requests.Len(), n)
	}
	return s
}

func sentWithCredential(out []effects.Effect) bool {
	for _, e := range out {
		if sp, ok := e.(effects.SendProtected); ok && len(sp.Header["Authorization"]) == 1 {
			return true
		}
	}
	return false
}

func delivered(out []effects.Effect) bool {
	for _, e := range out {
		if _, ok := e.(effects.Deliver); ok {
			return true
		}
	}
	return false
}

// BenchmarkStep: one op is a request pair — RequestStarted (answered with
// SendProtected carrying the credential) then its 200 ProtectedResponse
// (answered with Deliver) — with inflight other requests in flight the
// whole time. ns/op and allocs/op are per pair.
func BenchmarkStep(b *testing.B) {
	for _, n := range []int{1, 1000, 100000} {
		b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) {
			s, env := benchAuthenticated(b)
			s = benchInFlight(b, s, env, n)
			gen := s.Generation
			id := effects.RequestID(n + 1)
			runtime.GC()
			b.ReportAllocs()
			for b.Loop() {
				s1, out, err := machine.Step(s, machine.RequestStarted{Request: id, Method: "POST", URL: benchServer}, env)
				if err != nil || !sentWithCredential(out) {
					b.Fatalf("RequestStarted %d: %v %v", id, err, out)
				}
				s2, out, err := machine.Step(s1, machine.ProtectedResponse{Request: id, Credential: gen, Status: 200}, env)
				if err != nil || !delivered(out) {
					b.Fatalf("ProtectedResponse %d: %v %v", id, err, out)
				}
				s = s2
				id++
			}
			if s.Requests.Len() != n {
				b.Fatalf("%d requests in flight after the run, want %d", s.Requests.Len(), n)
			}
		})
	}
}

// zeroReader is Env.Rand for a pass-through request, which draws nothing;
// deterministic if anything ever does.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
