package main

import (
	"context"
	"errors"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/machine"
)

// fallbackRedirectURI is sent when a stored sign-in names no redirect URI;
// the commands that use stored sign-ins never complete an authorization.
const fallbackRedirectURI = "http://127.0.0.1/callback"

// storedConn is an MCP connection signed in with the stored credential
// (refreshed when needed), for the commands that must never open a
// browser: token and tools.
type storedConn struct {
	server    string
	wiring    *wiring
	agent     *noBrowserAgent
	transport *httpdriver.Transport
	session   *mcp.ClientSession
}

// connectStored connects to server with what the store holds. It fails
// with *loginNeededError, before any request, when nothing is stored, and
// after the requests when the machine needed the user.
func connectStored(ctx context.Context, inv *invocation, storeFlag, server string) (*storedConn, error) {
	path, err := resolveStorePath(inv.env, storeFlag)
	if err != nil {
		return nil, err
	}
	notSignedIn := &loginNeededError{server: server, msg: "not signed in to " + server + " (no sign-in for it in " + path + ")"}
	if !storeExists(path) {
		return nil, notSignedIn
	}
	store, err := openStore(path)
	if err != nil {
		return nil, err
	}
	in, err := loadSignIn(ctx, store, server)
	if err != nil {
		return nil, err
	}
	if !in.hasTokens {
		if recs, err := listRecords(path); err == nil {
			notSignedIn.stored = keysWithPrefix(recs, tokensPrefix)
		}
		return nil, notSignedIn
	}
	redirect := fallbackRedirectURI
	if in.hasClient && len(in.client.RedirectURIs) > 0 {
		redirect = in.client.RedirectURIs[0]
	}
	c := &storedConn{server: server, wiring: newWiring(inv), agent: &noBrowserAgent{server: server}}
	c.transport, err = c.wiring.transport(ctx, machine.Config{
		Server:      server,
		RedirectURI: redirect,
		// Never register a client here: a missing one means "sign in".
		NoDynamicRegistration: true,
	}, store, c.agent, c.wiring.tracer())
	if err != nil {
		c.close()
		return nil, err
	}
	c.session, err = connectMCP(ctx, c.transport, server)
	if err != nil {
		err = c.explain(err)
		c.close()
		return nil, err
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
}
