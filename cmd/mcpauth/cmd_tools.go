package main

import (
	"context"
	"strings"
	"time"
)

func toolsCommand() *command {
	return &command{
		name:    "tools",
		args:    "<mcp-url>",
		nargs:   1,
		summary: "list the server's tools, signed in with the stored sign-in",
		about: `
Connects the official MCP Go SDK client to the server through mcpauth, signed in with the stored
credential (refreshed when needed), and lists the tools the server offers: a quick way to check
that a sign-in works. It never opens a browser; when a sign-in is needed it says so and exits 1.

Like 'mcpauth token', it renews the credential the way the sign-in was made (its stored
extension settings; a flag given here replaces a stored setting for this run), and DPoP-bound
tokens go out with a proof signed by the key kept with them.`,
		examples: []string{
			"mcpauth tools https://mcp.example.com/mcp",
			"mcpauth tools -v https://mcp.example.com/mcp    # with the live trace on stderr",
			"mcpauth tools --store postgres://mcpauth@db.internal:5432/mcpauth https://mcp.example.com/mcp",
		},
		timeout: 30 * time.Second,
		bind:    bindStored(runTools),
	}
}

func runTools(ctx context.Context, inv *invocation, c *storedConn) error {
	server := c.server
	res, err := c.session.ListTools(ctx, nil)
	if err != nil {
		return c.explain(err)
	}
	out := inv.env.stdoutConsole()
	if len(res.Tools) == 0 {
		out.printf("%s offers no tools.\n", server)
		return nil
	}
	width := 0
	for _, t := range res.Tools {
		width = max(width, len(t.Name))
	}
	for _, t := range res.Tools {
		desc, _, _ := strings.Cut(strings.TrimSpace(t.Description), "\n")
		out.printf("%s  %s\n", out.paint(styleBold, pad(t.Name, width)), desc)
	}
	return nil
}

func pad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return s + strings.Repeat(" ", n-len(s))
}
