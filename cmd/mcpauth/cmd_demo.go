package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

func demoCommand() *command {
	return &command{
		name:    "demo",
		summary: "run the whole flow against in-repo servers on loopback, with a live trace",
		about: `
Starts a strict OAuth authorization server and an MCP server on 127.0.0.1 (no setup, nothing
leaves the machine), then drives the official MCP Go SDK client over mcpauth's http.RoundTripper
with a headless user agent and a memory store, in four acts:

  1. connect and list the tools: the 401 starts discovery (RFC 9728, RFC 8414), dynamic client
     registration (RFC 7591), the authorization with PKCE and the code exchange;
  2. call echo: the credential is good, the request passes straight through;
  3. the server expires every access token, call echo: 401, one refresh, the call is re-sent;
  4. call write, which needs scope mcp:write: 403 insufficient_scope, step-up authorization.

It prints each transition of the machine (from —trigger→ to), each effect it asks for, and each
HTTP exchange (method, URL without its query, status, time), then the tools listed and a summary.
Secrets (tokens, codes, the PKCE verifier, state) are never printed.`,
		examples: []string{
			"mcpauth demo",
			"mcpauth demo -v                      # also the machine's inputs",
			"mcpauth demo --trace demo.jsonl      # also the machine trace as JSON lines",
			"mcpauth demo --mermaid > path.mmd    # only the path taken, as a Mermaid diagram",
		},
		timeout: 30 * time.Second,
		bind: func(fs *flag.FlagSet) action {
			trace := fs.String("trace", "", "also write the machine trace to `FILE` as JSON lines (secrets redacted)")
			mermaid := fs.Bool("mermaid", false, "print only the path taken, as a Mermaid state diagram (with -v the live trace goes to stderr)")
			return func(ctx context.Context, inv *invocation) error {
				return runDemo(ctx, inv, *trace, *mermaid)
			}
		},
	}
}

// The demo's world: what the servers require and offer.
var demoWorld = testworld.Options{
	PRM:               testworld.PRMHeader,
	Metadata:          testworld.MetadataRFC8414,
	DCR:               true,
	RotateRefresh:     true,
	IssParameter:      true,
	ChallengeScope:    "mcp:read",
	ScopesSupported:   []string{"mcp:read", "mcp:write"},
	ASScopesSupported: []string{"mcp:read", "mcp:write", "offline_access"},
	ToolScopes:        map[string]string{"write": "mcp:write"},
}

// demoRedirectURI is registered and sent as redirect_uri; the headless user
// agent takes the authorization response from the redirect's Location, so
// nothing listens there.
const demoRedirectURI = "http://127.0.0.1/callback"

// demoLineWidth shortens the longest effects (a whole discovery record)
// in the demo's trace; -v prints them whole.
const demoLineWidth = 220

func runDemo(ctx context.Context, inv *invocation, traceFile string, mermaidOnly bool) error {
	e := inv.env
	started := time.Now()

	// Where the live trace goes: stdout, or with --mermaid stderr (with -v)
	// or nowhere.
	var out *console
	switch {
	case !mermaidOnly:
		out = e.stdoutConsole()
	case inv.verbose:
		out = e.stderrConsole()
	}
	p := demoPrinter{out}

	world, err := testworld.Start(demoWorld)
	if err != nil {
		return fmt.Errorf("starting the demo servers: %w", err)
	}
	defer world.Close()

	path := &pathRecorder{}
	tracers := driver.Tracers{path}
	if out != nil {
		width := 0
		if !inv.verbose {
			width = demoLineWidth
		}
		tracers = append(tracers, &liveTracer{c: out, inputs: inv.verbose, width: width})
	}
	var recorder *driver.TraceRecorder
	if traceFile != "" {
		f, err := os.Create(traceFile)
		if err != nil {
			return &failure{msg: "cannot write the trace: " + err.Error(), next: "pass --trace a writable path", err: err}
		}
		defer f.Close()
		recorder = driver.NewTraceRecorder(f)
		tracers = append(tracers, recorder)
	}

	pool := http.DefaultTransport.(*http.Transport).Clone()
	defer pool.CloseIdleConnections()
	var network http.RoundTripper = pool
	if e.demoNetwork != nil {
		network = e.demoNetwork(pool)
	}
	var count httpCounter
	logged := func(kind string) http.RoundTripper {
		return &httpLogger{base: network, kind: kind, c: out, count: &count}
	}
	store := driver.NewMemoryStore()
	if e.demoDone != nil {
		defer e.demoDone(store, world.MCPURL())
	}

	p.intro(world)
	t, err := httpdriver.NewTransport(ctx, machine.Config{
		Server:      world.MCPURL(),
		RedirectURI: demoRedirectURI,
		ClientName:  "mcpauth demo",
	}, httpdriver.Options{
		Base:      logged("mcp"),
		Requester: &httpdriver.Requester{Client: &http.Client{Transport: logged("oauth")}},
		UserAgent: httpdriver.HeadlessUserAgent{Client: &http.Client{Transport: logged("browser")}},
		Store:     store,
		Tracer:    tracers,
	})
	if err != nil {
		return err
	}
	defer t.Close()

	p.act(1, "connect and list the tools: no credential yet, so the first request draws a 401,",
		"and the machine discovers, registers, authorizes (PKCE) and exchanges the code")
	session, err := connectMCP(ctx, t, world.MCPURL())
	if err != nil {
		return fmt.Errorf("act 1, connect: %w", err)
	}
	defer session.Close()
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("act 1, tools/list: %w", err)
	}

	p.act(2, "call echo: the credential is good, the request passes straight through")
	echo1, err := callTool(ctx, session, "echo", map[string]any{"text": "hello"})
	if err != nil {
		return fmt.Errorf("act 2, call echo: %w", err)
	}

	world.ExpireAccessTokens()
	p.act(3, "the server expires every access token; call echo: 401 invalid_token,",
		"one refresh (the refresh token rotates), and the call is sent again")
	echo2, err := callTool(ctx, session, "echo", map[string]any{"text": "hello again"})
	if err != nil {
		return fmt.Errorf("act 3, call echo after expiry: %w", err)
	}

	p.act(4, "call write, which needs scope mcp:write: 403 insufficient_scope,",
		"a step-up authorization for the wider scope, and the call is sent again")
	written, err := callTool(ctx, session, "write", map[string]any{})
	if err != nil {
		return fmt.Errorf("act 4, call write: %w", err)
	}
	session.Close()

	if recorder != nil {
		if err := recorder.Err(); err != nil {
			return &failure{msg: "writing the trace failed: " + err.Error(), err: err}
		}
	}
	total, byKind := count.counts()
	p.results(tools.Tools, [][2]string{{"echo", echo1}, {"echo", echo2}, {"write", written}})
	p.summary(total, byKind, time.Since(started), world.Stats(), t.Session().Snapshot())
	if traceFile != "" {
		p.note("machine trace written to " + traceFile + " (JSON lines; replay it with driver.Replay)")
	}
	if mermaidOnly {
		fmt.Fprint(e.stdout, path.mermaid())
	}
	return nil
}

