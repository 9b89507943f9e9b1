package main

import (
	"context"
	"flag"
	"net/http"
	"path/filepath"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
)

func logoutCommand() *command {
	return &command{
		name:    "logout",
		args:    "<mcp-url>",
		nargs:   1,
		summary: "revoke the tokens at the authorization server and forget the sign-in",
		about: `
Revokes the stored refresh token and access token at the authorization server when it
advertises a revocation endpoint (RFC 7009), authenticating as the stored client does at its
token endpoint (private_key_jwt with the key file the sign-in was made with, or --client-key),
then deletes the server's tokens, discovery record, settings and DPoP key from the store, and the
client registration too unless another stored sign-in uses the same authorization server.

When revocation fails nothing is deleted, so you can try again; --no-revoke forgets the
sign-in here without asking the server (the tokens then stay valid until they expire). A
credential issued to a workload without a client identity cannot be revoked by it.

--store takes a file or a PostgreSQL DSN (postgres://…).`,
		examples: []string{
			"mcpauth logout https://mcp.example.com/mcp",
			"mcpauth logout --no-revoke https://mcp.example.com/mcp    # the server is gone: just forget it",
			"mcpauth logout --store postgres://mcpauth@db.internal:5432/mcpauth https://mcp.example.com/mcp",
		},
		timeout: 30 * time.Second,
		bind: func(fs *flag.FlagSet) action {
			storeFlag := storePathFlag(fs)
			noRevoke := fs.Bool("no-revoke", false, "do not revoke at the authorization server; only delete the stored records")
			clientKey := fs.String("client-key", "", "the client's private key for private_key_jwt, a PEM `FILE` (default: the one the sign-in was made with)")
			return func(ctx context.Context, inv *invocation) error {
				return runLogout(ctx, inv, *storeFlag, *noRevoke, *clientKey)
			}
		},
	}
}

func runLogout(ctx context.Context, inv *invocation, storeFlag string, noRevoke bool, clientKeyFile string) error {
	e := inv.env
	server, err := serverArg(inv)
	if err != nil {
		return err
	}
	out := e.stdoutConsole()
	st, err := openStore(ctx, e, storeFlag, true)
	if err != nil {
		return err
	}
	defer st.close()
	in, err := loadSignIn(ctx, st, server)
	if err != nil {
		return err
	}
	if !in.hasTokens && !in.hasDisc && !in.hasSettings {
		out.printf("Not signed in to %s: nothing is stored for it in %s.\n", server, st.where)
		return nil
	}

	// RFC 7009: the refresh token first (revoking it should end the whole
	// grant), then the access token, for servers that do not.
	endpoint := in.discovery.Authorization.RevocationEndpoint
	var notes []string
	switch {
	case !in.hasTokens:
		notes = append(notes, "no tokens were stored (an earlier refresh was refused): nothing to revoke")
	case noRevoke:
		notes = append(notes, "not revoked (--no-revoke): the tokens stay valid at the server until they expire")
	case endpoint == "":
		notes = append(notes, "the authorization server offers no revocation endpoint: the tokens stay valid there until they expire")
	case in.tokens.ClientID == "":
		notes = append(notes, "not revoked: the credential was issued to a workload without a client identity, which cannot revoke it; it stays valid until it expires")
	default:
		client := in.client
		if !in.hasClient || client.ClientID != in.tokens.ClientID {
			client = effects.Client{ClientID: in.tokens.ClientID, AuthMethod: "none"}
		}
		var signer driver.Signer
		if client.AuthMethod == "private_key_jwt" {
			s := in.settings
			if clientKeyFile != "" {
				if s.ClientKeyFile, err = filepath.Abs(clientKeyFile); err != nil {
					return usageError("--client-key %s: %v", clientKeyFile, err)
				}
			}
			if s.ClientKeyFile == "" {
				return &failure{
					msg:  "revoking needs the private key of client " + client.ClientID + " (private_key_jwt), and the sign-in names none; nothing was deleted",
					next: "pass --client-key FILE, or forget the sign-in here only with 'mcpauth logout --no-revoke " + server + "'",
				}
			}
			ks := &driver.KeySigner{}
			if _, err := s.addClientKey(ks); err != nil {
				return err
			}
			signer = ks
		}
		w := newWiring(inv)
		defer w.close()
		req := &httpdriver.Requester{Client: &http.Client{Transport: w.rt("oauth")}}
		for _, tok := range []struct{ value, hint string }{
			{in.tokens.RefreshToken, "refresh_token"},
			{in.tokens.AccessToken, "access_token"},
		} {
			if tok.value == "" {
				continue
			}
			if err := revoke(ctx, req, signer, in.discovery, client, tok.value, tok.hint); err != nil {
				return &failure{
					msg:  "revoking the " + tok.hint + " at " + in.issuer() + " failed: " + oauthText(err) + "; nothing was deleted",
					next: "try again later, or forget the sign-in here only with 'mcpauth logout --no-revoke " + server + "'",
					err:  err,
				}
			}
			notes = append(notes, "revoked the "+tok.hint+" at "+in.issuer())
		}
	}

	// The registration is per issuer: keep it while another sign-in needs it.
	others, err := listUnder(ctx, st, discoveryPrefix)
	if err != nil {
		return err
	}
	issuer := in.issuer()
	shared := false
	for _, other := range others {
		if other == server {
			continue
		}
		var d effects.Discovery
		if ok, err := getRecord(ctx, st, discoveryKey(other), &d); err == nil && ok && d.Authorization.Issuer == issuer {
			shared = true
		}
	}
	keys := []string{tokensKey(server), discoveryKey(server), settingsKey(server), dpopKeyKey(server)}
	if issuer != "" && !shared {
		keys = append(keys, clientKey(issuer))
	}
	for _, k := range keys {
		if err := st.Delete(ctx, k, 0); err != nil {
			return err
		}
	}
	out.printf("%s %s\n", out.paint(styleGreen, "signed out of"), server)
	for _, n := range notes {
		out.printf("  %s\n", n)
	}
	if shared {
		out.printf("  kept the client registration at %s: another stored sign-in uses it\n", issuer)
	}
	out.printf("  deleted the stored records from %s\n", st.where)
	return nil
}
