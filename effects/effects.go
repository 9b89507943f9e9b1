package effects

import (
	"time"
)

// Effect is one thing the machine asks its driver to do.
type Effect interface{ isEffect() }

// RequestID names one protected request. The driver chooses it when the
// request starts and uses it in every input about that request.
type RequestID uint64

// Purpose says why an auxiliary request is made; drivers use it for limits
// and logs, the machine for nothing (it correlates by Seq).
type Purpose string

// The purposes of auxiliary requests.
const (
	PurposeResourceMetadata Purpose = "resource_metadata" // RFC 9728
	PurposeServerMetadata   Purpose = "server_metadata"   // RFC 8414 / OIDC Discovery
	PurposeRegistration     Purpose = "registration"      // RFC 7591
	PurposeToken            Purpose = "token"             // RFC 6749 §4.1.3
	PurposeRefresh          Purpose = "refresh"           // RFC 6749 §6
	PurposeAuthorization    Purpose = "authorization"     // a headless user agent's GET of the authorization URL
	PurposeIdentityExchange Purpose = "identity_exchange" // RFC 8693 at the enterprise identity provider (SEP-990)
	PurposeGrant            Purpose = "grant"             // a grant without a user: client credentials, JWT bearer
)

// Fetch sends one auxiliary HTTP request (discovery, registration, token).
// The driver answers with machine.FetchResponse or machine.FetchFailed
// carrying the same Seq. The driver must not follow redirects to another
// origin, must bound the response body, and must not add credentials.
type Fetch struct {
	Seq     uint64
	Purpose Purpose
	Method  string
	URL     string
	Header  map[string][]string // canonical keys
	Body    []byte              // form-encoded or JSON
	// Sign lists JWTs the driver signs and places before sending (a DPoP
	// proof into the DPoP header, a client assertion into the form body).
	Sign []Signed
	// Supply lists values the driver takes from configured sources and
	// appends to the form body (a workload identity token, the user's ID
	// token): secrets the machine never holds.
	Supply []Supplied
}

// JWT is a JSON Web Token the driver signs with the key KeyID through its
// Signer (RFC 7515 compact serialization). The machine decides what is
// signed; keys stay with the driver (a file, a KMS, an HSM).
type JWT struct {
	KeyID string
	// Alg is the JWS algorithm to sign with; it must match the key.
	Alg string
	// Type is the typ header: "dpop+jwt" (RFC 9449 §4.2) or "JWT".
	Type string
	// EmbedJWK puts the public key in the jwk header (DPoP proofs).
	EmbedJWK bool
	// BindRequest asks the driver to add the htm and htu claims of the
	// request the JWT travels with (RFC 9449 §4.2: its method, and its URI
	// without query and fragment): the driver holds the request itself.
	BindRequest bool
	// Claims is the JSON object of claims.
	Claims []byte
}

// Signed places a signed JWT: Header names a request header, Form a form
// field of the body; exactly one is set.
type Signed struct {
	JWT    JWT
	Header string
	Form   string
}

// Supplied is a form field whose value the driver reads from the source
// named Source (see driver.Deps.Sources).
type Supplied struct {
	Source string
	Form   string
}

// The sources the machine asks drivers for.
const (
	SourceWorkloadToken = "workload_token" // SEP-1933: the platform's JWT for the jwt-bearer grant
	SourceIDToken       = "id_token"       // SEP-990: the user's ID token for the token exchange
)

// SendProtected sends (or sends again) the caller's request Request to the
// protected resource, with Header added to it (Authorization, DPoP). An
// empty Header means "send it without credentials". The driver answers with
// machine.ProtectedResponse or machine.ProtectedFailed.
type SendProtected struct {
	Request RequestID
	Header  map[string][]string
	// Credential is the generation of the credential Header carries (0 for
	// none). The driver echoes it in the response input so that a 401 for an
	// old credential is told apart from a 401 for the current one.
	Credential uint64
	// Proof, when set, is a DPoP proof (RFC 9449) to sign and send in the
	// DPoP header.
	Proof *JWT
}

// Deliver hands the last response received for Request to its caller; the
// machine is done with that request.
type Deliver struct {
	Request RequestID
}

// Fail ends Request with Err; the machine is done with that request. The
// driver discards any response it holds for it.
type Fail struct {
	Request RequestID
	Err     error
}

// OpenURL asks the user agent to show the authorization URL to the user.
type OpenURL struct {
	URL string
}

// AwaitCallback asks the driver to wait for the authorization response at
// RedirectURI and report it as machine.CallbackReceived (or
// machine.CallbackFailed when the user gives up or time runs out).
type AwaitCallback struct {
	RedirectURI string
}

// LoadStored asks for the stored records of Server (the MCP server URL):
// tokens and discovery. The driver answers with machine.StoredLoaded.
type LoadStored struct {
	Server string
}

// LoadClient asks for the registration kept for Issuer. The driver answers
// with machine.ClientLoaded.
type LoadClient struct {
	Issuer string
}

// SaveTokens persists the credential of Server with a compare-and-swap on
// the record version: the store must write it only if the stored version is
// IfVersion (0: no record yet), and the new version is IfVersion+1. On a
// conflict the driver reports the stored record as machine.CredentialChanged.
type SaveTokens struct {
	Server    string
	Tokens    Tokens
	IfVersion uint64
}

// ForgetTokens deletes the credential of Server (after invalid_grant, or
// when the authorization server changed).
type ForgetTokens struct {
	Server    string
	IfVersion uint64
}

// SaveClient persists a client registration, keyed by Client.Issuer.
type SaveClient struct {
	Client Client
}

// ForgetClient deletes the registration kept for Issuer (the server no
// longer knows it).
type ForgetClient struct {
	Issuer string
}

// SaveDiscovery persists what discovery learned about Server, so that a
// restarted program needs no discovery while its tokens are good.
type SaveDiscovery struct {
	Server    string
	Discovery Discovery
}

// WakeAt asks the driver to feed machine.Tick at (or soon after) At, so the
// machine can refresh ahead of expiry. A later WakeAt replaces an earlier one.
type WakeAt struct {
	At time.Time
}

// Transition records that the machine moved from one state to another. It
// asks nothing of the driver: traces and live logs print it.
type Transition struct {
	From    string
	Trigger string
	To      string
}

func (Fetch) isEffect()         {}
func (SendProtected) isEffect() {}
func (Deliver) isEffect()       {}
func (Fail) isEffect()          {}
func (OpenURL) isEffect()       {}
func (AwaitCallback) isEffect() {}
func (LoadStored) isEffect()    {}
func (LoadClient) isEffect()    {}
func (SaveTokens) isEffect()    {}
func (ForgetTokens) isEffect()  {}
func (SaveClient) isEffect()    {}
func (ForgetClient) isEffect()  {}
func (SaveDiscovery) isEffect() {}
func (WakeAt) isEffect()        {}
func (Transition) isEffect()    {}
