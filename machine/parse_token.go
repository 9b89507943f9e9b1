package machine

import (
	"fmt"
	"strconv"
	"strings"
)

// Token endpoint responses (RFC 6749 §5.1 success, §5.2 error; RFC 8693
// §2.2 token exchange).

// TokenResponse is a successful token response. AccessToken, RefreshToken
// and IDToken are secrets.
type TokenResponse struct {
	AccessToken, TokenType, RefreshToken, Scope, IDToken string
	ExpiresIn                                            int64 // seconds
	HasExpiresIn                                         bool
	IssuedTokenType                                      string // RFC 8693, when present
}

// Bounds on token responses (E-17, E-50).
const (
	maxTokenLen   = 16 << 10        // access and refresh tokens: they travel in a 16 KiB header
	maxIDTokenLen = 64 << 10        // never sent anywhere by this client
	maxExpiresIn  = 365 * 24 * 3600 // one year
)

// tokenMembers are the members the parser reads; a member that differs
// from one of them only by case is refused (E-14).
var tokenMembers = []string{
	"access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token",
	"issued_token_type", "error", "error_description", "error_uri", "ok",
}

// tokenSecretMembers are withheld from error text.
var tokenSecretMembers = []string{"access_token", "refresh_token", "id_token"}

// ParseTokenResponse reads a token endpoint response. It is a success only
// if status is 2xx AND access_token is present AND there is no error member
// and no "ok": false (Q-18: GitHub answers errors with HTTP 200, Slack with
// ok:false; E-09). Bodies are JSON or, when the Content-Type says so,
// application/x-www-form-urlencoded; the media type is read
// leniently.
//
// Errors: *OAuthError for an error response, or for a non-2xx response
// without an error code (then Code is "" and Description is "http <status>");
// *MalformedError for a 2xx body that is not a valid success: token_type
// other than Bearer or DPoP (compared case-insensitively, RFC 6749 §5.1,
// Q-21, B-6749-05), a bad expires_in (E-50), an empty or over-long
// access_token, or one with characters that cannot go into an HTTP header
// (E-51). Unknown members are ignored. No error ever contains a
// token.
func ParseTokenResponse(status int, contentType string, body []byte) (TokenResponse, error) {
	o, decErr := decodeResponseObject(docToken, classifyBody(contentType, body, true), body, tokenMembers)
	if decErr == nil {
		if e := oauthErrorFrom(o, status, tokenSecretMembers); e != nil {
			return TokenResponse{}, e
		}
	}
	if status < 200 || status > 299 {
		return TokenResponse{}, statusError(status)
	}
	if decErr != nil {
		return TokenResponse{}, decErr
	}
	bad := func(field, reason string) (TokenResponse, error) {
		return TokenResponse{}, &MalformedError{Document: docToken, Field: field, Reason: reason}
	}

	var t TokenResponse
	at, ok, err := o.strMax("access_token", maxTokenLen)
	if err != nil {
		return TokenResponse{}, err
	}
	if !ok || at == "" {
		return bad("access_token", "missing")
	}
	// RFC 6749 Appendix A.12 allows VSCHAR; a space, a control character
	// or a non-ASCII byte would break or inject into the Authorization
	// header (RFC 6750 §2.1, E-51).
	if !isVisibleASCII(at, false) {
		return bad("access_token", "contains characters other than visible ascii")
	}
	t.AccessToken = at

	tt, ok, err := o.str("token_type")
	if err != nil {
		return TokenResponse{}, err
	}
	switch {
	case !ok || tt == "": // RFC 6749 §5.1: REQUIRED (D-11: strict)
		return bad("token_type", "missing")
	case strings.EqualFold(tt, "bearer"):
		t.TokenType = "Bearer" // RFC 6750 §4
	case strings.EqualFold(tt, "dpop"):
		t.TokenType = "DPoP" // RFC 9449 §5
	default: // RFC 6749 §7.1: never use a token of a type not understood
		return bad("token_type", "neither bearer nor dpop")
	}

	if t.ExpiresIn, t.HasExpiresIn, err = expiresIn(o); err != nil {
		return TokenResponse{}, err
	}

	rt, _, err := o.strMax("refresh_token", maxTokenLen)
	if err != nil {
		return TokenResponse{}, err
	}
	if rt != "" && !isVisibleASCII(rt, true) { // RFC 6749 Appendix A.17: 1*VSCHAR
		return bad("refresh_token", "contains characters other than visible ascii")
	}
	t.RefreshToken = rt

	// E-15: scope as an array is a type error. Q-31: its content is not
	// interpreted here.
	if t.Scope, _, err = o.str("scope"); err != nil {
		return TokenResponse{}, err
	}
	if t.IDToken, _, err = o.strMax("id_token", maxIDTokenLen); err != nil {
		return TokenResponse{}, err
	}
	if t.IssuedTokenType, _, err = o.str("issued_token_type"); err != nil {
		return TokenResponse{}, err
	}
	return t, nil
}

// expiresIn reads expires_in: a JSON integer, or a string of ASCII digits
// Entra's v1 endpoint sends "3599"), between 0 and one year.
// Negative, fractional, exponent and other forms are refused (D-11, E-50);
// null is absent, which means an unknown lifetime.
func expiresIn(o jsonObject) (int64, bool, error) {
	bad := func(reason string) (int64, bool, error) {
		return 0, false, &MalformedError{Document: docToken, Field: "expires_in", Reason: reason}
	}
	if _, ok := o.raw("expires_in"); !ok {
		return 0, false, nil
	}
	var n int64
	if o.isString("expires_in") {
		s, _, err := o.str("expires_in")
		if err != nil {
			return 0, false, err
		}
		if s == "" || len(s) > 19 || strings.Trim(s, "0123456789") != "" {
			return bad("not a non-negative integer")
		}
		n, err = strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad("not a non-negative integer")
		}
	} else {
		v, _, err := o.integer("expires_in")
		if err != nil {
			return bad("not a non-negative integer")
		}
		n = v
	}
	if n < 0 {
		return bad("negative")
	}
	if n > maxExpiresIn {
		return bad("longer than one year")
	}
	return n, true, nil
}

// isVisibleASCII reports whether s is made of %x21-7E, plus SP when
// allowSpace (RFC 6749 Appendix A VSCHAR is %x20-7E).
func isVisibleASCII(s string, allowSpace bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x21 || c > 0x7E) && !(allowSpace && c == ' ') {
			return false
		}
	}
	return true
}

// String shows the response with its tokens redacted (design §4.10), so a
// TokenResponse printed by mistake leaks nothing.
func (t TokenResponse) String() string {
	return fmt.Sprintf("TokenResponse{AccessToken:%s TokenType:%q RefreshToken:%s Scope:%q IDToken:%s ExpiresIn:%d HasExpiresIn:%v IssuedTokenType:%q}",
		redactedIf(t.AccessToken), t.TokenType, redactedIf(t.RefreshToken), t.Scope, redactedIf(t.IDToken), t.ExpiresIn, t.HasExpiresIn, t.IssuedTokenType)
}

// GoString is String, for %#v.
func (t TokenResponse) GoString() string { return t.String() }

// redactedIf prints a secret as "[redacted]", or "" when there is none.
func redactedIf(secret string) string {
	if secret == "" {
		return `""`
	}
	return "[redacted]"
}
