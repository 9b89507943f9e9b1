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

	"github.com/mcpauth/mcpauth/driver"
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

// suiteContext is the part of MCP_CONFORMANCE_CONTEXT a user would supply:
// client credentials, a private key, an identity provider and the user's ID
// token there, or a workload's token.
type suiteContext struct {
	ClientID         string `json:"client_id"`
	ClientSecret     string `json:"client_secret"`
	Issuer           string `json:"issuer"`
	PrivateKeyPEM    string `json:"private_key_pem"`
	SigningAlgorithm string `json:"signing_algorithm"`
	IDPClientID      string `json:"idp_client_id"`
	IDPIDToken       string `json:"idp_id_token"`
	IDPTokenEndpoint string `json:"idp_token_endpoint"`
	WorkloadJWT      string `json:"valid_jwt"`
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
	opts := httpdriver.Options{UserAgent: httpdriver.HeadlessUserAgent{}}
	cfg, err := config(server, &opts)
	if err != nil {
		return err
	}
	t, err := httpdriver.NewTransport(ctx, cfg, opts)
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

// config is what a user of this client would configure for the server. The
// grants it allows follow from the credentials configured; which one is
// used follows from what the authorization server supports.
func config(server string, opts *httpdriver.Options) (machine.Config, error) {
	cfg := machine.Config{
		Server:            server,
		RedirectURI:       redirectURI,
		ClientName:        "mcpauth conformance client",
		ClientMetadataURL: clientMetadataURL,
		ProtocolVersion:   os.Getenv("MCP_CONFORMANCE_PROTOCOL_VERSION"),
		Grants:            []machine.Grant{machine.GrantAuthorizationCode},
	}
	raw := os.Getenv("MCP_CONFORMANCE_CONTEXT")
	if raw == "" {
		return cfg, nil
	}
	var c suiteContext
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return cfg, fmt.Errorf("MCP_CONFORMANCE_CONTEXT: %w", err)
	}
	client := effects.Client{Issuer: c.Issuer, ClientID: c.ClientID, ClientSecret: c.ClientSecret}
	if c.PrivateKeyPEM != "" {
		signer := driver.NewKeySigner()
		alg, err := signer.AddPEM("client", []byte(c.PrivateKeyPEM))
		if err != nil {
			return cfg, err
		}
		if c.SigningAlgorithm != "" {
			alg = c.SigningAlgorithm
		}
		client.KeyID, client.KeyAlg = "client", alg
		opts.Signer = signer
	}
	opts.Sources = map[string]driver.Source{}
	switch {
	case c.IDPTokenEndpoint != "" && c.IDPIDToken != "":
		cfg.IdentityProvider = machine.IdentityProvider{TokenEndpoint: c.IDPTokenEndpoint, ClientID: c.IDPClientID}
		opts.Sources[effects.SourceIDToken] = driver.StaticSource(c.IDPIDToken)
		cfg.Grants = append(cfg.Grants, machine.GrantEnterprise)
	case c.WorkloadJWT != "":
		opts.Sources[effects.SourceWorkloadToken] = driver.StaticSource(c.WorkloadJWT)
		cfg.Grants = append(cfg.Grants, machine.GrantWorkloadIdentity)
	case client.ClientSecret != "" || client.KeyID != "":
		cfg.Grants = append(cfg.Grants, machine.GrantClientCredentials)
	}
	if client.ClientID != "" {
		cfg.Clients = []effects.Client{client}
	}
	return cfg, nil
}

// describe names the typed error at the root of err, for the log.
func describe(err error) string {
	var typed machine.Retryable // the typed errors of the machine and drivers say whether to retry
	if errors.As(err, &typed) {
		return fmt.Sprintf("%v (%T)", err, typed)
	}
	return err.Error()
}
