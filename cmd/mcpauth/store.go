package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
)

// The store keys of package driver (driver/records.go): one credential and
// one discovery record per MCP server, one registration per issuer. The
// driver keeps them unexported; the CLI must name them to list, show and
// delete sign-ins.
const (
	tokensPrefix    = "tokens:"
	discoveryPrefix = "discovery:"
	clientPrefix    = "client:"
)

func tokensKey(server string) string    { return tokensPrefix + server }
func discoveryKey(server string) string { return discoveryPrefix + server }
func clientKey(issuer string) string    { return clientPrefix + issuer }

// storePathFlag registers --store.
func storePathFlag(fs *flag.FlagSet) *string {
	return fs.String("store", "", "the store file (default: the user's config directory/mcpauth/store.json)")
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

// openStore opens the file store. A corrupt file has been moved aside by
// the store (never overwritten): that is reported as a failure, so the
// user hears of it before anything new is written.
func openStore(path string) (*driver.FileStore, error) {
	s, err := driver.OpenFileStore(path)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// storeExists reports whether the store file exists.
func storeExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// storeFile is the store file's JSON format, as documented on
// driver.FileStore; read directly (read-only) because driver.Store has no
// way to list its keys.
type storeFile struct {
	Version int `json:"version"`
	Records map[string]struct {
		Version uint64 `json:"version"`
		Value   []byte `json:"value"` // base64 in the file
	} `json:"records"`
}

// listRecords reads every record of the store file without changing it. A
// missing file is an empty store. A file that does not parse is an error
// (left untouched: the file store moves it aside when it next meets it).
func listRecords(path string) (map[string][]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, err
	}
	var f storeFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version < 1 {
		return nil, &failure{
			msg:  fmt.Sprintf("the store file %s is unreadable (not a version 1 store); it was left unchanged", path),
			next: "move it away and sign in again (mcpauth login moves a corrupt store aside by itself)",
		}
	}
	if f.Version > 1 {
		return nil, &failure{
			msg:  fmt.Sprintf("the store file %s has format version %d, newer than this mcpauth reads", path, f.Version),
			next: "use a newer mcpauth, or pass --store with another file",
		}
	}
	out := make(map[string][]byte, len(f.Records))
	for k, r := range f.Records {
		out[k] = r.Value
	}
	return out, nil
}

// keysWithPrefix returns the sorted keys of recs starting with prefix,
// with the prefix removed.
func keysWithPrefix(recs map[string][]byte, prefix string) []string {
	var out []string
	for k := range recs {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			out = append(out, rest)
		}
	}
	sort.Strings(out)
	return out
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
	server    string
	tokens    effects.Tokens
	hasTokens bool
	discovery effects.Discovery
	hasDisc   bool
	client    effects.Client
	hasClient bool
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
	issuer := in.tokens.Issuer
	if issuer == "" {
		issuer = in.discovery.Authorization.Issuer
	}
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
