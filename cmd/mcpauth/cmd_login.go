package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/machine"
)

// loginFlags are the flags of `mcpauth login`.
type loginFlags struct {
	store             *string
	clientID          *string
	clientSecret      *string
	clientSecretFile  *string
	clientMetadataURL *string
	scope             *string
	callbackPort      *int
	noBrowser         *bool
	ext               *extFlags
}

func loginCommand() *command {
	return &command{
		name:    "login",
		args:    "<mcp-url>",
		nargs:   1,
		summary: "sign in to an MCP server in the browser and store the tokens",
		about: `
Signs in for real: makes one MCP request to the server, and when it answers 401 discovers its
authorization server (RFC 9728, RFC 8414), gets a client identity (a pre-registered --client-id,
a client metadata document with --client-metadata-url, or dynamic registration, RFC 7591), opens
your browser at the authorization page (PKCE), waits for the answer on a loopback callback
(http://127.0.0.1:<port>/callback, RFC 8252), exchanges the code for tokens, and stores the tokens
and the registration in the store file (mode 0600). A stored sign-in for the server is replaced.

The client secret of a confidential client comes from --client-secret-file, the environment
variable MCPAUTH_CLIENT_SECRET, or --client-secret (visible to other users in the process list:
prefer the first two).

Without a user: --grant client_credentials signs in as a machine client (--client-id with its
secret, or --client-key for private_key_jwt), --grant workload_identity presents the token your
platform issued the workload (--workload-token-file or --workload-token-env), and --grant
enterprise_managed exchanges your ID token at the identity provider (--idp-token-endpoint,
--idp-client-id, --id-token-file). Several grants may be given, in order of preference. Tokens are
bound to a key (DPoP, RFC 9449) when the server supports it (--dpop); the key is kept in the store.

The extension settings are stored with the sign-in, as names only (grants, file paths, variable
names, URLs, ids; never a secret or a key), so that 'mcpauth token', 'tools' and 'logout' renew and
revoke it the same way without the flags: those files and variables must still be there then.

--store takes a file or a PostgreSQL DSN (postgres://…), to share sign-ins between machines.

Progress goes to stderr; what you signed in to (issuer, scopes, expiry) to stdout.`,
		examples: []string{
			"mcpauth login https://mcp.example.com/mcp",
			"mcpauth login --no-browser https://mcp.example.com/mcp        # print the URL to open instead",
			"mcpauth login --client-id my-app --client-secret-file ~/.secret https://mcp.example.com/mcp",
			"MCPAUTH_CLIENT_SECRET=... mcpauth login --client-id my-app https://mcp.example.com/mcp",
			"mcpauth login --client-metadata-url https://app.example.com/client.json https://mcp.example.com/mcp",
			"mcpauth login --callback-port 8976 --scope 'files:read files:write' https://mcp.example.com/mcp",
			"mcpauth login --grant client_credentials --client-id svc-42 --client-secret-file ~/.secret https://mcp.example.com/mcp",
			"mcpauth login --grant client_credentials --client-id svc-42 --client-key svc-42.pem https://mcp.example.com/mcp",
			"mcpauth login --grant workload_identity --workload-token-file /var/run/secrets/tokens/mcp https://mcp.example.com/mcp",
			"mcpauth login --grant enterprise_managed --client-id mcp-client --client-secret-file ~/.secret --idp-token-endpoint https://idp.example.com/oauth2/token --idp-client-id idp-client --id-token-file ~/.id_token https://mcp.example.com/mcp",
			"mcpauth login --dpop always https://mcp.example.com/mcp",
			"mcpauth login --store postgres://mcpauth@db.internal:5432/mcpauth?sslmode=verify-full https://mcp.example.com/mcp",
		},
		timeout: 5 * time.Minute,
		bind: func(fs *flag.FlagSet) action {
			f := loginFlags{
				store:             storePathFlag(fs),
				clientID:          fs.String("client-id", "", "a pre-registered client id (skips registration)"),
				clientSecret:      fs.String("client-secret", "", "the pre-registered client's secret (prefer --client-secret-file or $MCPAUTH_CLIENT_SECRET)"),
				clientSecretFile:  fs.String("client-secret-file", "", "read the client secret from `FILE`"),
				clientMetadataURL: fs.String("client-metadata-url", "", "this client's Client ID Metadata Document `URL` (https), used when the server supports it"),
				scope:             fs.String("scope", "", "the scopes to ask for, space-separated (default: what the server suggests)"),
				callbackPort:      fs.Int("callback-port", 0, "the loopback `port` the browser returns to (0: any free port)"),
				noBrowser:         fs.Bool("no-browser", false, "print the authorization URL instead of opening a browser"),
				ext:               bindExtFlags(fs),
			}
			return func(ctx context.Context, inv *invocation) error {
				return runLogin(ctx, inv, f)
			}
		},
	}
}

