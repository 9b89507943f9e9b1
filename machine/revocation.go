package machine

import (
	"errors"
	"net/url"

	"github.com/mcpauth/mcpauth/effects"
)

// PurposeRevocation names token revocation requests (RFC 7009).
const PurposeRevocation effects.Purpose = "revocation"

// RevocationRequest builds the RFC 7009 §2.1 request that revokes token at
// the authorization server d names, authenticated as client c is at the
// token endpoint (private_key_jwt included: the driver signs the assertion).
// hint is "access_token" or "refresh_token". It is pure, like Step: env
// supplies the time and entropy a client assertion needs.
func RevocationRequest(d effects.Discovery, c effects.Client, token, hint string, env Env) (effects.Fetch, error) {
	endpoint := d.Authorization.RevocationEndpoint
	if endpoint == "" {
		return effects.Fetch{}, errors.New("machine: the authorization server does not advertise a revocation endpoint")
	}
	if err := CheckSecureURL(endpoint); err != nil {
		return effects.Fetch{}, err
	}
	st := &step{s: Snapshot{Discovery: d, Client: c, HasClient: true}, env: env}
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	header := map[string][]string{
		"Accept":       {"application/json"},
		"Content-Type": {"application/x-www-form-urlencoded"},
	}
	var sign []effects.Signed
	if err := st.authenticateClient(PurposeRevocation, header, form, &sign); err != nil {
		return effects.Fetch{}, err
	}
	return effects.Fetch{Purpose: PurposeRevocation, Method: "POST", URL: endpoint, Header: header, Body: []byte(form.Encode()), Sign: sign}, nil
}
