// Package testworld runs a real, strict OAuth 2.1 authorization server (AS)
// and an MCP resource server (RS) on loopback, for mcpauth's tests and demo.
//
// # Contract
//
// [Start] listens on 127.0.0.1:0 — two listeners (RS and AS), or one when
// [Options.SameOrigin] is set or [Options.PRM] is [PRMNone] — and returns a
// [World]. URLs always use the host "127.0.0.1". The caller must [World.Close]
// the world when done; every method is safe for concurrent use.
//
// The RS serves MCP (streamable HTTP, stateless, JSON responses) at
// [World.MCPURL] behind a bearer-token middleware, with two tools: "echo"
// (returns its "text" argument) and "write" (returns "written"). Being
// stateless, the SDK answers GET and DELETE with 405 (after the bearer
// check). Each tool in [Options.ToolScopes] needs its scope: the guard reads
// the JSON-RPC body (single or batch) before the SDK does. It publishes
// Protected Resource Metadata (RFC 9728) as [Options.PRM] says.
//
// The AS publishes metadata as [Options.Metadata] says and serves
// /authorize, /token, /register (when [Options.DCR]) and /revoke under the
// issuer. It validates like a careful production server: exact redirect URIs,
// PKCE S256 only, mandatory state and RFC 8707 resource, single-use codes
// bound to client/redirect/challenge/resource/scope, client authentication by
// the one registered method (RFC 6749 §2.3.1 form-encoding inside Basic),
// refresh-token rotation with family revocation on reuse, no scope widening
// on refresh. Approval is automatic: [World.Authorize] plays the user agent.
//
// # What tests observe
//
// [World.Stats] returns a snapshot of counters (per endpoint, per grant type,
// every "METHOD /path" seen). [World.SetFault] makes the servers misbehave on
// demand (5xx on /token, wrong issuer or resource in metadata, wrong state or
// iss on the redirect, …); each fault fires once unless [Fault.Sticky].
// [World.ExpireAccessTokens] invalidates every issued access token.
// [World.MigrateTo] moves the RS to a second AS (SEP-2352).
//
// # Deliberate deviations from the letter of the specs
//
//   - A 401 for a request without credentials carries no error attribute
//     (RFC 6750 §3.1); a 401 for a bad, expired or revoked token carries
//     error="invalid_token".
//   - The OIDC discovery document has the same members as the RFC 8414 one:
//     this AS issues no ID tokens, so it advertises no jwks_uri.
//
// Secrets (client secrets, codes, verifiers, tokens) never reach
// [Options.Logf]: only method, path and status are logged.
package testworld
