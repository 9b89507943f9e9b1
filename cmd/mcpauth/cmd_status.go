package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/mcpauth/mcpauth/effects"
)

func statusCommand() *command {
	return &command{
		name:    "status",
		summary: "show the stored sign-ins (never a secret)",
		about: `
Lists what the store holds: for each MCP server, the authorization server (issuer), the client
id and where it came from, the granted scopes, when the access token expires, and whether a
refresh token is held. Tokens and client secrets are never shown. The store file is only read.`,
		examples: []string{
			"mcpauth status",
			"mcpauth status --store ./mcpauth.json",
		},
		timeout: 10 * time.Second,
		bind: func(fs *flag.FlagSet) action {
			storeFlag := storePathFlag(fs)
			return func(ctx context.Context, inv *invocation) error {
				return runStatus(inv, *storeFlag)
			}
		},
	}
}

func runStatus(inv *invocation, storeFlag string) error {
	e := inv.env
	path, err := resolveStorePath(e, storeFlag)
	if err != nil {
		return err
	}
	recs, err := listRecords(path)
	if err != nil {
		return err
	}
	servers := keysWithPrefix(recs, tokensPrefix)
	c := e.stdoutConsole()
	if len(servers) == 0 {
		c.printf("No sign-ins stored in %s.\nSign in with: mcpauth login <mcp-url>\n", path)
	} else {
		c.printf("Sign-ins stored in %s:\n", path)
	}
	usedIssuers := map[string]bool{}
	for _, server := range servers {
		var t effects.Tokens
		if err := json.Unmarshal(recs[tokensKey(server)], &t); err != nil {
			c.printf("\n%s\n  (the stored credential is unreadable: %v)\n", c.paint(styleBold, server), err)
			continue
		}
		var d effects.Discovery
		_ = json.Unmarshal(recs[discoveryKey(server)], &d)
		issuer := t.Issuer
		if issuer == "" {
			issuer = d.Authorization.Issuer
		}
		usedIssuers[issuer] = true
		var cl effects.Client
		hasClient := json.Unmarshal(recs[clientKey(issuer)], &cl) == nil && recs[clientKey(issuer)] != nil

		c.printf("\n%s\n", c.paint(styleBold, server))
		row := func(k, v string) { c.printf("  %-14s %s\n", k, v) }
		row("issuer", issuer)
		clientLine := t.ClientID
		if hasClient && cl.ClientID == t.ClientID {
			clientLine += "  (" + clientKind(cl) + ")"
		}
		row("client id", clientLine)
		scope := t.Scope
		if scope == "" {
			scope = "(none named)"
		}
		row("scopes", scope)
		row("expires", expiry(t.ExpiresAt, e.now(), t.RefreshToken != ""))
		refresh := "none (a new sign-in is needed when the access token expires)"
		if t.RefreshToken != "" {
			refresh = "held"
		}
		row("refresh token", refresh)
		if t.TokenType != "" && !strings.EqualFold(t.TokenType, "bearer") {
			row("token type", t.TokenType)
		}
	}
	var spare []string
	for _, issuer := range keysWithPrefix(recs, clientPrefix) {
		if !usedIssuers[issuer] {
			spare = append(spare, issuer)
		}
	}
	if len(spare) > 0 {
		c.printf("\nClient registrations kept for other sign-ins at:\n")
		for _, issuer := range spare {
			var cl effects.Client
			if json.Unmarshal(recs[clientKey(issuer)], &cl) == nil {
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
		return fmt.Sprintf("%s (expired %s ago; the next use refreshes it)", when, -d)
	}
	return fmt.Sprintf("%s (expired %s ago; sign in again)", when, -d)
}
