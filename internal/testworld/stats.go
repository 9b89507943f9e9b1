package testworld

import (
	"maps"
	"sync"
)

// Stats is a snapshot of what the world has seen, for assertions such as
// "64 concurrent requests caused exactly one authorization".
type Stats struct {
	// PRMRequests counts PRM documents served (RFC 9728).
	PRMRequests int
	// MetadataRequests counts AS metadata documents served.
	MetadataRequests int
	// Registrations counts clients created by /register.
	Registrations int
	// Authorizations counts every request to /authorize (whatever the outcome).
	Authorizations int
	// CodesIssued counts authorization codes handed out.
	CodesIssued int
	// TokenRequests counts /token requests by grant_type ("" when absent).
	TokenRequests map[string]int
	// InvalidGrants counts invalid_grant answers from /token.
	InvalidGrants int
	// Revocations counts accepted /revoke requests (RFC 7009).
	Revocations int
	// FamiliesRevoked counts token families revoked because a rotated
	// refresh token or a used code was replayed.
	FamiliesRevoked int
	// ProtectedRequests counts every request to the MCP endpoint.
	ProtectedRequests int
	// Authorized counts requests that passed the bearer check and reached MCP.
	Authorized int
	// Unauthorized and Forbidden count 401 and 403 answers from the MCP endpoint.
	Unauthorized, Forbidden int
	// Paths counts "METHOD /path" for every request seen by any listener.
	Paths map[string]int

	// The extensions.

	// GrantsIssued counts tokens issued by /token, by grant_type.
	GrantsIssued map[string]int
	// ClientAssertionsAccepted and ClientAssertionsRefused count
	// private_key_jwt client assertions (RFC 7523 §3).
	ClientAssertionsAccepted, ClientAssertionsRefused int
	// TokenExchanges and TokenExchangesRefused count the identity
	// provider's RFC 8693 answers.
	TokenExchanges, TokenExchangesRefused int
	// DPoPProofsAccepted and DPoPProofsRefused count RFC 9449 proofs
	// checked at /token and at the RS (a nonce challenge is neither).
	DPoPProofsAccepted, DPoPProofsRefused int
	// JTIReplays counts DPoP proofs, client assertions and ID-JAGs refused
	// because their jti was seen before.
	JTIReplays int
	// ASNonceChallenges and RSNonceChallenges count use_dpop_nonce answers.
	ASNonceChallenges, RSNonceChallenges int
}

// stats is the live, mutex-guarded form of Stats. One mutex is enough: the
// critical sections are a few increments, far cheaper than the HTTP around them.
type stats struct {
	mu sync.Mutex
	s  Stats
}

func newStats() *stats {
	return &stats{s: Stats{TokenRequests: map[string]int{}, Paths: map[string]int{}, GrantsIssued: map[string]int{}}}
}

func (st *stats) add(f func(*Stats)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	f(&st.s)
}

// snapshot deep-copies, so callers may keep or mutate the result freely.
func (st *stats) snapshot() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := st.s
	out.TokenRequests = maps.Clone(st.s.TokenRequests)
	out.Paths = maps.Clone(st.s.Paths)
	out.GrantsIssued = maps.Clone(st.s.GrantsIssued)
	return out
}
