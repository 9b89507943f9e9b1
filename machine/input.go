package machine

import "github.com/mcpauth/mcpauth/effects"

// Input is one thing that happened, fed to Step by a driver.
type Input interface{ isInput() }

// RequestStarted: the caller wants to send request Request to the protected
// resource. The machine answers with SendProtected (now, or once a
// credential is ready) or Fail.
type RequestStarted struct {
	Request effects.RequestID
	// Method is recorded in traces; the driver binds DPoP proofs to the
	// method it sends (effects.JWT.BindRequest).
	Method string
	// URL is where the request goes; a credential is only ever attached for
	// the protected resource's origin (design §4.1).
	URL string
}

// ProtectedResponse: the resource server answered request Request.
type ProtectedResponse struct {
	Request    effects.RequestID
	Credential uint64 // echoed from the SendProtected that sent it
	Status     int
	// Challenges are the WWW-Authenticate header values, in order.
	Challenges []string
	// Nonce is the DPoP-Nonce header, when the server sent one (RFC 9449 §9).
	Nonce string
}

// ProtectedFailed: sending request Request failed in transport, or its
// caller gave up; the machine forgets it. The driver reports the error to
// the caller itself.
type ProtectedFailed struct {
	Request effects.RequestID
}

// FetchResponse: the answer to the auxiliary request Seq.
type FetchResponse struct {
	Seq    uint64
	Status int
	Header map[string][]string // canonical keys
	Body   []byte              // bounded by the driver
}

// FetchFailed: the auxiliary request Seq got no answer (network error,
// timeout, response too large, a redirect refused). Reason says which,
// without secrets.
type FetchFailed struct {
	Seq    uint64
	Reason string
}

// CallbackReceived: the authorization response arrived at the redirect URI;
// Query is its raw query string.
type CallbackReceived struct {
	Query string
}

// CallbackFailed: no authorization response will come (the user closed the
// page, the wait timed out).
type CallbackFailed struct {
	Reason string
}

// StoredLoaded answers effects.LoadStored. Tokens and Discovery are nil when
// nothing was stored; Client is the registration stored for the discovered
// issuer, when there is one.
type StoredLoaded struct {
	Tokens        *effects.Tokens
	TokensVersion uint64
	Discovery     *effects.Discovery
	Client        *effects.Client
}

// ClientLoaded answers effects.LoadClient; Client is nil when none is
// stored for the issuer.
type ClientLoaded struct {
	Client *effects.Client
}

// CredentialChanged: another writer stored a newer credential (another
// process refreshed it, or our compare-and-swap lost). The machine adopts it
// when it is for the same resource and newer than its own.
type CredentialChanged struct {
	Tokens  effects.Tokens
	Version uint64
}

// SendWithheld: the driver did not carry out the SendProtected for
// Request (the credential it carried could not be saved: another writer
// stored a newer one). The machine sends the request again with the
// credential it holds now.
type SendWithheld struct {
	Request effects.RequestID
}

// Tick: time passed; Env.Now says how much. Drivers feed it when a WakeAt
// comes due.
type Tick struct{}

func (RequestStarted) isInput()    {}
func (ProtectedResponse) isInput() {}
func (ProtectedFailed) isInput()   {}
func (FetchResponse) isInput()     {}
func (FetchFailed) isInput()       {}
func (CallbackReceived) isInput()  {}
func (CallbackFailed) isInput()    {}
func (StoredLoaded) isInput()      {}
func (ClientLoaded) isInput()      {}
func (CredentialChanged) isInput() {}
func (Tick) isInput()              {}
func (SendWithheld) isInput()      {}
