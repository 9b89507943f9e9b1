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

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/machine"
)

// The values the suite expects every client to configure.
const (
	clientMetadataURL = "https://conformance-test.local/client-metadata.json"
	redirectURI       = "http://localhost:3000/callback"
	deadline          = 25 * time.Second // below the suite's 30 s, so a hung flow cannot hang it
)

// suiteContext is the part of MCP_CONFORMANCE_CONTEXT a user would supply.
type suiteContext struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Issuer       string `json:"issuer"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: conformance-client <mcp-server-url>")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := run(ctx, os.Args[len(os.Args)-1]); err != nil {
		fmt.Fprintln(os.Stderr, "conformance-client:", describe(err))
		os.Exit(1)
	}
}

func run(ctx context.Context, server string) error {
	cfg, err := config(server)
	if err != nil {
		return err
	}
	t, err := httpdriver.NewTransport(ctx, cfg, httpdriver.Options{UserAgent: httpdriver.HeadlessUserAgent{}})
	if err != nil {
		return err
	}
	defer t.Close()

	client := mcp.NewClient(&mcp.Implementation{Name: "mcpauth-conformance-client", Version: "0.1.0"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:             server,
		HTTPClient:           &http.Client{Transport: t},
		DisableStandaloneSSE: true,
		MaxRetries:           -1,
	}, &mcp.ClientSessionOptions{ProtocolVersion: cfg.ProtocolVersion})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer session.Close()
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("tools/list: %w", err)
	}
	fmt.Printf("tools: %d\n", len(tools.Tools))
	if len(tools.Tools) == 0 {
		return nil
	}
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: tools.Tools[0].Name, Arguments: map[string]any{}})
	if err != nil {
		return fmt.Errorf("tools/call %s: %w", tools.Tools[0].Name, err)
	}
	fmt.Printf("tools/call %s: isError=%v\n", tools.Tools[0].Name, res.IsError)
	return nil
}

// config is what a user of this client would configure for the server.
func config(server string) (machine.Config, error) {
	cfg := machine.Config{
		Server:            server,
		RedirectURI:       redirectURI,
		ClientName:        "mcpauth conformance client",
		ClientMetadataURL: clientMetadataURL,
		ProtocolVersion:   os.Getenv("MCP_CONFORMANCE_PROTOCOL_VERSION"),
	}
	if raw := os.Getenv("MCP_CONFORMANCE_CONTEXT"); raw != "" {
		var c suiteContext
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			return cfg, fmt.Errorf("MCP_CONFORMANCE_CONTEXT: %w", err)
		}
		if c.ClientID != "" {
			cfg.Clients = []effects.Client{{Issuer: c.Issuer, ClientID: c.ClientID, ClientSecret: c.ClientSecret}}
		}
	}
	return cfg, nil
}

// describe names the typed error at the root of err, for the log.
func describe(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := e.(interface{ Retryable() bool }); ok {
			return fmt.Sprintf("%v (%T)", err, e)
		}
	}
	return err.Error()
}
