package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// purposeRevocation names revocation requests in traces and limits.
const purposeRevocation effects.Purpose = "revocation"

// revoke asks the authorization server to revoke token (RFC 7009 §2.1),
// authenticating as the client does at the token endpoint. It goes through
// the requester (HTTPS unless loopback, no redirects for a request that
// carries secrets, bounded bodies). The server answers 200 both for a
// revoked token and for one it did not know (§2.2).
func revoke(ctx context.Context, r driver.Requester, endpoint string, c effects.Client, token, hint string) error {
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	header := map[string][]string{
		"Content-Type": {"application/x-www-form-urlencoded"},
		"Accept":       {"application/json"},
	}
	switch c.AuthMethod {
	case "client_secret_basic":
		// RFC 6749 §2.3.1: each part form-encoded before joining.
		cred := url.QueryEscape(c.ClientID) + ":" + url.QueryEscape(c.ClientSecret)
		header["Authorization"] = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(cred))}
	case "client_secret_post":
		form.Set("client_id", c.ClientID)
		form.Set("client_secret", c.ClientSecret)
	case "", "none":
		form.Set("client_id", c.ClientID)
	default:
		return fmt.Errorf("the client authenticates with %s, which this command cannot do for revocation", c.AuthMethod)
	}
	resp, err := r.Fetch(ctx, effects.Fetch{
		Purpose: purposeRevocation,
		Method:  http.MethodPost,
		URL:     endpoint,
		Header:  header,
		Body:    []byte(form.Encode()),
	})
	if err != nil {
		return err
	}
	if resp.Status == http.StatusOK {
		return nil
	}
	// An error response has the shape of a token endpoint's (RFC 7009 §2.2.1).
	_, perr := machine.ParseTokenResponse(resp.Status, firstHeader(resp.Header, "Content-Type"), resp.Body)
	if perr == nil {
		perr = fmt.Errorf("http %d", resp.Status)
	}
	return perr
}

func firstHeader(h map[string][]string, k string) string {
	if v := h[http.CanonicalHeaderKey(k)]; len(v) > 0 {
		return v[0]
	}
	return ""
}
