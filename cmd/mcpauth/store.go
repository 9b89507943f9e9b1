package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/driver/pgstore"
	"github.com/mcpauth/mcpauth/effects"
)

// The store keys of package driver: one credential and one discovery
// record per MCP server, one registration per issuer.
const (
	tokensPrefix    = driver.TokensPrefix
	discoveryPrefix = driver.DiscoveryPrefix
	clientPrefix    = driver.ClientPrefix
)

// The command's own records, one of each per MCP server: the extension
// settings a sign-in was made with (file paths, variable names, URLs and
// ids: never a secret), so that token, tools and logout renew and revoke it
// the same way; and the private key its tokens are bound to by DPoP (RFC
// 9449), kept with the tokens like any other secret of the store.
const (
	settingsPrefix = "cli-settings:"
)

var (
	tokensKey    = driver.TokensKey
	discoveryKey = driver.DiscoveryKey
	clientKey    = driver.ClientKey
)

func settingsKey(server string) string { return settingsPrefix + server }

// dpopKeyKey is the record the driver's StoredKeySigner keeps the
// sign-in's DPoP key in.
func dpopKeyKey(server string) string {
	return driver.DPoPKeyKey(server, dpopKeyID)
}

// pgstore.Store lists its keys too.
var _ driver.Lister = (*pgstore.Store)(nil)

// storePathFlag registers --store.
func storePathFlag(fs *flag.FlagSet) *string {
	return fs.String("store", "", "the store: a file `PATH`, or a PostgreSQL DSN (postgres://user@host:5432/db?sslmode=verify-full) shared by many machines (default: the user's config directory/mcpauth/store.json)")
}

// isDSN reports whether a --store value names a PostgreSQL database rather
// than a file.
func isDSN(v string) bool {
	l := strings.ToLower(v)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// redactDSN is a DSN fit to print: no password, in the user part or in the
// query.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "a PostgreSQL database (the DSN does not parse)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if strings.Contains(strings.ToLower(k), "password") {
				q.Del(k)
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// resolveStorePath is --store, or the default under os.UserConfigDir.
func resolveStorePath(e *env, flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	p, err := e.defaultStorePath()
	if err != nil {
		return "", &failure{msg: "cannot find the user's config directory: " + err.Error(), next: "pass --store PATH", err: err}
	}
	return p, nil
}

// store is the store a command works on: a file store, a PostgreSQL store,
// or (for a command that only reads, when the file does not exist) an
// empty memory store, so that nothing is created by reading. Every kind
// lists its keys (driver.Lister) and is otherwise used through
// driver.Store only.
type store struct {
	driver.Store
	list  driver.Lister
	where string // the file's path, or the DSN without its password
	close func()
}

// Keys implements driver.Lister.
func (s *store) Keys(ctx context.Context, prefix string) ([]string, error) {
	return s.list.Keys(ctx, prefix)
}

// openStore opens --store: a PostgreSQL store for a postgres:// DSN (its
// schema is created on first use), else the file store. With readOnly, a
// store file that does not exist is an empty store and is not created.
//
// A corrupt store file is moved aside by the file store (never
// overwritten): that is reported as a failure, so the user hears of it
// before anything new is written. Close the store when done.
func openStore(ctx context.Context, e *env, flagValue string, readOnly bool) (*store, error) {
	where, err := resolveStorePath(e, flagValue)
	if err != nil {
		return nil, err
	}
	if isDSN(where) {
		shown := redactDSN(where)
		pg, err := pgstore.Open(ctx, where)
		if err != nil {
			return nil, &failure{
				msg:  "cannot open the PostgreSQL store " + shown + ": " + trim(err.Error()),
				next: "check the DSN (postgres://user@host:5432/db?sslmode=…) and that the database is running and reachable",
				err:  err,
			}
		}
		return &store{Store: pg, list: pg, where: shown, close: pg.Close}, nil
	}
	if readOnly {
		if _, err := os.Stat(where); errors.Is(err, fs.ErrNotExist) {
			m := driver.NewMemoryStore()
			return &store{Store: m, list: m, where: where, close: func() {}}, nil
		}
	}
	f, err := driver.OpenFileStore(where)
	if err != nil {
		return nil, err
	}
	return &store{Store: f, list: f, where: where, close: func() {}}, nil
}

// listUnder returns the keys under prefix with the prefix removed, sorted.
func listUnder(ctx context.Context, l driver.Lister, prefix string) ([]string, error) {
	keys, err := l.Keys(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			out = append(out, rest)
		}
	}
	return out, nil
}

// getRecord decodes the record at key into v; found is false when there is
// none.
func getRecord(ctx context.Context, s driver.Store, key string, v any) (found bool, err error) {
	r, err := s.Get(ctx, key)
	if errors.Is(err, driver.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(r.Value, v); err != nil {
		return false, &driver.RecordError{Key: key, Err: err}
	}
	return true, nil
}

// putRecord writes v at key whatever its version (as the driver writes
// registrations), retrying a lost compare-and-swap.
func putRecord(ctx context.Context, s driver.Store, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return putRaw(ctx, s, key, b)
}

// putRaw writes b at key whatever its version, retrying a lost
// compare-and-swap.
func putRaw(ctx context.Context, s driver.Store, key string, b []byte) error {
	for {
		var cur uint64
		r, err := s.Get(ctx, key)
		switch {
		case err == nil:
			cur = r.Version
		case !errors.Is(err, driver.ErrNotFound):
			return err
		}
		_, err = s.Put(ctx, key, b, cur)
		var conflict *driver.ConflictError
		if errors.As(err, &conflict) {
			continue
		}
		return err
	}
}

// signIn is what the store holds for one MCP server.
type signIn struct {
	server      string
	tokens      effects.Tokens
	hasTokens   bool
	discovery   effects.Discovery
	hasDisc     bool
	client      effects.Client
	hasClient   bool
	settings    extSettings
	hasSettings bool
}

// loadSignIn reads the records of server through the store.
func loadSignIn(ctx context.Context, s driver.Store, server string) (signIn, error) {
	in := signIn{server: server}
	var err error
	if in.hasTokens, err = getRecord(ctx, s, tokensKey(server), &in.tokens); err != nil {
		return in, err
	}
	if in.hasDisc, err = getRecord(ctx, s, discoveryKey(server), &in.discovery); err != nil {
		return in, err
	}
	if in.hasSettings, err = getRecord(ctx, s, settingsKey(server), &in.settings); err != nil {
		return in, err
	}
	issuer := in.issuer()
	if issuer != "" {
		if in.hasClient, err = getRecord(ctx, s, clientKey(issuer), &in.client); err != nil {
			return in, err
		}
	}
	return in, nil
}

// issuer is the authorization server of the sign-in.
func (in signIn) issuer() string {
	if in.tokens.Issuer != "" {
		return in.tokens.Issuer
	}
	return in.discovery.Authorization.Issuer
}
