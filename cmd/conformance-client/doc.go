// Command conformance-client is an ordinary MCP client for the official
// MCP conformance suite (`make conformance`): the official Go SDK's client
// over mcpauth's transport. It takes the MCP server URL as its last
// argument, lists the tools and calls the first one, and exits 0; on an
// authorization failure it prints the typed error and exits 1.
//
// It reads MCP_CONFORMANCE_CONTEXT only for what a user would configure
// (pre-registered client credentials) and MCP_CONFORMANCE_PROTOCOL_VERSION
// for the protocol version to speak. Everything else comes from what the
// servers say: it never looks at the scenario's name.
package main