// clientSecret resolves the secret: one of the flags, else the environment.
func (f loginFlags) secret(e *env) (string, error) {
	if *f.clientSecret != "" && *f.clientSecretFile != "" {
		return "", usageError("pass --client-secret or --client-secret-file, not both")
	}
	secret := *f.clientSecret
	if *f.clientSecretFile != "" {
		b, err := os.ReadFile(*f.clientSecretFile)
		if err != nil {
			return "", &failure{msg: "cannot read the client secret: " + err.Error(), next: "check --client-secret-file", err: err}
		}
		secret = strings.TrimRight(string(b), "\r\n")
		if secret == "" {
			return "", usageError("the client secret file %s is empty", *f.clientSecretFile)
		}
	}
	if secret == "" {
		secret = e.getenv("MCPAUTH_CLIENT_SECRET")
	}
	if secret != "" && *f.clientID == "" {
		return "", usageError("a client secret needs --client-id")
	}
	return secret, nil
}

func runLogin(ctx context.Context, inv *invocation, f loginFlags) error {
	e := inv.env
	server, err := serverArg(inv)
	if err != nil {
		return err
	}
	secret, err := f.secret(e)
	if err != nil {
		return err
	}
	if u := *f.clientMetadataURL; u != "" {
		if p, err := url.Parse(u); err != nil || p.Scheme != "https" || strings.Trim(p.Path, "/") == "" {
			return usageError("--client-metadata-url must be an https URL with a path")
		}
	}
	if p := *f.callbackPort; p < 0 || p > 65535 {
		return usageError("--callback-port must be between 0 and 65535")
	}
	// A new sign-in takes its settings from the flags only.
	ext, err := f.ext.over(extSettings{})
	if err != nil {
		return err
	}
	if ext.ClientKeyFile != "" && *f.clientID == "" {
		return usageError("--client-key needs --client-id (the client the key was registered for)")
	}
	if ext.needsClient() && *f.clientID == "" {
		return usageError("--grant %s needs a pre-registered client: --client-id, with its secret or --client-key", strings.Join(ext.Grants, ","))
	}
	keys := &driver.KeySigner{}
	keyAlg, err := ext.addClientKey(keys)
	if err != nil {
		return err
	}

	st, err := openStore(ctx, e, *f.store, false)
	if err != nil {
		return err
	}
	defer st.close()
	prior, err := loadSignIn(ctx, st, server)
	if err != nil {
		return err
	}

	w := newWiring(inv)
	defer w.close()
	prog := &progress{c: e.stderrConsole(), lines: inv.verbose, now: e.now}
	cfg := machine.Config{
		Server:            server,
		ClientName:        "mcpauth",
		ClientMetadataURL: *f.clientMetadataURL,
	}
	ext.configure(&cfg)
	var ua driver.UserAgent
	if ext.needsUser() {
		cb, err := listenCallback(*f.callbackPort, prior)
		if err != nil {
			return err
		}
		defer cb.Close()
		cb.Timeout = untilDeadline(ctx, 5*time.Minute)
		open := httpdriver.OpenBrowser
		if *f.noBrowser {
			open = httpdriver.PrintURL
		}
		cb.Open = func(authURL string) error {
			prog.breakLine()
			return open(authURL)
		}
		ua = cb
		if e.userAgent != nil {
			ua = e.userAgent(cb.RedirectURI())
		}
		cfg.RedirectURI = cb.RedirectURI()
	}
	// The flow runs on a staging store that holds what the sign-in may
	// reuse (the discovery and the registration) but not the stored
	// credential, which would simply be used. The real store changes only
	// once the sign-in succeeded: a refused or abandoned sign-in loses
	// nothing. (A stored registration that cannot take this redirect URI
	// is not used; the machine registers anew.)
	stage, err := stageSignIn(ctx, st, server, prior)
	if err != nil {
		return err
	}
	// A new sign-in gets a new DPoP key: the driver's signer makes it and
	// keeps it beside the tokens before any token is bound to it.
	signer := driver.NewStoredKeySigner(stage, server)
	signer.Keys = keys
	if *f.scope != "" {
		cfg.Scopes = strings.Fields(*f.scope)
	}
	if *f.clientID != "" {
		c := effects.Client{ClientID: *f.clientID, ClientSecret: secret}
		if keyAlg != "" {
			c.KeyID, c.KeyAlg = clientKeyID, keyAlg
		}
		cfg.Clients = []effects.Client{c}
	}
	prog.c.printf("signing in to %s\n", server)
	t, err := w.transport(ctx, cfg, httpdriver.Options{
		UserAgent: ua,
		Store:     stage,
		Tracer:    w.tracer(prog),
		Signer:    signer,
		Sources:   ext.sources(),
	})
	if err != nil {
		return err
	}
	defer t.Close()

	// One MCP request triggers the sign-in; listing the tools checks it.
	session, err := connectMCP(ctx, t, server)
	prog.breakLine()
	if err != nil {
		return err
	}
	tools, listErr := session.ListTools(ctx, nil)
	session.Close()
	if err := w.errs.first(); err != nil {
		return &failure{msg: "signed in, but the store could not be written: " + trim(err.Error()), next: "check that " + st.where + " is writable, then sign in again", err: err}
	}
	snap := t.Session().Snapshot()
	if !snap.HasCredential() {
		return &failure{msg: server + " answered without asking for authorization: there is nothing to sign in to", next: "use the server as it is; 'mcpauth tools' needs no sign-in for it either"}
	}
	if err := commitSignIn(ctx, st, stage, server, ext, snap.Credential.DPoPKeyID != ""); err != nil {
		return err
	}

	out := e.stdoutConsole()
	cred := snap.Credential
	out.printf("%s %s\n", out.paint(styleGreen, "signed in to"), server)
	row := func(k, v string) { out.printf("  %-14s %s\n", k, v) }
	row("issuer", cred.Issuer)
	clientLine := cred.ClientID
	if clientLine == "" {
		clientLine = "(none: the workload's token identifies it)"
	}
	if snap.HasClient && snap.Client.ClientID != "" {
		clientLine += "  (" + clientKind(snap.Client) + ")"
	}
	row("client id", clientLine)
	if g := grantOf(cred); g != machine.GrantAuthorizationCode {
		row("grant", string(g))
	}
	scope := cred.Scope
	if scope == "" {
		scope = "(none named)"
	}
	row("scopes", scope)
	row("expires", expiry(cred.ExpiresAt, e.now(), renewable(cred)))
	switch {
	case cred.RefreshToken != "":
		row("refresh token", "held (renewed by 'mcpauth token' when needed)")
	case userless(cred):
		row("refresh token", "none needed: 'mcpauth token' makes the grant again when the access token expires")
	default:
		row("refresh token", "none: sign in again when the access token expires")
	}
	if cred.DPoPKeyID != "" {
		row("token type", "DPoP (bound to a key kept in the store, RFC 9449)")
	}
	if listErr == nil {
		row("tools", strconv.Itoa(len(tools.Tools)))
	} else {
		msg, _ := explain(listErr, inv)
		row("tools", "could not be listed: "+msg)
	}
	row("stored in", st.where)
	return nil
}

