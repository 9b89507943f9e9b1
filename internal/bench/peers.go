package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mgclient "github.com/mark3labs/mcp-go/client"
	mgmcp "github.com/mark3labs/mcp-go/mcp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	sdkmcp "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
)

// A Client is one MCP client library with its own OAuth support, driving
// whole MCP sessions against a testworld. State persisted by one session
// (what each library lets an application persist) is handed to the next,
// as to a restarted program.
type Client interface {
	Name() string
	// Connect opens a session (MCP initialize) against w, authorizing as
	// the library does. expired makes the persisted access token look
	// expired, as after a restart past its lifetime.
	Connect(ctx context.Context, w *testworld.World, expired bool) (Session, error)
	// Prompts is how many times the library sent the user to the
	// authorization page.
	Prompts() int
}

// A Session is an open MCP session.
type Session interface {
	// Call calls a tool (echo or write) and requires a successful result.
	Call(ctx context.Context, tool string) error
	Close()
}

// Clients returns a fresh instance of each library compared: mcpauth (the
// official SDK's MCP client over httpdriver.Transport), the official Go
// SDK v1.8.0 (auth.AuthorizationCodeHandler) and mcp-go v1.2.1.
func Clients() []Client {
	return []Client{NewMCPAuth(), NewGoSDK(), NewMCPGo()}
}

// headless plays the user for every library: it fetches the authorization
// URL and returns the query of the redirect to RedirectURI.
func headless(ctx context.Context, authURL string) (url.Values, error) {
	q, err := httpdriver.HeadlessUserAgent{}.Authorize(ctx, authURL, RedirectURI)
	if err != nil {
		return nil, err
	}
	return url.ParseQuery(q)
}

// ---- mcpauth ----

// MCPAuth is mcpauth: httpdriver.Transport under the official SDK's MCP
// client (no OAuthHandler: the transport does it all). Its persisted state
// is the driver store: credential, registration, discovery.
type MCPAuth struct {
	Store *driver.MemoryStore
	Agent *CountingAgent
}

// NewMCPAuth returns mcpauth with an empty store.
func NewMCPAuth() *MCPAuth {
	return &MCPAuth{Store: driver.NewMemoryStore(), Agent: &CountingAgent{Agent: httpdriver.HeadlessUserAgent{}}}
}

func (m *MCPAuth) Name() string { return "mcpauth" }
func (m *MCPAuth) Prompts() int { return int(m.Agent.Prompts.Load()) }

func (m *MCPAuth) Connect(ctx context.Context, w *testworld.World, expired bool) (Session, error) {
	cfg := Config(w)
	clock := &OffsetClock{}
	if expired {
		in, err := driver.LoadStored(ctx, m.Store, cfg.Server)
		if err != nil || in.Tokens == nil {
			return nil, fmt.Errorf("bench: mcpauth: no stored credential to expire (%v)", err)
		}
		clock.JumpPast(in.Tokens.ExpiresAt)
	}
	base := NewBase(8, nil)
	tr, err := httpdriver.NewTransport(ctx, cfg, httpdriver.Options{Base: base, Store: m.Store, UserAgent: m.Agent, Clock: clock})
	if err != nil {
		return nil, err
	}
	cs, err := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "mcpauth-bench", Version: "1.0.0"}, nil).Connect(ctx, &sdkmcp.StreamableClientTransport{
		Endpoint: w.MCPURL(), HTTPClient: &http.Client{Transport: tr}, DisableStandaloneSSE: true, MaxRetries: -1,
	}, nil)
	if err != nil {
		tr.Close()
		return nil, err
	}
	return &sdkSession{cs: cs, close: func() { tr.Close(); base.CloseIdleConnections() }}, nil
}

type sdkSession struct {
	cs    *sdkmcp.ClientSession
	close func()
}

func (s *sdkSession) Call(ctx context.Context, tool string) error {
	res, err := s.cs.CallTool(ctx, &sdkmcp.CallToolParams{Name: tool, Arguments: map[string]any{"text": "x"}})
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("bench: tool %s returned an error result", tool)
	}
	return nil
}

func (s *sdkSession) Close() {
	_ = s.cs.Close()
	s.close()
}

