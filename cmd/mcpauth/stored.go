package main

import (
	"context"
	"errors"
	"flag"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/machine"
)

// fallbackRedirectURI is sent when a stored sign-in names no redirect URI;
// the commands that use stored sign-ins never complete an authorization.
const fallbackRedirectURI = "http://127.0.0.1/callback"

// storedConn is an MCP connection signed in with the stored credential
// (refreshed or renewed when needed), for the commands that must never
// open a browser: token and tools.
type storedConn struct {
	server    string
	store     *store
	wiring    *wiring
	agent     *noBrowserAgent
	transport *httpdriver.Transport
	session   *mcp.ClientSession
}

// connectStored connects to server with what the store holds, renewing
// the credential the way it was obtained: the sign-in's stored extension
// settings, with the flags given in their place. It fails with
// *loginNeededError, before any request, when nothing is stored, and after
// the requests when the machine needed the user.
func connectStored(ctx context.Context, inv *invocation, storeFlag string, ext *extFlags, server string) (_ *storedConn, err error) {
	if err := ext.syntax(); err != nil {
		return nil, err
	}
	st, err := openStore(ctx, inv.env, storeFlag, true)
	if err != nil {
		return nil, err
	}
	c := &storedConn{server: server, store: st, wiring: newWiring(inv), agent: &noBrowserAgent{server: server}}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	in, err := loadSignIn(ctx, st, server)
	if err != nil {
		return nil, err
	}
	if !in.hasTokens {
		notSignedIn := &loginNeededError{server: server, msg: "not signed in to " + server + " (no sign-in for it in " + st.where + ")"}
		notSignedIn.stored, _ = listUnder(ctx, st, tokensPrefix)
		return nil, notSignedIn
	}
	settings, err := ext.over(in.settings)
	if err != nil {
		return nil, err
	}
	keys := &driver.KeySigner{}
	if _, err := settings.addClientKey(keys); err != nil {
		return nil, err
	}
	cfg := machine.Config{
		Server:      server,
		RedirectURI: fallbackRedirectURI,
		// Never register a client here: a missing one means "sign in".
		NoDynamicRegistration: true,
	}
	if in.hasClient && len(in.client.RedirectURIs) > 0 {
		cfg.RedirectURI = in.client.RedirectURIs[0]
	}
	settings.configure(&cfg)
	// Tokens bound to a key that is not stored cannot be used.
	if in.hasTokens && in.tokens.DPoPKeyID != "" {
		if _, err := st.Get(ctx, dpopKeyKey(server)); errors.Is(err, driver.ErrNotFound) {
			return nil, &loginNeededError{server: server, msg: "the tokens of the sign-in to " + server + " are bound to a DPoP key that is not stored"}
		}
	}
	signer := driver.NewStoredKeySigner(st.Store, server)
	signer.Keys = keys
	c.transport, err = c.wiring.transport(ctx, cfg, httpdriver.Options{
		UserAgent: c.agent,
		Store:     st,
		Tracer:    c.wiring.tracer(),
		Signer:    signer,
		Sources:   settings.sources(),
	})
	if err != nil {
		return nil, err
	}
	c.session, err = connectMCP(ctx, c.transport, server)
	if err != nil {
		return nil, c.explain(err)
	}
	return c, nil
}

// explain replaces the error of a flow that needed the user with the
// login-needed error, and reports a store error the session met.
func (c *storedConn) explain(err error) error {
	if c.agent.asked.Load() {
		return c.agent.needed()
	}
	if serr := c.wiring.errs.first(); serr != nil && err == nil {
		return serr
	}
	var noClient *machine.NoClientError
	if errors.As(err, &noClient) {
		return &loginNeededError{server: c.server, msg: "the sign-in to " + c.server + " cannot be renewed: no client registration is stored"}
	}
	return err
}

func (c *storedConn) close() {
	if c.session != nil {
		c.session.Close()
	}
	if c.transport != nil {
		c.transport.Close()
	}
	c.wiring.close()
	c.store.close()
}

// bindStored binds the flags of a command that works with a stored
// sign-in (--store and the extension flags) and runs it connected to the
// server named by its argument.
func bindStored(run func(ctx context.Context, inv *invocation, c *storedConn) error) func(fs *flag.FlagSet) action {
	return func(fs *flag.FlagSet) action {
		storeFlag := storePathFlag(fs)
		ext := bindExtFlags(fs)
		return func(ctx context.Context, inv *invocation) error {
			server, err := serverArg(inv)
			if err != nil {
				return err
			}
			c, err := connectStored(ctx, inv, *storeFlag, ext, server)
			if err != nil {
				return err
			}
			defer c.close()
			return run(ctx, inv, c)
		}
	}
}
