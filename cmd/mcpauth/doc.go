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
// os.UserConfigDir()/mcpauth/store.json unless --store names another file
// or a PostgreSQL database (postgres://…, driver/pgstore), which machines
// that share the sign-ins use together. The commands list what a store
// holds through driver.Lister and read it through driver.Store, whatever
// its kind.
//
// login, token and tools take the flags of MCP's authorization extensions:
// --grant (client_credentials, workload_identity, enterprise_managed, in
// order of preference), --client-key (private_key_jwt), --dpop, the
// workload token's --workload-token-file or --workload-token-env, and the
// identity provider's --idp-token-endpoint, --idp-client-id and
// --id-token-file. login stores these settings with the sign-in (names
// only, never a secret), so that token and tools renew a credential
// obtained without a user by making the same grant again; a DPoP key is
// kept in the store with the tokens bound to it.
// Nothing the command prints ever contains a token, a code, a verifier or a
// client secret, except `token`, whose whole job is to print one access
// token on stdout.
package main
