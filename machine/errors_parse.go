package machine

import (
	"net/url"
	"strconv"
	"strings"
)

// The errors of the parsers of untrusted input (challenges, metadata
// documents, token, registration and authorization responses, URLs).
//
// None of them ever carries a secret: the parsers put only field names,
// fixed reasons, non-secret URLs (query, userinfo and fragment removed) and
// the error code and description an authorization server chose to send
// into them (design §4.10).

// Document names used in MalformedError.Document.
const (
	docResourceMetadata = "protected resource metadata"
	docServerMetadata   = "authorization server metadata"
	docToken            = "token response"
	docRegistration     = "registration response"
	docAuthorization    = "authorization response"
)

// MalformedError reports a document or response that does not have the
// shape its specification requires: invalid JSON, a duplicate or case-variant
// member, a member of the wrong type, a missing required member, a value out
// of bounds. Field is the member concerned ("" for the whole document);
// Reason never contains a value from a token, registration or authorization
// response.
type MalformedError struct {
	Document string
	Field    string
	Reason   string
}

func (e *MalformedError) Error() string {
	if e.Field == "" {
		return "machine: malformed " + e.Document + ": " + e.Reason
	}
	return "machine: malformed " + e.Document + ": " + e.Field + ": " + e.Reason
}

// OAuthError is an error response of an OAuth endpoint (RFC 6749 §5.2, RFC
// 7591 §3.2.2), or a response that is neither a success nor such an error.
// Code is the server's error code, "" when the response had none; then
// Description says what was wrong (for example "http 502"). Description
// and URI are the server's text, bounded in length; URI is for display
// only and must never be dereferenced automatically.
type OAuthError struct {
	Status      int
	Code        string
	Description string
	URI         string
}

// Error shows the status, the code and the description (quoted, so control
// characters cannot forge log lines: E-10) and nothing else of the body.
func (e *OAuthError) Error() string {
	var b strings.Builder
	b.WriteString("machine: oauth error")
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Status != 0 {
		b.WriteString(" (http ")
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteString(")")
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(strconv.Quote(e.Description))
	}
	return b.String()
}

// Transient reports whether trying again later may succeed: a 5xx or 429
// status, or the RFC 6749 §4.1.2.1 codes server_error and
// temporarily_unavailable. A transient failure never erases a refresh
// token (design §3).
func (e *OAuthError) Transient() bool {
	return e.Status >= 500 || e.Status == 429 ||
		e.Code == "temporarily_unavailable" || e.Code == "server_error"
}

// Retryable is Transient, for IsRetryable.
func (e *OAuthError) Retryable() bool { return e.Transient() }

// InvalidGrant reports the RFC 6749 §5.2 invalid_grant code: the
// authorization code or refresh token is dead, and only then may a refresh
// token be dropped (B-9700-04, Q-24).
func (e *OAuthError) InvalidGrant() bool { return e.Code == "invalid_grant" }

// ChallengeError reports a WWW-Authenticate header that does not follow
// the RFC 9110 §11.6.1 grammar or exceeds the parser's bounds.
type ChallengeError struct {
	Reason string
}

func (e *ChallengeError) Error() string {
	return "machine: malformed www-authenticate: " + e.Reason
}

// InsecureURLError reports a URL the client must not use: not an absolute
// http(s) URL, userinfo, a fragment, or plain http to a host that is not a
// loopback host (A-TLS-01, design §4.7). URL is the offending URL with its
// userinfo, query and fragment removed.
type InsecureURLError struct {
	URL    string
	Reason string
}

func (e *InsecureURLError) Error() string {
	return "machine: unusable url " + strconv.Quote(e.URL) + ": " + e.Reason
}

func newInsecureURLError(raw, reason string) *InsecureURLError {
	return &InsecureURLError{URL: printableURL(raw), Reason: reason}
}

