package testworld

import (
	"context"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type echoInput struct {
	Text string `json:"text" jsonschema:"the text to echo back"`
}

type writeInput struct {
	Text string `json:"text,omitempty" jsonschema:"ignored; the tool only needs its scope"`
}

// newMCPHandler is the protected MCP server, served by the official Go SDK so
// that clients meet a real streamable-HTTP implementation. Stateless mode: no
// Mcp-Session-Id, no initialize required, GET/DELETE answered 405 by the SDK.
// JSONResponse: answers are application/json rather than SSE.
func newMCPHandler() http.Handler {
	srv := mcp.NewServer(&mcp.Implementation{Name: "testworld", Version: "1.0.0"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Returns its text argument."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoInput) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "write", Description: "Pretends to write; may require a scope (Options.ToolScopes)."},
		func(_ context.Context, _ *mcp.CallToolRequest, _ writeInput) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "written"}}}, nil, nil
		})
	return mcp.NewStreamableHTTPHandler(
		func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true},
	)
}
