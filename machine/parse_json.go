package machine

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Strict reading of the JSON objects servers send (metadata documents,
// token and registration responses).
//
// Go's encoding/json is the wrong tool on its own for untrusted OAuth
// documents (spec-checklist §4.2): it keeps the LAST of duplicate members
// (E-13: {"issuer":"https://good","issuer":"https://evil"}), matches member
// names to struct fields case-insensitively although RFC 8414 and RFC 9728
// names are case-sensitive (E-14: "Issuer"), and silently replaces invalid
// UTF-8 (E-11). So documents are first split into their members, exactly,
// and each member the parser uses is read with its own type check.

// Bounds for documents (E-02, E-17; spec-checklist "Suggested hard limits").
const (
	maxJSONBody  = 1 << 20 // bytes; drivers cap reads lower, this is the last line
	maxJSONDepth = 32      // nesting of objects and arrays
	maxJSONList  = 256     // elements of any array member a parser reads
	maxJSONText  = 8 << 10 // bytes of any string member a parser reads (URL ≤ 8 KiB)
)

// jsonObject is the members of one top-level JSON object, by exact name.
type jsonObject struct {
	doc     string                     // MalformedError.Document
	members map[string]json.RawMessage // exact member name -> raw value
}

// decodeJSONObject splits body into the members of one JSON object. It
// refuses what is not exactly one object (E-11, E-12), a body over 1 MiB, a
// nesting deeper than 32, invalid UTF-8, a duplicate member name (E-13),
// and a member whose name differs only by case from one of known, the
// names the caller reads (E-14). Other members are kept and ignored (RFC
// 8414 §3.2, RFC 9728 §3.2, RFC 6749 §5.1: unknown members are ignored).
func decodeJSONObject(doc string, body []byte, known []string) (jsonObject, error) {
	bad := func(reason string) (jsonObject, error) {
		return jsonObject{}, &MalformedError{Document: doc, Reason: reason}
	}
	if len(body) > maxJSONBody {
		return bad("body exceeds " + strconv.Itoa(maxJSONBody) + " bytes")
	}
	if !utf8.Valid(body) {
		return bad("body is not valid utf-8")
	}
	// json.Valid rejects trailing data ({}{}), a BOM, NaN and the like.
	if !json.Valid(body) {
		return bad("body is not valid json")
	}
	if jsonDepth(body) > maxJSONDepth {
		return bad("json nesting deeper than " + strconv.Itoa(maxJSONDepth))
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return bad("body is not a json object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if _, err := dec.Token(); err != nil { // the opening '{'
		return bad("body is not valid json")
	}
	members := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("body is not valid json")
		}
		name, ok := tok.(string)
		if !ok {
			return bad("body is not valid json")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return bad("body is not valid json")
		}
		// Names are compared after JSON unescaping, code point by code
		// point (RFC 8414 §4, B-8414-07): "iss\u0075er" is "issuer".
		if _, dup := members[name]; dup {
			return jsonObject{}, &MalformedError{Document: doc, Field: quoteField(name, known), Reason: "duplicate member"}
		}
		members[name] = raw
	}
	for name := range members {
		for _, k := range known {
			if name != k && equalFoldASCII(name, k) {
				return jsonObject{}, &MalformedError{Document: doc, Field: k, Reason: "member name differs only by case from " + k}
			}
		}
	}
	return jsonObject{doc: doc, members: members}, nil
}

// quoteField names a member in an error: a member the parser knows by its
// name, any other as "a member" (its name came from the server and might be
// anything, even a secret in a hostile response).
func quoteField(name string, known []string) string {
	for _, k := range known {
		if name == k {
			return k
		}
	}
	return "(unknown member)"
}