// listenCallback listens for the browser's answer on the loopback. A
// stored client is bound to the redirect URI it was registered (or first
// used) with, and an authorization server may match it exactly, port
// included: its port is reused when free.
func listenCallback(flagPort int, prior signIn) (*httpdriver.CallbackServer, error) {
	port := flagPort
	registered := registeredPort(prior)
	if port == 0 && registered != 0 {
		port = registered
	}
	cb, err := httpdriver.ListenCallback(port, "/callback")
	if err != nil && port == registered && flagPort == 0 {
		cb, err = httpdriver.ListenCallback(0, "/callback")
	}
	if err != nil {
		return nil, &failure{msg: fmt.Sprintf("cannot listen for the browser's answer on 127.0.0.1:%d: %v", port, err), next: "pass another --callback-port (0 picks a free one)", err: err}
	}
	return cb, nil
}

// grantOf is the grant a credential was obtained with.
func grantOf(t effects.Tokens) machine.Grant {
	if t.Grant == "" {
		return machine.GrantAuthorizationCode
	}
	return machine.Grant(t.Grant)
}

// userless reports whether a credential was obtained without a user, so
// that it is renewed by making its grant again.
func userless(t effects.Tokens) bool {
	return grantOf(t) != machine.GrantAuthorizationCode
}

