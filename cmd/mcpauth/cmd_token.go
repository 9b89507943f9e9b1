package main

import (
	"context"
	"fmt"
	"time"
)

func tokenCommand() *command {
	return &command{
		name:    "token",
		args:    "<mcp-url>",
		nargs:   1,
		summary: "print a valid access token, refreshing it when needed",
		about: `
Prints the stored access token for the MCP server on stdout, and nothing else, so that other
tools can use it. It first makes one MCP request with it (initialize): if the token has expired
or the server refuses it, it is renewed (and the store is updated): with the stored refresh
token, or, for a credential obtained without a user (client credentials, workload identity,
enterprise-managed), by making the same grant again.

It renews the way the sign-in was made: login stores its extension settings with it (grants,
the --client-key file, --dpop, the workload token's file or variable, the identity provider and
the ID token file: names only, never a secret), so no flag is needed here; the files and
variables must still be there. A flag given here replaces the stored setting for this run only.
The client and its secret come from the store.

A DPoP-bound token (RFC 9449) is printed too, with a note on stderr: a request needs a fresh
proof signed by the sign-in's key, so it is of use only to a DPoP-aware client.

It never opens a browser. When no sign-in is stored, or it can no longer be renewed, it exits
with status 1 and says so on stderr: run 'mcpauth login <mcp-url>'.`,
		examples: []string{
			`mcpauth token https://mcp.example.com/mcp`,
			`curl -H "Authorization: Bearer $(mcpauth token https://mcp.example.com/mcp)" https://mcp.example.com/mcp ...`,
			`mcpauth token --store ./mcpauth.json http://127.0.0.1:8080/mcp`,
			`mcpauth token --workload-token-file /var/run/secrets/tokens/mcp https://mcp.example.com/mcp   # the platform moved the token`,
			`mcpauth token --store postgres://mcpauth@db.internal:5432/mcpauth https://mcp.example.com/mcp`,
		},
		timeout: 30 * time.Second,
		bind:    bindStored(runToken),
	}
}

func runToken(ctx context.Context, inv *invocation, c *storedConn) error {
	if err := c.explain(nil); err != nil {
		return err
	}
	cred := c.transport.Session().Snapshot().Credential
	if cred.AccessToken == "" {
		return c.agent.needed()
	}
	if cred.DPoPKeyID != "" {
		c := inv.env.stderrConsole()
		c.printf("mcpauth token: note: this token is bound to a key (DPoP, RFC 9449): send it as 'Authorization: DPoP <token>' with a proof signed by that key; 'Bearer' is refused\n")
	}
	// The one place a secret is printed: it is the command's output.
	fmt.Fprintln(inv.env.stdout, cred.AccessToken)
	return nil
}
