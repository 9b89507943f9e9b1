package machine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mcpauth/mcpauth/states"
)

// Retryable is implemented by errors after which trying again later may
// work (a 5xx, a 429, a network failure): nothing was learned that says the
// credential or the configuration is wrong.
type Retryable interface {
	Retryable() bool
}

// IsRetryable reports whether err, or an error it wraps, says so.
func IsRetryable(err error) bool {
	var r Retryable
	return errors.As(err, &r) && r.Retryable()
}

// UnexpectedInputError reports an input that is illegal in the current
// state: a stale response, a callback nobody awaits. The snapshot is
// unchanged and there are no effects (failure channel a).
type UnexpectedInputError struct {
	State  states.State
	Input  string
	Reason string
}

func (e *UnexpectedInputError) Error() string {
	return fmt.Sprintf("machine: unexpected %s in state %s: %s", e.Input, e.State, e.Reason)
}

// ConfigError reports an unusable Config.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("machine: config %s: %s", e.Field, e.Reason)
}

// TransportError reports an auxiliary request that got no answer.
type TransportError struct {
	Purpose string
	URL     string
	Reason  string
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("machine: %s request to %s failed: %s", e.Purpose, printableURL(e.URL), e.Reason)
}

// Retryable: a network failure may pass.
func (e *TransportError) Retryable() bool { return true }

// HTTPStatusError reports an auxiliary request answered with a status that
// stops the attempt (5xx, 429) or is not understood.
type HTTPStatusError struct {
	Purpose string
	URL     string
	Status  int
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("machine: %s request to %s answered http %d", e.Purpose, printableURL(e.URL), e.Status)
}

// Retryable: server errors and rate limits may pass (no silent downgrade
// to another discovery path happens meanwhile).
func (e *HTTPStatusError) Retryable() bool { return e.Status >= 500 || e.Status == 429 }

// DiscoveryError reports that no authorization server could be used. Tried
// says what was refused and why, in order.
type DiscoveryError struct {
	Server string
	Tried  []string
}

func (e *DiscoveryError) Error() string {
	return fmt.Sprintf("machine: no usable authorization server for %s (%s)", e.Server, strings.Join(e.Tried, "; "))
}

// IssuerMismatchError reports metadata whose issuer is not the issuer
// identifier it was fetched for (RFC 8414 §3.3, A-ASM-06); nothing from it
// was used.
type IssuerMismatchError struct {
	Want string
	Got  string
}

func (e *IssuerMismatchError) Error() string {
	return fmt.Sprintf("machine: authorization server metadata names issuer %q, want %q", e.Got, e.Want)
}

// PKCEUnsupportedError reports an authorization server whose metadata does
// not list S256 (A-PKCE-03..06).
type PKCEUnsupportedError struct {
	Issuer string
}

func (e *PKCEUnsupportedError) Error() string {
	return fmt.Sprintf("machine: authorization server %s does not advertise PKCE S256", e.Issuer)
}

// NoClientError reports that no client identity can be had at an issuer:
// nothing configured, no metadata document support, no registration.
type NoClientError struct {
	Issuer string
}

func (e *NoClientError) Error() string {
	return fmt.Sprintf("machine: no client identity for %s: configure a client id, or use a server that offers client metadata documents or dynamic registration", e.Issuer)
}

// RegistrationError reports a refused dynamic registration.
type RegistrationError struct {
	Issuer string
	Err    error
}

func (e *RegistrationError) Error() string {
	return fmt.Sprintf("machine: registration at %s failed: %v", e.Issuer, e.Err)
}

func (e *RegistrationError) Unwrap() error { return e.Err }

// CallbackError reports an authorization response that was refused or did
// not come: Reason says why (never the values, which may be secrets).
type CallbackError struct {
	Reason string
}

func (e *CallbackError) Error() string { return "machine: authorization response refused: " + e.Reason }

// StateMismatchError reports an authorization response whose state is not
// the one sent (RFC 6749 §10.12).
type StateMismatchError struct{}

func (e *StateMismatchError) Error() string {
	return "machine: authorization response state does not match the request"
}

// IssuerResponseError reports an authorization response whose iss is
// missing or differs from the validated issuer (RFC 9207 §2.4).
type IssuerResponseError struct {
	Want    string
	Got     string
	Missing bool
}

func (e *IssuerResponseError) Error() string {
	if e.Missing {
		return fmt.Sprintf("machine: authorization response has no iss, but %s advertises it (RFC 9207)", e.Want)
	}
	return fmt.Sprintf("machine: authorization response iss %q is not the issuer %q (RFC 9207)", e.Got, e.Want)
}

// AuthorizationDeniedError reports an error authorization response.
type AuthorizationDeniedError struct {
	Code        string
	Description string
}

func (e *AuthorizationDeniedError) Error() string {
	if e.Description == "" {
		return "machine: authorization denied: " + e.Code
	}
	return fmt.Sprintf("machine: authorization denied: %s: %s", e.Code, e.Description)
}

// TokenError reports a refused token request; Grant is the grant type.
type TokenError struct {
	Grant  string
	Issuer string
	Err    error
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("machine: %s grant at %s failed: %v", e.Grant, e.Issuer, e.Err)
}

func (e *TokenError) Unwrap() error { return e.Err }

// StepUpLimitError reports a request that still lacked scope after the
// allowed number of step-up authorizations.
type StepUpLimitError struct {
	Scope string
	Limit int
}

func (e *StepUpLimitError) Error() string {
	return fmt.Sprintf("machine: request still lacks scope %q after %d step-up authorizations", e.Scope, e.Limit)
}

// UnauthorizedError reports a request the server kept refusing after the
// allowed number of new credentials.
type UnauthorizedError struct {
	Status int
	Limit  int
}

func (e *UnauthorizedError) Error() string {
	return fmt.Sprintf("machine: server still answers http %d after %d new credentials", e.Status, e.Limit)
}

// BudgetError reports an attempt that consumed more inputs than allowed.
type BudgetError struct {
	Limit int
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("machine: authorization attempt exceeded its budget of %d steps", e.Limit)
}

// EntropyError reports that Env.Rand failed; no secret could be drawn.
type EntropyError struct {
	Err error
}

func (e *EntropyError) Error() string { return "machine: entropy source failed: " + e.Err.Error() }

func (e *EntropyError) Unwrap() error { return e.Err }
