package machine

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"time"

	"github.com/mcpauth/mcpauth/effects"
)

const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// tokenRequest sends a grant to the validated issuer's token endpoint with
// the client's authentication (RFC 6749 §2.3, §3.2) and, when tokens are
// bound to a key, a DPoP proof (RFC 9449 §5). Secrets go nowhere else
// (design §4.2). The form is kept so a DPoP nonce challenge can be answered
// once with the same request.
func (st *step) tokenRequest(p effects.Purpose, form url.Values) error {
	st.s.Attempt.TokenForm = form.Encode()
	return st.sendTokenRequest(p, st.s.Discovery.Authorization.TokenEndpoint, form)
}

func (st *step) sendTokenRequest(p effects.Purpose, endpoint string, form url.Values) error {
	header := map[string][]string{
		"Accept":       {"application/json"}, // some servers answer form-encoded otherwise
		"Content-Type": {"application/x-www-form-urlencoded"},
	}
	var sign []effects.Signed
	var supply []effects.Supplied
	if err := st.authenticateClient(p, header, form, &sign); err != nil {
		return st.fail(err)
	}
	if st.usesDPoP() && p != effects.PurposeIdentityExchange {
		proof, err := st.proof("POST", endpoint, "")
		if err != nil {
			return st.fail(err)
		}
		sign = append(sign, effects.Signed{JWT: proof, Header: "DPoP"})
	}
	switch {
	case p == effects.PurposeIdentityExchange:
		supply = append(supply, effects.Supplied{Source: effects.SourceIDToken, Form: "subject_token"})
	case st.s.Attempt.Grant == GrantWorkloadIdentity && p != effects.PurposeRefresh:
		supply = append(supply, effects.Supplied{Source: effects.SourceWorkloadToken, Form: "assertion"})
	}
	st.fetch(p, "POST", endpoint, header, []byte(form.Encode()))
	f := st.out[len(st.out)-1].(effects.Fetch)
	f.Sign, f.Supply = sign, supply
	st.out[len(st.out)-1] = f
	return nil
}

// authenticateClient adds the client's authentication to a token request.
func (st *step) authenticateClient(p effects.Purpose, header map[string][]string, form url.Values, sign *[]effects.Signed) error {
	if p == effects.PurposeIdentityExchange {
		// SEP-990: the identity provider knows the client by its own id.
		if id := st.s.Config.IdentityProvider.ClientID; id != "" {
			form.Set("client_id", id)
		}
		return nil
	}
	c := st.s.Client
	switch c.AuthMethod {
	case "client_secret_basic":
		// RFC 6749 §2.3.1: id and secret are form-encoded before Basic; with
		// Basic the client_id is not repeated in the body.
		cred := url.QueryEscape(c.ClientID) + ":" + url.QueryEscape(c.ClientSecret)
		header["Authorization"] = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(cred))}
	case "client_secret_post":
		form.Set("client_id", c.ClientID)
		form.Set("client_secret", c.ClientSecret)
	case "private_key_jwt":
		// RFC 7523 §2.2 and §3: iss = sub = client id, aud = the issuer;
		// the assertion identifies the client, so client_id is not sent.
		jti, err := randomToken(st.env.Rand, 16)
		if err != nil {
			return err
		}
		now := st.env.Now.Unix()
		claims, err := json.Marshal(clientAssertion{
			Iss: c.ClientID, Sub: c.ClientID, Aud: st.s.Discovery.Authorization.Issuer,
			Iat: now, Exp: now + int64(5*time.Minute/time.Second), Jti: jti,
		})
		if err != nil {
			return err
		}
		form.Set("client_assertion_type", clientAssertionType)
		*sign = append(*sign, effects.Signed{
			JWT:  effects.JWT{KeyID: c.KeyID, Alg: c.KeyAlg, Type: "JWT", Claims: claims},
			Form: "client_assertion",
		})
	default: // none: a public client names itself (RFC 6749 §4.1.3)
		if c.ClientID != "" {
			form.Set("client_id", c.ClientID)
		}
	}
	return nil
}

type clientAssertion struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
	Jti string `json:"jti"`
}

// retryWithNonce answers a use_dpop_nonce refusal of a token request once
// (RFC 9449 §8): the same request with a fresh proof carrying the nonce.
// It reports false when the refusal is not that, or was already answered.
func (st *step) retryWithNonce(p effects.Purpose, r FetchResponse, err error) (bool, error) {
	oe, ok := err.(*OAuthError)
	if !ok || oe.Code != "use_dpop_nonce" || st.s.Attempt.NonceRetried || !st.usesDPoP() || nonceOf(r.Header) == "" {
		return false, nil
	}
	st.s.Attempt.NonceRetried = true
	form, perr := url.ParseQuery(st.s.Attempt.TokenForm)
	if perr != nil {
		return true, st.fail(perr)
	}
	return true, st.sendTokenRequest(p, st.s.Discovery.Authorization.TokenEndpoint, form)
}