// ResourceMismatchError reports protected resource metadata whose resource
// does not identify the MCP server being accessed (RFC 9728 §3.3, A-PRM-06,
// E-21); the metadata must not be used. Both URLs are kept without query,
// userinfo and fragment.
type ResourceMismatchError struct {
	Resource string
	Server   string
}

func (e *ResourceMismatchError) Error() string {
	return "machine: protected resource metadata names resource " + strconv.Quote(e.Resource) +
		", which does not identify the server " + strconv.Quote(e.Server) + " (rfc 9728 §3.3)"
}

// maxPrintedURL bounds the URLs the errors print.
const maxPrintedURL = 512

// printableURL drops what may be secret in a URL (userinfo, query,
// fragment) before it is printed; an unparsable value is not printed.
func printableURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	s := u.String() // for printing only: never used as a value
	if len(s) > maxPrintedURL {
		s = truncateUTF8(s, maxPrintedURL) + "…"
	}
	return s
}

// truncateUTF8 cuts s to at most n bytes without splitting a UTF-8
// sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// Bounds on the server text an OAuthError keeps (E-10, E-44).
const (
	maxErrorCode        = 128
	maxErrorDescription = 512
	maxErrorURI         = 2048
)

// oauthErrorFrom returns the OAuth error the response object o carries, or
// nil: an "error" member (RFC 6749 §5.2, RFC 7591 §3.2.2), or "ok": false
// (Q-18, Slack). secretMembers name members whose values are secrets (the
// access token of a contradictory response, a client secret): server text
// that contains one is withheld, so no error ever shows a secret (design
// §4.10).
func oauthErrorFrom(o jsonObject, status int, secretMembers []string) *OAuthError {
	code, _, codeErr := o.strMax("error", maxJSONText)
	_, hasErrorMember := o.raw("error")
	// RFC 6749 §3.1: a member with an empty value counts as omitted.
	hasErrorMember = hasErrorMember && (codeErr != nil || code != "")
	notOK := string(o.members["ok"]) == "false"
	if !hasErrorMember && !notOK {
		return nil
	}
	e := &OAuthError{Status: status}
	var secrets []string
	for _, name := range secretMembers {
		if s, ok, _ := o.strMax(name, maxJSONBody); ok && s != "" {
			secrets = append(secrets, s)
		}
	}
	switch {
	case !hasErrorMember: // ok: false alone
	case codeErr != nil:
		e.Description = "error member is not a string"
	case !isNQSChars(code) || len(code) > maxErrorCode:
		// RFC 6749 §5.2: error = 1*NQSCHAR; anything else is not shown.
		e.Description = "error code is not a valid rfc 6749 error code"
	case containsAny(code, secrets):
		e.Description = "error code withheld: it contained a credential"
	default:
		e.Code = code
	}
	if e.Description == "" {
		if d, ok, err := o.strMax("error_description", maxJSONText); err == nil && ok {
			if containsAny(d, secrets) || containsAny(strconv.Quote(d), secrets) {
				d = "error description withheld: it contained a credential"
			}
			e.Description = truncateUTF8(d, maxErrorDescription)
		}
	}
	if u, ok, err := o.strMax("error_uri", maxJSONText); err == nil && ok &&
		len(u) <= maxErrorURI && isNQSChars(u) && !containsAny(u, secrets) {
		e.URI = u // display only, never dereferenced
	}
	if e.Code == "" && e.Description == "" {
		if notOK {
			e.Description = "response says ok: false"
		} else {
			e.Description = "http " + strconv.Itoa(status)
		}
	}
	return e
}

// statusError is the OAuthError for a response that is neither a success
// nor an error response (an HTML 502, an empty 400).
func statusError(status int) *OAuthError {
	return &OAuthError{Status: status, Description: "http " + strconv.Itoa(status)}
}

// isNQSChars: 1*( %x20-21 / %x23-5B / %x5D-7E ) (RFC 6749 Appendix A).
func isNQSChars(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7E || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
