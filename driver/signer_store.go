package driver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"

	"github.com/mcpauth/mcpauth/effects"
)

// StoredKeySigner signs with keys it keeps in a Store: a DPoP key (RFC 9449)
// is made once per authorization context and kept beside its tokens, so a
// restarted client still proves possession of the key its tokens and
// refresh token are bound to. Processes sharing the store share the key
// (the first one to save it wins the compare-and-swap). Keys added to Keys
// (client assertion keys) are used as they are and never stored.
type StoredKeySigner struct {
	Store  Store
	Prefix string     // store key prefix, e.g. "dpop-key:<server>:"
	Keys   *KeySigner // keys in memory; stored keys are cached here
}

// NewStoredKeySigner returns a signer keeping DPoP keys for server in store.
func NewStoredKeySigner(store Store, server string) *StoredKeySigner {
	return &StoredKeySigner{Store: store, Prefix: DPoPKeyKey(server, ""), Keys: &KeySigner{}}
}

// Sign implements Signer.
func (s *StoredKeySigner) Sign(ctx context.Context, j effects.JWT) (string, error) {
	if j.EmbedJWK && !s.Keys.has(j.KeyID) {
		if err := s.load(ctx, j.KeyID); err != nil {
			return "", err
		}
	}
	return s.Keys.Sign(ctx, j)
}

// load takes the stored key for id, or makes and stores one.
func (s *StoredKeySigner) load(ctx context.Context, id string) error {
	key := s.Prefix + id
	for attempt := 0; attempt < 3; attempt++ {
		r, err := s.Store.Get(ctx, key)
		if err == nil {
			if _, err := s.Keys.AddPEM(id, r.Value); err != nil {
				return &RecordError{Key: key, Err: err}
			}
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return &SignError{KeyID: id, Reason: "key generation failed"}
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return &SignError{KeyID: id, Reason: "key encoding failed"}
		}
		_, err = s.Store.Put(ctx, key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0)
		var conflict *ConflictError
		if errors.As(err, &conflict) {
			continue // another process stored its key first: use that one
		}
		if err != nil {
			return err
		}
		s.Keys.Add(id, k)
		return nil
	}
	return &SignError{KeyID: id, Reason: "the stored key kept changing"}
}

func (k *KeySigner) has(id string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.keys[id]
	return ok
}
