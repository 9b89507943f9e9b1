package testworld

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// oauthError is an RFC 6749 §5.2 error response (also used by RFC 7591 §3.2.2
// and RFC 7009 §2.2.1). Descriptions are fixed text: they never echo input.
type oauthError struct {
	status int
	code   string
	desc   string
	// basic: the client tried HTTP Basic, so a 401 must carry
	// WWW-Authenticate: Basic (RFC 6749 §5.2 invalid_client).
	basic bool
}

func (e *oauthError) Error() string { return e.code + ": " + e.desc }

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: desc}
}

func errInvalidClient(desc string, basic bool) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: desc, basic: basic}
}

func errInvalidGrant(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_grant", desc: desc}
}

func errInvalidTarget(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_target", desc: desc}
}

func errInvalidScope(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: desc}
}

func errUnauthorizedClient(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", desc: desc}
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	if e.basic && e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="testworld"`)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.desc})
}

// writeJSON writes v with the no-store headers RFC 6749 §5.1 requires on
// token responses; they are harmless on every other JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "testworld: marshal: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeRawJSON(w, status, b)
}

func writeRawJSON(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// maxFormBytes bounds every request body the AS reads.
const maxFormBytes = 64 << 10

// readForm parses a POST body as application/x-www-form-urlencoded (RFC 6749
// §4.1.3 "using the application/x-www-form-urlencoded format"), ignoring the
// query string: credentials in a URL are not accepted. A parameter given twice
// is invalid_request (RFC 6749 §3.1/§3.2), except resource, which RFC 8707
// allows repeated and which the caller rejects with invalid_target.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errInvalidRequest("Content-Type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, errInvalidRequest("malformed form body")
	}
	for k, vs := range r.PostForm {
		if len(vs) > 1 && k != "resource" {
			return nil, errInvalidRequest(fmt.Sprintf("parameter %q repeated", k))
		}
	}
	return r.PostForm, nil
}

// param returns a single parameter; RFC 6749 §3.1: "Parameters sent without
// a value MUST be treated as if they were omitted from the request."
func param(v url.Values, k string) string { return v.Get(k) }

// singleResource extracts the RFC 8707 resource: exactly one, non-empty.
func singleResource(v url.Values) (string, *oauthError) {
	rs := v["resource"]
	switch {
	case len(rs) == 0 || rs[0] == "":
		return "", errInvalidTarget("resource parameter required (RFC 8707)")
	case len(rs) > 1:
		return "", errInvalidTarget("only one resource per request is supported")
	}
	return rs[0], nil
}

// parseScope splits a scope parameter (RFC 6749 §3.3), dropping duplicates
// and keeping order, and validates each scope-token's characters.
func parseScope(s string) ([]string, *oauthError) {
	var out []string
	for _, tok := range strings.Split(s, " ") {
		if tok == "" {
			continue
		}
		for _, c := range tok {
			if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
				return nil, errInvalidScope("scope contains an invalid character")
			}
		}
		if !slices.Contains(out, tok) {
			out = append(out, tok)
		}
	}
	return out, nil
}
