package httpdriver_test

import (
	"context"
	"net/http"
	"path/filepath"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/machine"
)

// connect is the README's embedding example, kept compiling here: the
// official Go SDK's client over mcpauth's transport, signing in through the
// system browser and a loopback redirect, with tokens in a file store.
func connect(ctx context.Context, dir string) (*mcp.ClientSession, error) {
	cb, err := httpdriver.ListenCallback(0, "/callback") // loopback redirect target (RFC 8252)
	if err != nil {
		return nil, err
	}
	defer cb.Close()
	store, err := driver.OpenFileStore(filepath.Join(dir, "mcpauth.json"))
	if err != nil {
		return nil, err
	}
	t, err := httpdriver.NewTransport(ctx, machine.Config{
		Server:      "https://mcp.example.com/mcp",
		RedirectURI: cb.RedirectURI(),
	}, httpdriver.Options{UserAgent: cb, Store: store})
	if err != nil {
		return nil, err
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "my-client", Version: "1.0"}, nil)
	return client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   "https://mcp.example.com/mcp",
		HTTPClient: &http.Client{Transport: t},
	}, nil)
}

// The example needs a real server and a browser: it is compiled, not run.
var _ = connect
