package states

// State says what one authorization context is waiting for.
type State string

// The states. Each name says what the flow waits for.
const (
	// Loading waits for the stored credential and discovery records.
	Loading State = "loading"
	// Unauthenticated holds no credential and runs no attempt: requests go
	// out without one, and a 401 starts discovery (MCP: the flow starts
	// from a 401).
	Unauthenticated State = "unauthenticated"
	// Authenticated holds a credential that requests carry.
	Authenticated State = "authenticated"
	// Refreshing waits for a refresh-token grant (RFC 6749 §6).
	Refreshing State = "refreshing"
	// DiscoveringResource waits for protected resource metadata (RFC 9728).
	DiscoveringResource State = "discovering_resource"
	// DiscoveringIssuer waits for authorization server metadata (RFC 8414,
	// OpenID Connect Discovery).
	DiscoveringIssuer State = "discovering_issuer"
	// LoadingClient waits for the registration stored for the issuer.
	LoadingClient State = "loading_client"
	// Registering waits for dynamic client registration (RFC 7591).
	Registering State = "registering"
	// AwaitingCallback waits for the user's authorization response.
	AwaitingCallback State = "awaiting_callback"
	// ExchangingCode waits for the authorization-code grant.
	ExchangingCode State = "exchanging_code"
	// ExchangingIdentity waits for the identity provider's token exchange
	// (RFC 8693) that turns the user's ID token into an ID-JAG (SEP-990).
	ExchangingIdentity State = "exchanging_identity"
	// RequestingToken waits for a grant that needs no user: client
	// credentials, or a JWT bearer assertion (RFC 7523; SEP-1933, SEP-990).
	RequestingToken State = "requesting_token"
)

// Initial is the state of a new authorization context.
const Initial = Loading

// All lists every state, in the order the flow usually meets them.
var All = []State{
	Loading, Unauthenticated, Authenticated, Refreshing, DiscoveringResource,
	DiscoveringIssuer, LoadingClient, Registering, AwaitingCallback, ExchangingCode,
	ExchangingIdentity, RequestingToken,
}

// Attempting reports whether s runs an attempt to get a credential, so that
// requests that need one are parked until it ends.
func (s State) Attempting() bool {
	switch s {
	case Refreshing, DiscoveringResource, DiscoveringIssuer, LoadingClient, Registering, AwaitingCallback,
		ExchangingCode, ExchangingIdentity, RequestingToken:
		return true
	}
	return false
}

// Trigger is a classified input, named as the fact it reports.
type Trigger string

// The triggers.
const (
	// StoredCredentialLoaded: the store held a credential for the server.
	StoredCredentialLoaded Trigger = "stored_credential_loaded"
	// NothingStored: the store held no credential for the server.
	NothingStored Trigger = "nothing_stored"
	// Challenged: the server answered 401 and no refresh can help, or a
	// step-up found nothing to build on: discovery starts (again).
	Challenged Trigger = "challenged"
	// CredentialExpiring: the credential expired, is about to, or drew a
	// 401, and a refresh token is held.
	CredentialExpiring Trigger = "credential_expiring"
	// ScopeInsufficient: a 403 insufficient_scope asked for more scope and
	// the client and metadata are known (RFC 6750 §3.1, MCP step-up).
	ScopeInsufficient Trigger = "scope_insufficient"
	// ResourceMetadataMissed: a PRM candidate URL had no usable document; the
	// next one is tried (RFC 9728 §3, SEP-985 order).
	ResourceMetadataMissed Trigger = "resource_metadata_missed"
	// ResourceMetadataFound: a PRM document validated.
	ResourceMetadataFound Trigger = "resource_metadata_found"
	// ResourceMetadataAbsent: no candidate had a PRM document; the server's
	// origin is taken as the authorization server (MCP 2025-03-26).
	ResourceMetadataAbsent Trigger = "resource_metadata_absent"
	// IssuerMetadataMissed: a metadata candidate had no document, or one
	// that did not validate; the next candidate (or server) is tried.
	IssuerMetadataMissed Trigger = "issuer_metadata_missed"
	// IssuerValidated: a metadata document validated and the client for it
	// must be looked up in the store.
	IssuerValidated Trigger = "issuer_validated"
	// ClientFound: a client identity for the validated issuer is known
	// (configured, a metadata document URL, or stored).
	ClientFound Trigger = "client_found"
	// RegistrationNeeded: no client is known and the server offers dynamic
	// registration.
	RegistrationNeeded Trigger = "registration_needed"
	// ClientRegistered: dynamic registration returned a client.
	ClientRegistered Trigger = "client_registered"
	// GrantReady: the client may get a credential without a user (client
	// credentials, a workload's JWT bearer assertion).
	GrantReady Trigger = "grant_ready"
	// GrantRepeated: a credential obtained without a user expired or lacks
	// scope, and the grant is made again (no refresh token is needed).
	GrantRepeated Trigger = "grant_repeated"
	// IdentityExchangeStarted: the user's ID token is exchanged at the
	// identity provider for an ID-JAG (SEP-990).
	IdentityExchangeStarted Trigger = "identity_exchange_started"
	// IdentityExchanged: the identity provider issued the ID-JAG.
	IdentityExchanged Trigger = "identity_exchanged"
	// CallbackReceived: the authorization response passed its checks.
	CallbackReceived Trigger = "callback_received"
	// TokenIssued: the token endpoint issued a credential.
	TokenIssued Trigger = "token_issued"
	// RefreshRejected: the refresh token was refused (invalid_grant); the
	// credential is forgotten and the user is asked again.
	RefreshRejected Trigger = "refresh_rejected"
	// AttemptFailed: the attempt ended in an error and no credential is held.
	AttemptFailed Trigger = "attempt_failed"
	// AttemptFailedCredentialKept: the attempt ended in an error, and the
	// credential held before it is still good (a transient refresh failure,
	// a refused step-up).
	AttemptFailedCredentialKept Trigger = "attempt_failed_credential_kept"
	// CredentialChanged: another process stored a newer credential, which
	// is adopted in place of a refresh or authorization of our own.
	CredentialChanged Trigger = "credential_changed"
)

// Triggers lists every trigger.
var Triggers = []Trigger{
	StoredCredentialLoaded, NothingStored, Challenged, CredentialExpiring, ScopeInsufficient,
	ResourceMetadataMissed, ResourceMetadataFound, ResourceMetadataAbsent, IssuerMetadataMissed,
	IssuerValidated, ClientFound, RegistrationNeeded, ClientRegistered, GrantReady, GrantRepeated,
	IdentityExchangeStarted, IdentityExchanged, CallbackReceived,
	TokenIssued, RefreshRejected, AttemptFailed, AttemptFailedCredentialKept, CredentialChanged,
}
