package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// revoke asks the authorization server to revoke token (RFC 7009 §2.1),
// authenticating as the client does at the token endpoint: the machine
// builds the request, the driver completes it (a signed client assertion)
// and the requester sends it (HTTPS unless loopback, no redirects for a
// request that carries secrets, bounded bodies). The server answers 200
// both for a revoked token and for one it did not know (§2.2).
func revoke(ctx context.Context, r driver.Requester, signer driver.Signer, d effects.Discovery, c effects.Client, token, hint string) error {
	f, err := machine.RevocationRequest(d, c, token, hint, machine.Env{Now: time.Now(), Rand: rand.Reader})
	if err != nil {
		return err
	}
	if f, err = driver.CompleteFetch(ctx, f, signer, nil); err != nil {
		return err
	}
	resp, err := r.Fetch(ctx, f)
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