// callTool calls a tool and returns its text, or the tool's error.
func callTool(ctx context.Context, s *mcp.ClientSession, name string, args map[string]any) (string, error) {
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			b.WriteString(t.Text)
		}
	}
	if res.IsError {
		return "", fmt.Errorf("tool %s reported an error: %s", name, b.String())
	}
	return b.String(), nil
}

// demoPrinter writes the demo's narrative around the live trace; with no
// console (--mermaid without -v) it prints nothing.
type demoPrinter struct{ c *console }

func (p demoPrinter) intro(w *testworld.World) {
	if p.c == nil {
		return
	}
	c := p.c
	c.printf("%s\n\n", c.paint(styleBold, "mcpauth demo: the MCP authorization flow, live, against servers on 127.0.0.1"))
	row := func(k, v string) { c.printf("  %-21s %s\n", k, v) }
	row("MCP server", w.MCPURL())
	row("", c.paint(styleDim, "tools echo and write; write needs scope mcp:write"))
	row("authorization server", w.Issuer())
	row("", c.paint(styleDim, "metadata (RFC 8414), registration (RFC 7591), PKCE S256, iss (RFC 9207), rotating refresh tokens"))
	row("client", "the MCP Go SDK over mcpauth's http.RoundTripper")
	row("", c.paint(styleDim, "a headless user agent plays the browser; tokens go to a memory store"))
	c.printf("\n  %s\n", c.paint(styleDim, "time     kind    state: a transition · effect: what the machine asks for · http: an exchange"))
}

func (p demoPrinter) act(n int, lines ...string) {
	if p.c == nil {
		return
	}
	p.c.printf("\n%s\n", p.c.paint(styleBold, fmt.Sprintf("▸ %d. %s", n, lines[0])))
	for _, l := range lines[1:] {
		p.c.printf("%s\n", p.c.paint(styleBold, "     "+l))
	}
}

func (p demoPrinter) results(tools []*mcp.Tool, calls [][2]string) {
	if p.c == nil {
		return
	}
	c := p.c
	c.printf("\n%s\n", c.paint(styleBold, "MCP tools listed"))
	for _, t := range tools {
		c.printf("  %-6s %s\n", t.Name, t.Description)
	}
	c.printf("%s\n", c.paint(styleBold, "MCP calls"))
	for _, call := range calls {
		c.printf("  %-6s → %q\n", call[0], call[1])
	}
}

func (p demoPrinter) summary(total int, byKind map[string]int, took time.Duration, st testworld.Stats, snap machine.Snapshot) {
	if p.c == nil {
		return
	}
	c := p.c
	kinds := fmt.Sprintf("%d MCP, %d OAuth, %d browser", byKind["mcp"], byKind["oauth"], byKind["browser"])
	line := fmt.Sprintf("✓ %s (%s) in %s · %s · %s · %s · %s",
		plural(total, "HTTP request"), kinds, ms(took),
		plural(st.Registrations, "registration"),
		plural(st.Authorizations, "authorization"),
		plural(st.TokenRequests["authorization_code"], "code exchange"),
		plural(st.TokenRequests["refresh_token"], "refresh"))
	line = strings.Replace(line, "refreshs", "refreshes", 1)
	c.printf("\n%s\n", c.paint(styleGreen, line))
	c.printf("  final state %s, scope %q\n", snap.State, snap.Credential.Scope)
}

func (p demoPrinter) note(s string) {
	if p.c != nil {
		p.c.printf("  %s\n", s)
	}
}
