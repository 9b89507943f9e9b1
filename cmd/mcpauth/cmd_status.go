package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

func statusCommand() *command {
	return &command{
		name:    "status",
		summary: "show the stored sign-ins (never a secret)",
		about: `
Lists what the store holds: for each MCP server, the authorization server (issuer), the client
id and where it came from, the grant when it needs no user, the granted scopes, when the access
token expires, whether a refresh token is held, and whether the tokens are bound to a key (DPoP).
Tokens, keys and client secrets are never shown. The store is only read; a store file that is
corrupt is moved aside, unchanged, and reported.

--store takes a file or a PostgreSQL DSN (postgres://…).`,
		examples: []string{
			"mcpauth status",
			"mcpauth status --store ./mcpauth.json",
			"mcpauth status --store postgres://mcpauth@db.internal:5432/mcpauth",
		},
		timeout: 10 * time.Second,
		bind: func(fs *flag.FlagSet) action {
			storeFlag := storePathFlag(fs)
			return func(ctx context.Context, inv *invocation) error {
				return runStatus(ctx, inv, *storeFlag)
			}
		},
	}
}

func runStatus(ctx context.Context, inv *invocation, storeFlag string) error {
	e := inv.env
	st, err := openStore(ctx, e, storeFlag, true)
	if err != nil {
		return err
	}
	defer st.close()
	servers, err := listUnder(ctx, st, tokensPrefix)
	if err != nil {
		return err
	}
	c := e.stdoutConsole()
	if len(servers) == 0 {
		c.printf("No sign-ins stored in %s.\nSign in with: mcpauth login <mcp-url>\n", st.where)
	} else {
		c.printf("Sign-ins stored in %s:\n", st.where)
	}
	usedIssuers := map[string]bool{}
	for _, server := range servers {
		in, err := loadSignIn(ctx, st, server)
		var re *driver.RecordError
		if errors.As(err, &re) {
			c.printf("\n%s\n  (the stored record %s is unreadable: %v)\n", c.paint(styleBold, server), re.Key, re.Err)
			continue
		}
		if err != nil {
			return err
		}
		if !in.hasTokens {
			continue // deleted since the listing
		}
		t := in.tokens
		issuer := in.issuer()
		usedIssuers[issuer] = true

		c.printf("\n%s\n", c.paint(styleBold, server))
		row := func(k, v string) { c.printf("  %-14s %s\n", k, v) }
		row("issuer", issuer)
		clientLine := t.ClientID
		if clientLine == "" {
			clientLine = "(none: the workload's token identifies it)"
		}
		if in.hasClient && in.client.ClientID == t.ClientID && t.ClientID != "" {
			clientLine += "  (" + clientKind(in.client) + ")"
		}
		row("client id", clientLine)
		if g := grantOf(t); g != machine.GrantAuthorizationCode {
			row("grant", string(g)+" (made again when the access token expires)")
		}
		scope := t.Scope
		if scope == "" {
			scope = "(none named)"
		}
		row("scopes", scope)
		row("expires", expiry(t.ExpiresAt, e.now(), renewable(t)))
		refresh := "none (a new sign-in is needed when the access token expires)"
		switch {
		case t.RefreshToken != "":
			refresh = "held"
		case userless(t):
			refresh = "none needed"
		}
		row("refresh token", refresh)
		switch {
		case t.DPoPKeyID != "":
			row("token type", "DPoP (bound to a key kept in the store)")
		case t.TokenType != "" && !strings.EqualFold(t.TokenType, "bearer"):
			row("token type", t.TokenType)
		}
		if s := in.settings; in.hasSettings {
			if s.ClientKeyFile != "" {
				row("client key", s.ClientKeyFile)
			}
			switch {
			case s.WorkloadTokenFile != "":
				row("workload token", "read from "+s.WorkloadTokenFile)
			case s.WorkloadTokenEnv != "":
				row("workload token", "read from $"+s.WorkloadTokenEnv)
			}
			if s.IdPTokenEndpoint != "" {
				row("identity prov.", s.IdPTokenEndpoint)
			}
			if s.IDTokenFile != "" {
				row("ID token", "read from "+s.IDTokenFile)
			}
		}
	}
	issuers, err := listUnder(ctx, st, clientPrefix)
	if err != nil {
		return err
	}
	var spare []string
	for _, issuer := range issuers {
		if !usedIssuers[issuer] {
			spare = append(spare, issuer)
		}
	}
	if len(spare) > 0 {
		c.printf("\nClient registrations kept for other sign-ins at:\n")
		for _, issuer := range spare {
			var cl effects.Client
			if ok, err := getRecord(ctx, st, clientKey(issuer), &cl); err == nil && ok {
				c.printf("  %s  client id %s (%s)\n", issuer, cl.ClientID, clientKind(cl))
			}
		}
	}
	return nil
}

// clientKind says where a client identity came from and how it
// authenticates, in words.
func clientKind(c effects.Client) string {
	var src string
	switch c.Source {
	case effects.ClientDynamic:
		src = "dynamic registration"
	case effects.ClientPreRegistered:
		src = "pre-registered"
	case effects.ClientMetadataURL:
		src = "client metadata document"
	default:
		src = string(c.Source)
	}
	switch c.AuthMethod {
	case "", "none":
		return src + ", public client"
	}
	return src + ", " + c.AuthMethod
}

// expiry renders an expiry time with how far away it is.
func expiry(at, now time.Time, refreshable bool) string {
	if at.IsZero() {
		return "not said by the server"
	}
	d := at.Sub(now).Round(time.Second)
	when := at.UTC().Format("2006-01-02 15:04:05 UTC")
	if d > 0 {
		return fmt.Sprintf("%s (in %s)", when, d)
	}
	if refreshable {
		return fmt.Sprintf("%s (expired %s ago; the next use renews it)", when, -d)
	}
	return fmt.Sprintf("%s (expired %s ago; sign in again)", when, -d)
}
