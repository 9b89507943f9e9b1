// Package hostile holds the hostile-server scenario tests of mcpauth (issue
// 7 item 2): one test per edge case of the spec checklist's §4 (the
// E-IDs), each driving an httpdriver.Transport against a misbehaving
// server — the test world's faults where it has them, and small httptest
// servers for what it cannot do (redirects, slow and endless bodies,
// hand-written challenges and documents, resets, look-alike origins).
//
// Every scenario must end with a typed error (errors.As to the specific
// machine or httpdriver type), or with the documented success, within its
// budget; never a panic or a hang. Every request the client sends, to any
// server, is recorded on the client side, and every secret it receives
// (access and refresh tokens, authorization codes, client secrets, PKCE
// verifiers) is tracked: a test fails if a secret reaches any place but
// the one it belongs to. Outbound connections go through a destination
// policy that allows loopback only and a resolver that knows no name but
// localhost, so a scenario that names a foreign host can never reach the
// network.
//
// The package has no exported API; docs/security.md lists each E-ID with
// its test and outcome.
package hostile