// ---- the official Go SDK ----

// GoSDK is the official Go SDK v1.8.0: StreamableClientTransport with an
// auth.AuthorizationCodeHandler doing dynamic client registration. Its
// persisted state is what the SDK's persistence hooks offer (the package
// example): the oauth2.Config and token captured by NewTokenSource, handed
// back as InitialTokenSource.
type GoSDK struct {
	mu      sync.Mutex
	cfg     *oauth2.Config
	tok     *oauth2.Token
	prompts atomic.Int64
}

// NewGoSDK returns the Go SDK client with nothing persisted.
func NewGoSDK() *GoSDK { return &GoSDK{} }

func (g *GoSDK) Name() string { return "go-sdk v1.8.0" }
func (g *GoSDK) Prompts() int { return int(g.prompts.Load()) }

// Handler returns an authorization-code handler over the persisted state.
func (g *GoSDK) Handler(hc *http.Client, expired bool) (*auth.AuthorizationCodeHandler, error) {
	g.mu.Lock()
	var initial oauth2.TokenSource
	if g.cfg != nil && g.tok != nil {
		t := *g.tok
		if expired {
			t.Expiry = time.Now().Add(-time.Minute)
		}
		initial = g.cfg.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, hc), &t)
	}
	g.mu.Unlock()
	return auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		RedirectURL: RedirectURI,
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs: []string{RedirectURI}, TokenEndpointAuthMethod: "none",
			GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
			ClientName: "go-sdk-bench",
		}},
		AuthorizationCodeFetcher: g.fetch,
		NewTokenSource: func(ctx context.Context, cfg *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
			g.mu.Lock()
			g.cfg, g.tok = cfg, tok
			g.mu.Unlock()
			return cfg.TokenSource(ctx, tok), nil
		},
		InitialTokenSource: initial,
		Client:             hc,
	})
}

func (g *GoSDK) fetch(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
	g.prompts.Add(1)
	q, err := headless(ctx, args.URL)
	if err != nil {
		return nil, err
	}
	return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
}

func (g *GoSDK) Connect(ctx context.Context, w *testworld.World, expired bool) (Session, error) {
	base := NewBase(8, nil)
	hc := &http.Client{Transport: base}
	h, err := g.Handler(hc, expired)
	if err != nil {
		return nil, err
	}
	return ConnectGoSDK(ctx, w, h, hc, base)
}

// ConnectGoSDK opens a Go SDK session whose transport authorizes with h.
func ConnectGoSDK(ctx context.Context, w *testworld.World, h auth.OAuthHandler, hc *http.Client, base *http.Transport) (Session, error) {
	cs, err := sdkmcp.NewClient(&sdkmcp.Implementation{Name: "go-sdk-bench", Version: "1.0.0"}, nil).Connect(ctx, &sdkmcp.StreamableClientTransport{
		Endpoint: w.MCPURL(), HTTPClient: hc, OAuthHandler: h, DisableStandaloneSSE: true, MaxRetries: -1,
	}, nil)
	if err != nil {
		return nil, err
	}
	return &sdkSession{cs: cs, close: base.CloseIdleConnections}, nil
}

// ---- mcp-go ----

// MCPGo is mcp-go v1.2.1: its streamable HTTP client with OAuthConfig and
// PKCE. Its transport never runs a flow itself: it returns
// OAuthAuthorizationRequiredError and the application registers,
// authorizes and exchanges the code through the handler, then retries (as
// its examples/oauth_client does; this adapter is that glue). Its persisted
// state is the TokenStore plus the client id, secret and auth method the
// application saves after registration.
type MCPGo struct {
	Store   *mgclient.MemoryTokenStore
	mu      sync.Mutex
	id      string
	secret  string
	method  string
	prompts atomic.Int64
}

// NewMCPGo returns mcp-go with nothing persisted.
func NewMCPGo() *MCPGo { return &MCPGo{Store: mgclient.NewMemoryTokenStore()} }

func (m *MCPGo) Name() string { return "mcp-go v1.2.1" }
func (m *MCPGo) Prompts() int { return int(m.prompts.Load()) }

