// Package bench holds what mcpauth's benchmarks (issue 6) share: loopback
// worlds with a credential already held, a load generator that measures two
// transports in alternating rounds, the serialized baseline transport (one
// mutex across each round trip, the design of the MCP Python SDK's
// OAuthClientProvider), adapters that run the same scenarios through the
// official Go SDK's auth package and mcp-go's OAuth handler, and the table
// writer that turns `go test -bench -json` output into docs/benchmarks.md.
//
// Nothing here is timed against a wall-clock limit: every figure is a
// go test benchmark metric, and every ratio compares two measurements taken
// in the same run (interleaved where the two are timings).
package bench
