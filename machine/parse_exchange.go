package machine

// ExchangedToken is an RFC 8693 §2.2.1 token exchange response, as far as
// enterprise-managed authorization uses it (SEP-990).
type ExchangedToken struct {
	Token           string // the issued token (an ID-JAG): a secret
	IssuedTokenType string
}

// tokenTypeIDJAG is the token type SEP-990 asks the identity provider for.
const tokenTypeIDJAG = "urn:ietf:params:oauth:token-type:id-jag"

// ParseTokenExchangeResponse reads a token exchange answer. Unlike an
// access token response its token_type may be N_A (RFC 8693 §2.2.1: the
// issued token is not an access token); issued_token_type is required and
// must be the ID-JAG type that was asked for.
func ParseTokenExchangeResponse(status int, contentType string, body []byte) (ExchangedToken, error) {
	const doc = "token exchange response"
	o, decErr := decodeResponseObject(doc, classifyBody(contentType, body, true), body, tokenMembers)
	if decErr == nil {
		if e := oauthErrorFrom(o, status, tokenSecretMembers); e != nil {
			return ExchangedToken{}, e
		}
	}
	if status < 200 || status > 299 {
		return ExchangedToken{}, statusError(status)
	}
	if decErr != nil {
		return ExchangedToken{}, decErr
	}
	at, ok, err := o.strMax("access_token", maxTokenLen)
	if err != nil {
		return ExchangedToken{}, err
	}
	if !ok || at == "" || !isVisibleASCII(at, false) {
		return ExchangedToken{}, &MalformedError{Document: doc, Field: "access_token", Reason: "missing or not visible ascii"}
	}
	itt, _, err := o.str("issued_token_type")
	if err != nil {
		return ExchangedToken{}, err
	}
	if itt != tokenTypeIDJAG {
		return ExchangedToken{}, &MalformedError{Document: doc, Field: "issued_token_type", Reason: "not " + tokenTypeIDJAG}
	}
	return ExchangedToken{Token: at, IssuedTokenType: itt}, nil
}
