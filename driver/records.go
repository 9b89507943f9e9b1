package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// The store's key prefixes: one credential and one discovery record per
// MCP server, one registration per authorization server issuer (SEP-2352),
// one DPoP key per server and key id (StoredKeySigner).
const (
	TokensPrefix    = "tokens:"
	DiscoveryPrefix = "discovery:"
	ClientPrefix    = "client:"
	DPoPKeyPrefix   = "dpop-key:"
)

// TokensKey, DiscoveryKey and ClientKey name the records a session keeps
// (tools that list, show or delete them use the same names).
func TokensKey(server string) string    { return TokensPrefix + server }
func DiscoveryKey(server string) string { return DiscoveryPrefix + server }
func ClientKey(issuer string) string    { return ClientPrefix + issuer }

// DPoPKeyKey names the record a StoredKeySigner keeps key id of server in.
func DPoPKeyKey(server, id string) string { return DPoPKeyPrefix + server + ":" + id }

// RecordError reports a stored record that cannot be decoded. The record is
// left in place: nothing is overwritten on a guess.
type RecordError struct {
	Key string
	Err error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("driver: stored record %q is unreadable: %v", e.Key, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// getJSON reads key into v; found is false when there is no record.
func getJSON(ctx context.Context, s Store, key string, v any) (version uint64, found bool, err error) {
	r, err := s.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if err := json.Unmarshal(r.Value, v); err != nil {
		return 0, false, &RecordError{Key: key, Err: err}
	}
	return r.Version, true, nil
}

// putJSON writes v at key with a compare-and-swap on ifVersion, or
// unconditionally (retrying on conflict) when ifVersion < 0.
func putJSON(ctx context.Context, s Store, key string, v any, ifVersion int64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	if ifVersion >= 0 {
		return s.Put(ctx, key, b, uint64(ifVersion))
	}
	for {
		var cur uint64
		r, err := s.Get(ctx, key)
		switch {
		case err == nil:
			cur = r.Version
		case !errors.Is(err, ErrNotFound):
			return 0, err
		}
		v, err := s.Put(ctx, key, b, cur)
		var conflict *ConflictError
		if errors.As(err, &conflict) {
			continue
		}
		return v, err
	}
}

// LoadStored reads what the store holds for server, as the machine's
// StoredLoaded input. An unreadable record is reported, not dropped.
func LoadStored(ctx context.Context, s Store, server string) (machine.StoredLoaded, error) {
	var in machine.StoredLoaded
	var t effects.Tokens
	v, ok, err := getJSON(ctx, s, TokensKey(server), &t)
	if err != nil {
		return in, err
	}
	if ok {
		in.Tokens, in.TokensVersion = &t, v
	}
	var d effects.Discovery
	if _, ok, err = getJSON(ctx, s, DiscoveryKey(server), &d); err != nil {
		return in, err
	} else if ok {
		in.Discovery = &d
		c, err := LoadClient(ctx, s, d.Authorization.Issuer)
		if err != nil {
			return in, err
		}
		in.Client = c.Client
	}
	return in, nil
}

// LoadClient reads the registration kept for issuer.
func LoadClient(ctx context.Context, s Store, issuer string) (machine.ClientLoaded, error) {
	var c effects.Client
	_, ok, err := getJSON(ctx, s, ClientKey(issuer), &c)
	if err != nil || !ok {
		return machine.ClientLoaded{}, err
	}
	return machine.ClientLoaded{Client: &c}, nil
}

// saveEffect carries out one store effect. On a lost compare-and-swap of
// the credential it returns the input that tells the machine about the
// newer credential stored by someone else.
func saveEffect(ctx context.Context, s Store, e effects.Effect) (machine.Input, error) {
	switch e := e.(type) {
	case effects.SaveTokens:
		_, err := putJSON(ctx, s, TokensKey(e.Server), e.Tokens, int64(e.IfVersion))
		var conflict *ConflictError
		if errors.As(err, &conflict) && conflict.Current != nil {
			var t effects.Tokens
			if jerr := json.Unmarshal(conflict.Current.Value, &t); jerr != nil {
				return nil, &RecordError{Key: conflict.Key, Err: jerr}
			}
			return machine.CredentialChanged{Tokens: t, Version: conflict.Current.Version}, nil
		}
		return nil, err
	case effects.ForgetTokens:
		err := s.Delete(ctx, TokensKey(e.Server), e.IfVersion)
		var conflict *ConflictError
		if errors.As(err, &conflict) {
			return nil, nil // someone stored newer tokens: keep them
		}
		return nil, err
	case effects.SaveClient:
		_, err := putJSON(ctx, s, ClientKey(e.Client.Issuer), e.Client, -1)
		return nil, err
	case effects.ForgetClient:
		return nil, s.Delete(ctx, ClientKey(e.Issuer), 0)
	case effects.SaveDiscovery:
		_, err := putJSON(ctx, s, DiscoveryKey(e.Server), e.Discovery, -1)
		return nil, err
	}
	return nil, nil
}