func (m *MCPGo) Connect(ctx context.Context, w *testworld.World, expired bool) (Session, error) {
	if expired {
		t, err := m.Store.GetToken(ctx)
		if err != nil {
			return nil, fmt.Errorf("bench: mcp-go: no stored token to expire: %w", err)
		}
		e := *t
		e.ExpiresAt = time.Now().Add(-time.Minute)
		if err := m.Store.SaveToken(ctx, &e); err != nil {
			return nil, err
		}
	}
	base := NewBase(8, nil)
	m.mu.Lock()
	cfg := mgclient.OAuthConfig{
		ClientID: m.id, ClientSecret: m.secret, TokenEndpointAuthMethod: m.method,
		RedirectURI: RedirectURI, TokenStore: m.Store, PKCEEnabled: true,
		HTTPClient: &http.Client{Transport: base, Timeout: Timeout},
	}
	m.mu.Unlock()
	c, err := mgclient.NewOAuthStreamableHttpClient(w.MCPURL(), cfg)
	if err != nil {
		return nil, err
	}
	s := &mcpGoSession{c: c, m: m, base: base}
	if err := s.retry(ctx, func() error { return c.Start(ctx) }); err != nil {
		s.Close()
		return nil, err
	}
	init := func() error {
		_, err := c.Initialize(ctx, mgmcp.InitializeRequest{Params: mgmcp.InitializeParams{
			ProtocolVersion: mgmcp.LATEST_PROTOCOL_VERSION,
			ClientInfo:      mgmcp.Implementation{Name: "mcp-go-bench", Version: "1.0.0"},
		}})
		return err
	}
	if err := s.retry(ctx, init); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

type mcpGoSession struct {
	c    *mgclient.Client
	m    *MCPGo
	base *http.Transport
}

// retry runs op; when mcp-go asks for authorization, it runs the flow
// through the handler (the application's part) and runs op once more.
func (s *mcpGoSession) retry(ctx context.Context, op func() error) error {
	err := op()
	if err == nil || !mgclient.IsOAuthAuthorizationRequiredError(err) {
		return err
	}
	if err := s.m.authorize(ctx, mgclient.GetOAuthHandler(err)); err != nil {
		return err
	}
	return op()
}

func (m *MCPGo) authorize(ctx context.Context, h interface {
	GetClientID() string
	RegisterClient(context.Context, string) error
	GetAuthorizationURL(context.Context, string, string) (string, error)
	ProcessAuthorizationResponse(context.Context, string, string, string) error
	GetClientSecret() string
	GetTokenEndpointAuthMethod() string
}) error {
	if h == nil {
		return errors.New("bench: mcp-go: authorization required without a handler")
	}
	verifier, err := mgclient.GenerateCodeVerifier()
	if err != nil {
		return err
	}
	state, err := mgclient.GenerateState()
	if err != nil {
		return err
	}
	if h.GetClientID() == "" {
		if err := h.RegisterClient(ctx, "mcp-go-bench"); err != nil {
			return err
		}
		m.mu.Lock()
		m.id, m.secret, m.method = h.GetClientID(), h.GetClientSecret(), h.GetTokenEndpointAuthMethod()
		m.mu.Unlock()
	}
	authURL, err := h.GetAuthorizationURL(ctx, state, mgclient.GenerateCodeChallenge(verifier))
	if err != nil {
		return err
	}
	m.prompts.Add(1)
	q, err := headless(ctx, authURL)
	if err != nil {
		return err
	}
	return h.ProcessAuthorizationResponse(ctx, q.Get("code"), q.Get("state"), verifier)
}

func (s *mcpGoSession) Call(ctx context.Context, tool string) error {
	call := func() error {
		res, err := s.c.CallTool(ctx, mgmcp.CallToolRequest{Params: mgmcp.CallToolParams{Name: tool, Arguments: map[string]any{"text": "x"}}})
		if err != nil {
			return err
		}
		if res.IsError {
			return fmt.Errorf("bench: tool %s returned an error result", tool)
		}
		return nil
	}
	return s.retry(ctx, call)
}

func (s *mcpGoSession) Close() {
	_ = s.c.Close()
	s.base.CloseIdleConnections()
}
