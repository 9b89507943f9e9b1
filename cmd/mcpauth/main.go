// Command mcpauth signs in to OAuth-protected MCP servers from a terminal,
// hands fresh access tokens to other tools, and shows the mcpauth state
// machine at work.
//
//	mcpauth demo                     the whole flow against in-repo servers, with a live trace
//	mcpauth login <mcp-url>          sign in (browser, loopback callback), store the tokens
//	mcpauth token <mcp-url>          print a valid access token, refreshing it when needed
//	mcpauth tools <mcp-url>          list the server's tools with the stored sign-in
//	mcpauth status                   the stored sign-ins, without secrets
//	mcpauth logout <mcp-url>         revoke the tokens (RFC 7009) and forget them
//	mcpauth diagram                  the machine's Mermaid state diagram
//
// Exit codes: 0 success, 1 failure, 2 usage error. Every command takes
// --help (with examples), --timeout and -v (the live trace on stderr).
//
// Sign-ins live in one file store (driver.FileStore, mode 0600) at
// os.UserConfigDir()/mcpauth/store.json unless --store says otherwise.
// Nothing the command prints ever contains a token, a code, a verifier or a
// client secret, except `token`, whose whole job is to print one access
// token on stdout.
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], systemEnv())
	stop()
	os.Exit(code)
}
