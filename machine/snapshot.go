package machine

import (
	"fmt"
	"slices"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// Snapshot is one authorization context at one moment: a plain value. Step
// returns a new one and never changes the one it was given, so a driver may
// keep old snapshots, compare them, or replay from any of them.
type Snapshot struct {
	Config Config
	State  states.State

	// Credential is the credential held; AccessToken is empty when none.
	Credential effects.Tokens
	// CredentialVersion is the store version of Credential (compare-and-swap).
	CredentialVersion uint64
	// Generation counts the credentials adopted; responses echo the
	// generation they were sent with, so a 401 for an old credential is told
	// apart from a 401 for the current one.
	Generation uint64
	// RefreshAt is when the credential is due for renewal: its lifetime
	// less the refresh margin, but never before half its lifetime. Zero when
	// the lifetime is unknown.
	RefreshAt time.Time
	// CureTried is set when a refresh was run because of a 401 and no
	// request has succeeded since: a second 401 re-runs discovery instead.
	CureTried bool
	// RequestedScope is the scope of the last authorization request (the
	// "previously requested" set of SEP-2350).
	RequestedScope string
	// Grant is the grant that produced Credential.
	Grant Grant
	// AnyIssuerBoundTo is the issuer a configured client without an issuer
	// was bound to on first use (SEP-2352): it is never presented to
	// another authorization server.
	AnyIssuerBoundTo string

	Discovery  effects.Discovery
	Discovered bool
	Client     effects.Client
	HasClient  bool

	// Header is the Authorization header of the credential of generation
	// HeaderFor, kept so that sends share it instead of building their own.
	Header    map[string][]string
	HeaderFor uint64

	// Nonces are the latest DPoP nonces, per server origin (RFC 9449 §8,
	// §9): replaced, never written through.
	Nonces map[string]string

	Requests Requests
	Attempt  Attempt
	Seq      uint64 // the last auxiliary request number issued
}

// Attempt is the data of the running refresh or authorization.
type Attempt struct {
	Steps   int    // inputs consumed, bounded by Limits.StepsPerAttempt
	Pending uint64 // the auxiliary request awaited; 0 when none
	// Purpose and PendingURL of the pending request.
	Purpose    effects.Purpose
	PendingURL string

	// ChallengeScope comes from the challenge that started discovery
	// (A-GEN-06).
	ChallengeScope string

	// Candidates are the URLs of the current discovery stage, tried in
	// order; Next is the index of the one in flight.
	Candidates []string
	Next       int
	// Servers are the authorization servers the PRM listed (or the legacy
	// origin); Server is the index of the one being tried.
	Servers []string
	Server  int
	// Resource is the validated PRM; Legacy is set when there is none.
	Resource            effects.ResourceMetadata
	ResourceMetadataURL string
	Legacy              bool
	// Problems collects why candidates were refused, for the final error.
	Problems []string
	// Refused is set when a metadata document was found but refused: the
	// legacy default endpoints are then not used in its place.
	Refused bool

	// Authorization request data (secret: Verifier, StateParam).
	Scope         string
	ResourceParam string
	Verifier      string
	StateParam    string
	KeepOnFailure bool // a credential held before the attempt stays good if it fails

	// Grant is the grant this attempt uses.
	Grant Grant
	// TokenForm is the last token request's form before client
	// authentication, kept to send it again once with a DPoP nonce.
	TokenForm    string
	NonceRetried bool
}

// HasCredential reports whether a credential is held.
func (s Snapshot) HasCredential() bool { return s.Credential.AccessToken != "" }

// expiring reports whether the credential is within the refresh margin of
// its expiry (never, when the server gave no lifetime).
func (s Snapshot) expiring(now time.Time) bool {
	if !s.RefreshAt.IsZero() {
		return !now.Before(s.RefreshAt)
	}
	exp := s.Credential.ExpiresAt
	return !exp.IsZero() && !now.Add(s.Config.RefreshMargin).Before(exp)
}

// refreshAt schedules the renewal of a credential that lives until exp
// from now: the margin before expiry, but not before half the lifetime, so
// a short-lived credential is not renewed the moment it arrives.
func refreshAt(now, exp time.Time, margin time.Duration) time.Time {
	if exp.IsZero() {
		return time.Time{}
	}
	at := exp.Add(-margin)
	if half := now.Add(exp.Sub(now) / 2); at.Before(half) {
		at = half
	}
	return at
}

// canRefresh reports whether a refresh-token grant can be made now.
func (s Snapshot) canRefresh() bool {
	grants := s.Discovery.Authorization.GrantTypesSupported
	return s.HasCredential() && s.Credential.RefreshToken != "" && s.Discovered && s.HasClient &&
		s.Client.Issuer == s.Credential.Issuer && s.Discovery.Authorization.Issuer == s.Credential.Issuer &&
		(len(grants) == 0 || slices.Contains(grants, "refresh_token"))
}

// canRepeatGrant reports whether a credential can be had again without a
// user and without a refresh token (client credentials, workload identity).
func (s Snapshot) canRepeatGrant() bool {
	switch s.Grant {
	case GrantClientCredentials, GrantWorkloadIdentity, GrantEnterprise:
		return s.Discovered
	}
	return false
}

// String prints the snapshot without secrets.
func (s Snapshot) String() string {
	return fmt.Sprintf("Snapshot{State:%s Generation:%d %s Requests:%d Parked:%d Seq:%d}",
		s.State, s.Generation, s.Credential, s.Requests.Len(), s.Requests.Parked(), s.Seq)
}

// GoString keeps %#v from printing secrets.
func (s Snapshot) GoString() string { return s.String() }

// New returns the first snapshot of an authorization context and the
// effects that start it: loading what the store holds for the server.
func New(cfg Config) (Snapshot, []effects.Effect, error) {
	cfg = cfg.withDefaults()
	if err := validateConfig(cfg); err != nil {
		return Snapshot{}, nil, err
	}
	s := Snapshot{Config: cfg, State: states.Initial}
	return s, []effects.Effect{effects.LoadStored{Server: cfg.Server}}, nil
}
