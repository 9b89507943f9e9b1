package machine

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"

	"github.com/mcpauth/mcpauth/effects"
)

// usesDPoP reports whether tokens from the validated authorization server
// are bound to a key (RFC 9449): always when configured so, and by default
// when the server advertises the configured algorithm.
func (st *step) usesDPoP() bool {
	switch st.s.Config.DPoP {
	case DPoPAlways:
		return true
	case DPoPNever:
		return false
	}
	return slices.Contains(st.s.Discovery.Authorization.DPoPSigningAlgValuesSupported, st.s.Config.DPoPAlg)
}

// dpopClaims are the claims of a DPoP proof (RFC 9449 §4.2).
type dpopClaims struct {
	Jti   string `json:"jti"`
	Htm   string `json:"htm,omitempty"`
	Htu   string `json:"htu,omitempty"`
	Iat   int64  `json:"iat"`
	Nonce string `json:"nonce,omitempty"`
	Ath   string `json:"ath,omitempty"`
}

// proof describes a fresh DPoP proof for one request: a new jti every
// time, htu without query or fragment, the server's latest nonce, and for
// resource requests ath, the hash of the access token it accompanies.
func (st *step) proof(method, target, accessToken string) (effects.JWT, error) {
	jti, err := randomToken(st.env.Rand, 16)
	if err != nil {
		return effects.JWT{}, err
	}
	c := dpopClaims{Jti: jti, Iat: st.env.Now.Unix()}
	if method != "" {
		c.Htm, c.Htu = method, HTU(target)
	}
	if origin, err := originOf(target); err == nil {
		c.Nonce = st.s.Nonces[origin]
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		c.Ath = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	claims, err := json.Marshal(c)
	if err != nil {
		return effects.JWT{}, err
	}
	return effects.JWT{KeyID: st.s.Config.DPoPKeyID, Alg: st.s.Config.DPoPAlg, Type: "dpop+jwt", EmbedJWK: true, Claims: claims}, nil
}

// HTU is the DPoP htu of a target URI: without query and fragment (RFC
// 9449 §4.2). Drivers use it for effects.JWT.BindRequest.
func HTU(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		base, _, _ := strings.Cut(target, "?")
		return base
	}
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	return u.String()
}

// nonceOf returns the DPoP-Nonce header of a response.
func nonceOf(h map[string][]string) string {
	if v := h["Dpop-Nonce"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// rememberNonce keeps the latest nonce a server sent (RFC 9449 §8.2: a
// server may send a new one with any response).
func (st *step) rememberNonce(server, nonce string) {
	if nonce == "" {
		return
	}
	origin, err := originOf(server)
	if err != nil || st.s.Nonces[origin] == nonce {
		return
	}
	m := make(map[string]string, len(st.s.Nonces)+1)
	for k, v := range st.s.Nonces {
		m[k] = v
	}
	m[origin] = nonce
	st.s.Nonces = m
}

// protectedAuthorization is the credential of a request to the resource:
// Bearer (RFC 6750 §2.1), or DPoP with a proof bound to the token.
func (st *step) protectedAuthorization(id effects.RequestID) (map[string][]string, *effects.JWT, error) {
	t := st.s.Credential
	if t.DPoPKeyID == "" {
		// Built once per credential and shared by every send: effects are
		// read-only to drivers.
		if st.s.HeaderFor != st.s.Generation || st.s.Header == nil {
			st.s.Header = map[string][]string{"Authorization": {"Bearer " + t.AccessToken}}
			st.s.HeaderFor = st.s.Generation
		}
		return st.s.Header, nil, nil
	}
	// The driver binds the proof to the request it sends (htm, htu); the
	// machine decides the rest: a fresh jti, the token's hash, the nonce.
	p, err := st.proof("", st.s.Config.Server, t.AccessToken)
	if err != nil {
		return nil, nil, err
	}
	p.BindRequest = true
	return map[string][]string{"Authorization": {"DPoP " + t.AccessToken}}, &p, nil
}
