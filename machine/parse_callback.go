package machine

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// The authorization response that comes back to the redirect URI (RFC 6749
// §4.1.2, §4.1.2.1; RFC 9207 §2).

// CallbackParams is the query of an authorization response, form-decoded
// once and otherwise untouched. Code and State are secrets.
type CallbackParams struct {
	Code, State, Iss, Error, ErrorDescription, ErrorURI string
	HasIss                                              bool
}

// maxCallbackQuery bounds the query (E-44: huge error_description).
const maxCallbackQuery = 16 << 10

// callbackKnown are the parameters the client reads, for naming them in
// errors; other names are never printed (they come from the query).
var callbackKnown = []string{"code", "state", "iss", "error", "error_description", "error_uri"}

// ParseCallbackQuery parses the raw query of the redirect URI. Any
// parameter repeated is refused (RFC 6749 §3.1, E-43: "state=a&state=b"),
// as are a response with neither code nor error and one with both (E-44).
// A parameter with an empty value counts as omitted (RFC 6749 §3.1). Values
// are form-decoded once, with no further normalisation: iss is compared
// byte for byte (RFC 9207 §2.4, A-AUTHZ-07). Checking state and iss is the
// flow's job. Errors are *MalformedError and never contain a value.
func ParseCallbackQuery(rawQuery string) (CallbackParams, error) {
	bad := func(field, reason string) (CallbackParams, error) {
		return CallbackParams{}, &MalformedError{Document: docAuthorization, Field: field, Reason: reason}
	}
	if len(rawQuery) > maxCallbackQuery {
		return bad("", "query longer than 16384 bytes")
	}
	seen := make(map[string]bool)
	values := make(map[string]string)
	for _, pair := range strings.Split(rawQuery, "&") {
		if pair == "" {
			continue
		}
		if strings.Contains(pair, ";") {
			// Servers and frameworks disagree on ";" as a separator:
			// refuse instead of guessing (parameter smuggling).
			return bad("", "semicolon in query")
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err1 := url.QueryUnescape(rawName)
		value, err2 := url.QueryUnescape(rawValue)
		if err1 != nil || err2 != nil { // the url error quotes the bytes: not reused
			return bad("", "invalid percent-encoding")
		}
		if !utf8.ValidString(name) {
			return bad("", "parameter name is not valid utf-8")
		}
		if seen[name] {
			return bad(quoteField(name, callbackKnown), "parameter repeated (rfc 6749 §3.1)")
		}
		seen[name] = true
		values[name] = value
	}
	p := CallbackParams{
		Code:             values["code"],
		State:            values["state"],
		Iss:              values["iss"],
		Error:            values["error"],
		ErrorDescription: values["error_description"],
		ErrorURI:         values["error_uri"],
	}
	p.HasIss = p.Iss != ""
	switch {
	case p.Code == "" && p.Error == "":
		return bad("code", "neither code nor error")
	case p.Code != "" && p.Error != "":
		return bad("code", "both code and error")
	}
	return p, nil
}

// String shows the parameters with code and state redacted (design §4.10).
func (p CallbackParams) String() string {
	return fmt.Sprintf("CallbackParams{Code:%s State:%s Iss:%q Error:%q ErrorDescription:%q ErrorURI:%q HasIss:%v}",
		redactedIf(p.Code), redactedIf(p.State), p.Iss, p.Error, p.ErrorDescription, p.ErrorURI, p.HasIss)
}

// GoString is String, for %#v.
func (p CallbackParams) GoString() string { return p.String() }
