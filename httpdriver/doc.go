// Package httpdriver runs the machine over net/http.
//
// Contract:
//   - Transport is an http.RoundTripper that authorizes requests through the
//     machine: use it as &http.Client{Transport: t} with the official Go SDK
//     (mcp.StreamableClientTransport.HTTPClient), mcp-go, or plain net/http.
//     Requests to the MCP server's origin carry the credential; requests
//     elsewhere pass through untouched. Request bodies are replayed through
//     GetBody (or buffered when it is absent) when a request must be sent
//     again after a new credential.
//   - Requester performs the machine's auxiliary requests with timeouts, a
//     1 MiB response limit, HTTPS required except for loopback hosts, and no
//     redirect that leaves the origin (none at all for requests that carry
//     secrets).
//   - CallbackServer is the loopback redirect target of RFC 8252 §7.3; the
//     BrowserUserAgent opens the system browser (falling back to printing
//     the URL) and waits there; HeadlessUserAgent fetches the authorization
//     URL without following redirects, for tests and unattended clients.
package httpdriver
