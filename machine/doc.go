// Package machine is the pure MCP authorization client: one authorization
// context (one MCP server, the authorization server it trusts, one client
// identity) as a value, and Step, the function that moves it.
//
// Contract:
//   - New(config) returns the first snapshot and effects; from then on the
//     driver calls Step(snapshot, input, env) for every input and runs the
//     returned effects in order (package effects says how).
//   - Step is pure and deterministic: no I/O, no clock (env.Now is the only
//     time), no randomness but env.Rand. It never mutates what is reachable
//     from its arguments; the same inputs with the same env give the same
//     snapshots and effects.
//   - Two failure channels. An input that is illegal in the current state
//     (a stale response, a callback nobody awaits) returns a typed error and
//     the unchanged snapshot, with no effects. A misbehaving server or user
//     is a legal input that ends the attempt: the parked requests get Fail
//     effects carrying a typed error.
//   - Requests are multiplexed: while the credential is good each request
//     passes straight through; one refresh or authorization runs at a time
//     and parks the requests that need it, then re-sends each exactly once
//     or fails each with its error.
//   - Every transition is checked against states.Table first.
//
// Files hold one concern each: challenge parsing, PRM discovery, AS
// discovery, client identity, registration, authorization, token requests,
// refresh, scopes, resource URIs, errors and limits.
package machine