// renewable reports whether a credential can be renewed without a user.
func renewable(t effects.Tokens) bool {
	return t.RefreshToken != "" || userless(t)
}

// registeredPort is the port of the loopback redirect URI the stored client
// was registered or used with, or 0.
func registeredPort(in signIn) int {
	if !in.hasClient || len(in.client.RedirectURIs) == 0 {
		return 0
	}
	u, err := url.Parse(in.client.RedirectURIs[0])
	if err != nil || u.Hostname() != "127.0.0.1" || u.Path != "/callback" {
		return 0
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		return 0
	}
	return p
}

// stageSignIn returns a memory store holding what a new sign-in to server
// may reuse from st: its discovery record and the registration at its
// issuer.
func stageSignIn(ctx context.Context, st *store, server string, prior signIn) (*driver.MemoryStore, error) {
	stage := driver.NewMemoryStore()
	keys := []string{discoveryKey(server)}
	if iss := prior.issuer(); iss != "" {
		keys = append(keys, clientKey(iss))
	}
	for _, k := range keys {
		r, err := st.Get(ctx, k)
		if errors.Is(err, driver.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := putRaw(ctx, stage, k, r.Value); err != nil {
			return nil, err
		}
	}
	return stage, nil
}

// commitSignIn moves a successful sign-in from the staging store into st:
// the credential, discovery, registration and DPoP key the flow stored,
// then the settings that renew it. A DPoP key the new tokens are not bound
// to is not kept.
func commitSignIn(ctx context.Context, st *store, stage *driver.MemoryStore, server string, ext extSettings, bound bool) error {
	keys, err := stage.Keys(ctx, "")
	if err != nil {
		return err
	}
	for _, k := range keys {
		r, err := stage.Get(ctx, k)
		if err != nil {
			return err
		}
		if err := putRaw(ctx, st, k, r.Value); err != nil {
			return err
		}
	}
	if !bound {
		if err := st.Delete(ctx, dpopKeyKey(server), 0); err != nil {
			return err
		}
	}
	if ext.isZero() {
		return st.Delete(ctx, settingsKey(server), 0)
	}
	return putRecord(ctx, st, settingsKey(server), ext)
}