// jsonDepth returns the deepest nesting of objects and arrays in a valid
// JSON text. Strings are skipped with their escapes.
func jsonDepth(b []byte) int {
	depth, maxDepth := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > maxDepth {
				maxDepth = depth
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return maxDepth
}

// equalFoldASCII is strings.EqualFold restricted to ASCII letters: member
// names that encoding/json would confuse are ASCII in every spec.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// raw returns the member's raw value, or false when it is absent or null:
// an optional member sent as null is absent (Q-25, Entra's
// "tenant_region_scope": null).
func (o jsonObject) raw(name string) (json.RawMessage, bool) {
	r, ok := o.members[name]
	if !ok || string(r) == "null" {
		return nil, false
	}
	return r, true
}

func (o jsonObject) typeError(name, want string) error {
	return &MalformedError{Document: o.doc, Field: name, Reason: "not " + want}
}

// str reads a string member of at most maxJSONText bytes.
func (o jsonObject) str(name string) (string, bool, error) {
	return o.strMax(name, maxJSONText)
}

// strMax reads a string member of at most limit bytes. The value is never
// put into an error.
func (o jsonObject) strMax(name string, limit int) (string, bool, error) {
	r, ok := o.raw(name)
	if !ok {
		return "", false, nil
	}
	if len(r) == 0 || r[0] != '"' {
		return "", false, o.typeError(name, "a string")
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return "", false, o.typeError(name, "a string")
	}
	if len(s) > limit {
		return "", false, &MalformedError{Document: o.doc, Field: name, Reason: "longer than " + strconv.Itoa(limit) + " bytes"}
	}
	return s, true, nil
}

// strs reads an array of strings (E-15: a bare string where an array is
// required is a type error, never a one-element list).
func (o jsonObject) strs(name string) ([]string, bool, error) {
	r, ok := o.raw(name)
	if !ok {
		return nil, false, nil
	}
	if len(r) == 0 || r[0] != '[' {
		return nil, false, o.typeError(name, "an array of strings")
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(r, &elems); err != nil {
		return nil, false, o.typeError(name, "an array of strings")
	}
	if len(elems) > maxJSONList {
		return nil, false, &MalformedError{Document: o.doc, Field: name, Reason: "more than " + strconv.Itoa(maxJSONList) + " elements"}
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		var s string
		if len(e) == 0 || e[0] != '"' || json.Unmarshal(e, &s) != nil {
			return nil, false, o.typeError(name, "an array of strings")
		}
		if len(s) > maxJSONText {
			return nil, false, &MalformedError{Document: o.doc, Field: name, Reason: "element longer than " + strconv.Itoa(maxJSONText) + " bytes"}
		}
		out = append(out, s)
	}
	return out, true, nil
}

// boolean reads a JSON true or false; "true" as a string is a type error
// (E-39, strict).
func (o jsonObject) boolean(name string) (bool, bool, error) {
	r, ok := o.raw(name)
	if !ok {
		return false, false, nil
	}
	switch string(r) {
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	}
	return false, false, o.typeError(name, "a boolean")
}

// integer reads a JSON number that is an integer ("3600", not "3600.0",
// "36e2" or "\"3600\"").
func (o jsonObject) integer(name string) (int64, bool, error) {
	r, ok := o.raw(name)
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(string(r), 10, 64)
	if err != nil {
		return 0, false, o.typeError(name, "an integer")
	}
	return n, true, nil
}

// isString reports whether the member is present as a JSON string.
func (o jsonObject) isString(name string) bool {
	r, ok := o.raw(name)
	return ok && len(r) > 0 && r[0] == '"'
}

// Response bodies of the token and registration endpoints come as JSON or,
// from some servers, as a form (Q-17: GitHub without Accept:
// application/json). They are read into the same member view, so the
// typed helpers and the duplicate and case checks apply to both.

type bodyKind int

const (
	bodyOther bodyKind = iota // HTML, XML, anything else: never parsed (E-08)
	bodyJSON
	bodyForm
)

// classifyBody reads a Content-Type leniently: the value is split on
// "," (GitHub once sent "application/json, application/json"), parameters
// are ignored, and any application/json or +json part means JSON. A missing
// or text/plain type is decided by the body's first byte, "{" meaning JSON
// (CyberArk error responses carry no Content-Type); HTML never is.
func classifyBody(contentType string, body []byte, allowForm bool) bodyKind {
	sniff := contentType == ""
	form := false
	for _, part := range strings.Split(contentType, ",") {
		mt, _, _ := strings.Cut(part, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
		switch {
		case mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")):
			return bodyJSON
		case mt == "application/x-www-form-urlencoded":
			form = true
		case mt == "text/plain" || mt == "":
			sniff = true
		}
	}
	if form && allowForm {
		return bodyForm
	}
	if sniff {
		if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && t[0] == '{' {
			return bodyJSON
		}
	}
	return bodyOther
}

// decodeResponseObject reads a response body by its kind.
func decodeResponseObject(doc string, kind bodyKind, body []byte, known []string) (jsonObject, error) {
	switch kind {
	case bodyJSON:
		return decodeJSONObject(doc, body, known)
	case bodyForm:
		return decodeFormObject(doc, body, known)
	}
	return jsonObject{}, &MalformedError{Document: doc, Reason: "body is neither json nor a form"}
}

// decodeFormObject reads an application/x-www-form-urlencoded body (WHATWG
// URL §5.1; RFC 6749 Appendix B) into string members, refusing a repeated
// name (RFC 6749 §3.1) and case variants of known names, as for JSON.
func decodeFormObject(doc string, body []byte, known []string) (jsonObject, error) {
	bad := func(field, reason string) (jsonObject, error) {
		return jsonObject{}, &MalformedError{Document: doc, Field: field, Reason: reason}
	}
	if len(body) > maxJSONBody {
		return bad("", "body exceeds "+strconv.Itoa(maxJSONBody)+" bytes")
	}
	members := make(map[string]json.RawMessage)
	for _, pair := range strings.Split(string(body), "&") {
		pair = strings.TrimRight(pair, "\r\n")
		if pair == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err1 := url.QueryUnescape(rawName)
		value, err2 := url.QueryUnescape(rawValue)
		if err1 != nil || err2 != nil { // the url error would quote the bytes: not reused
			return bad("", "invalid percent-encoding")
		}
		if !utf8.ValidString(name) || !utf8.ValidString(value) {
			return bad("", "body is not valid utf-8")
		}
		if _, dup := members[name]; dup {
			return bad(quoteField(name, known), "duplicate member")
		}
		enc, err := json.Marshal(value)
		if err != nil {
			return bad("", "invalid form body")
		}
		members[name] = enc
	}
	for name := range members {
		for _, k := range known {
			if name != k && equalFoldASCII(name, k) {
				return bad(k, "member name differs only by case from "+k)
			}
		}
	}
	return jsonObject{doc: doc, members: members}, nil
}
