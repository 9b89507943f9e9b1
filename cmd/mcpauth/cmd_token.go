package main

import (
	"context"
	"flag"
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
or the server refuses it, the stored refresh token renews it (and the store is updated).

It never opens a browser. When no sign-in is stored, or it can no longer be renewed, it exits
with status 1 and says so on stderr: run 'mcpauth login <mcp-url>'.`,
		examples: []string{
			`mcpauth token https://mcp.example.com/mcp`,
			`curl -H "Authorization: Bearer $(mcpauth token https://mcp.example.com/mcp)" https://mcp.example.com/mcp ...`,
			`mcpauth token --store ./mcpauth.json http://127.0.0.1:8080/mcp`,
		},
		timeout: 30 * time.Second,
		bind: func(fs *flag.FlagSet) action {
			storeFlag := storePathFlag(fs)
			return func(ctx context.Context, inv *invocation) error {
				return runToken(ctx, inv, *storeFlag)
			}
		},
	}
}

func runToken(ctx context.Context, inv *invocation, storeFlag string) error {
	server, err := serverArg(inv)
	if err != nil {
		return err
	}
	c, err := connectStored(ctx, inv, storeFlag, server)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.explain(nil); err != nil {
		return err
	}
	cred := c.transport.Session().Snapshot().Credential
	if cred.AccessToken == "" {
		return c.agent.needed()
	}
	// The one place a secret is printed: it is the command's output.
	fmt.Fprintln(inv.env.stdout, cred.AccessToken)
	return nil
}
