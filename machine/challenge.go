package machine

import (
	"strconv"
	"strings"
)

// WWW-Authenticate parsing, by the grammar of RFC 9110 §11.6.1 and §11.2:
//
//	WWW-Authenticate = #challenge
//	challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//	auth-param = token BWS "=" BWS ( token / quoted-string )
//	token68    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//
// A comma separates both challenges and the parameters of one challenge, so
// the parser decides by looking ahead: after a comma, "token BWS =" starts
// another parameter, any other token starts a new challenge (B-9110-04).
// Only values the grammar yields are parameters: "scope=admin" inside a
// quoted error_description stays data (E-31). Regular expressions and
// splitting on spaces or commas get these cases wrong (E-27, E-28).

// Challenge is one authentication challenge.
type Challenge struct {
	Scheme  string            // lower-cased auth-scheme, e.g. "bearer", "dpop"
	Params  map[string]string // lower-cased parameter names -> unquoted values (quoted-pair escapes removed); nil when none
	Token68 string            // when the challenge carries a token68 instead of params
}

// Bounds on the work one header may cause (E-02, E-17).
const (
	maxChallengeHeader = 16 << 10 // bytes over all values
	maxChallenges      = 64
	maxChallengeParams = 64
)

// ParseChallenges parses the values of every WWW-Authenticate field of a
// response, in order, into their challenges (RFC 9110 §11.6.1: the field
// may repeat and one value may hold several challenges). Empty list
// elements are ignored (RFC 9110 §5.6.1). It fails with *ChallengeError on
// any deviation from the grammar — an unterminated quoted string, a
// parameter without a value, a parameter repeated within one challenge
// (RFC 9110 §11.2, E-26) — or when the header exceeds 16 KiB, 64
// challenges or 64 parameters in one challenge. A caller that gets an error
// falls back to well-known discovery (E-28).
func ParseChallenges(headerValues []string) ([]Challenge, error) {
	total := 0
	for _, v := range headerValues {
		total += len(v)
	}
	if total > maxChallengeHeader {
		return nil, &ChallengeError{Reason: "header longer than " + strconv.Itoa(maxChallengeHeader) + " bytes"}
	}
	var out []Challenge
	for _, v := range headerValues {
		p := challengeParser{s: v}
		cs, err := p.parse(len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}

// BearerChallenge returns the first challenge whose scheme is bearer or
// dpop (MCP clients treat a DPoP challenge like Bearer: RFC 9728 §5.1 lets
// resource_metadata appear in either, B-9728-12), and whether one was
// found.
func BearerChallenge(cs []Challenge) (Challenge, bool) {
	for _, c := range cs {
		if c.Scheme == "bearer" || c.Scheme == "dpop" {
			return c, true
		}
	}
	return Challenge{}, false
}

// challengeParser walks one field value.
type challengeParser struct {
	s string
	i int
}

func (p *challengeParser) fail(reason string) error {
	return &ChallengeError{Reason: reason + " at offset " + strconv.Itoa(p.i)}
}

func (p *challengeParser) eof() bool { return p.i >= len(p.s) }

// skipOWS skips optional whitespace (RFC 9110 §5.6.3: SP / HTAB).
func (p *challengeParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// skipListSeparators skips OWS and empty list elements: ", ,".
func (p *challengeParser) skipListSeparators() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == ',') {
		p.i++
	}
}

// token reads 1*tchar (RFC 9110 §5.6.2); "" when none.
func (p *challengeParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTchar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *challengeParser) parse(already int) ([]Challenge, error) {
	var out []Challenge
	p.skipListSeparators()
	for !p.eof() {
		if already+len(out) >= maxChallenges {
			return nil, &ChallengeError{Reason: "more than " + strconv.Itoa(maxChallenges) + " challenges"}
		}
		c, err := p.challenge()
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		p.skipListSeparators()
	}
	return out, nil
}

// challenge reads one challenge starting at an auth-scheme and stops
// before the comma (or end) that follows it.
func (p *challengeParser) challenge() (Challenge, error) {
	scheme := p.token()
	if scheme == "" {
		return Challenge{}, p.fail("expected an auth-scheme")
	}
	c := Challenge{Scheme: strings.ToLower(scheme)} // RFC 9110 §11.1: case-insensitive
	if p.eof() || p.s[p.i] == ',' {
		return c, nil
	}
	if p.s[p.i] != ' ' && p.s[p.i] != '\t' {
		return Challenge{}, p.fail("expected a space after the auth-scheme")
	}
	p.skipOWS()
	if !p.eof() && p.s[p.i] == ',' {
		// #auth-param allows empty list elements (RFC 9110 §5.6.1):
		// "Bearer ,, realm=x" has parameters; "Bearer , Basic" is two
		// challenges.
		save := p.i
		p.skipListSeparators()
		if p.eof() || !p.startsAuthParam() {
			p.i = save
			return c, nil
		}
	}
	if p.eof() {
		return c, nil
	}
	if t, ok := p.token68(); ok {
		c.Token68 = t
		return c, nil
	}
	for {
		if len(c.Params) >= maxChallengeParams {
			return Challenge{}, &ChallengeError{Reason: "more than " + strconv.Itoa(maxChallengeParams) + " parameters in one challenge"}
		}
		name, value, err := p.authParam()
		if err != nil {
			return Challenge{}, err
		}
		if c.Params == nil {
			c.Params = make(map[string]string)
		}
		if _, dup := c.Params[name]; dup { // RFC 9110 §11.2, RFC 6750 §3, E-26
			return Challenge{}, &ChallengeError{Reason: "parameter " + strconv.Quote(name) + " repeated in one challenge"}
		}
		c.Params[name] = value
		p.skipOWS()
		if p.eof() {
			return c, nil
		}
		if p.s[p.i] != ',' {
			return Challenge{}, p.fail("expected a comma after a parameter")
		}
		// Look past the comma(s): another parameter of this challenge, or
		// the next challenge?
		save := p.i
		p.skipListSeparators()
		if p.eof() || !p.startsAuthParam() {
			p.i = save
			return c, nil
		}
	}
}

// startsAuthParam reports whether the input at p.i is "token BWS =" (and
// not "token68" or "scheme SP"), without consuming it.
func (p *challengeParser) startsAuthParam() bool {
	save := p.i
	defer func() { p.i = save }()
	if p.token() == "" {
		return false
	}
	p.skipOWS()
	return !p.eof() && p.s[p.i] == '='
}

// token68 reads a token68 when it is the whole challenge body: followed by
// OWS and then a comma or the end. Otherwise it consumes nothing.
func (p *challengeParser) token68() (string, bool) {
	start := p.i
	j := p.i
	for j < len(p.s) && isToken68Char(p.s[j]) {
		j++
	}
	if j == start {
		return "", false
	}
	for j < len(p.s) && p.s[j] == '=' {
		j++
	}
	end := j
	for j < len(p.s) && (p.s[j] == ' ' || p.s[j] == '\t') {
		j++
	}
	if j < len(p.s) && p.s[j] != ',' {
		return "", false
	}
	p.i = end
	return p.s[start:end], true
}

// authParam reads token BWS "=" BWS ( token / quoted-string ).
func (p *challengeParser) authParam() (name, value string, err error) {
	name = p.token()
	if name == "" {
		return "", "", p.fail("expected a parameter name")
	}
	p.skipOWS() // BWS
	if p.eof() || p.s[p.i] != '=' {
		return "", "", p.fail("expected '=' after a parameter name")
	}
	p.i++
	p.skipOWS() // BWS
	if p.eof() {
		return "", "", p.fail("parameter without a value")
	}
	if p.s[p.i] == '"' {
		value, err = p.quotedString()
		if err != nil {
			return "", "", err
		}
	} else {
		value = p.token()
		if value == "" {
			return "", "", p.fail("parameter without a value")
		}
	}
	// RFC 9110 §11.2: parameter names are case-insensitive; values are not.
	return strings.ToLower(name), value, nil
}

// quotedString reads a quoted-string and returns its content with the
// quoted-pair escapes removed (RFC 9110 §5.6.4: "\x" is "x").
func (p *challengeParser) quotedString() (string, error) {
	p.i++ // the opening DQUOTE
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", p.fail("unterminated quoted string")
			}
			e := p.s[p.i+1]
			if !isQuotedPairChar(e) {
				return "", p.fail("invalid quoted-pair")
			}
			b.WriteByte(e)
			p.i += 2
		case isQdtext(c):
			b.WriteByte(c)
			p.i++
		default:
			return "", p.fail("control character in quoted string")
		}
	}
	return "", p.fail("unterminated quoted string")
}

// isTchar: RFC 9110 §5.6.2.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isToken68Char: RFC 9110 §11.2, without the trailing "=" padding.
func isToken68Char(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

// isQdtext: HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text (RFC 9110 §5.6.4).
func isQdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (0x23 <= c && c <= 0x5B) || (0x5D <= c && c <= 0x7E) || c >= 0x80
}

// isQuotedPairChar: HTAB / SP / VCHAR / obs-text (RFC 9110 §5.6.4).
func isQuotedPairChar(c byte) bool {
	return c == '\t' || c == ' ' || (0x21 <= c && c <= 0x7E) || c >= 0x80
}
