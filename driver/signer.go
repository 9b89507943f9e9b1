package driver

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"

	"github.com/go-jose/go-jose/v4"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// Signer signs the JWTs the machine describes (DPoP proofs, client
// assertions). Keys stay behind it: an implementation may keep them in a
// KMS or an HSM; KeySigner keeps them in memory.
type Signer interface {
	Sign(ctx context.Context, jwt effects.JWT) (string, error)
}

// SignError reports a JWT that could not be signed; it names the key, never
// key material.
type SignError struct {
	KeyID  string
	Reason string
}

func (e *SignError) Error() string {
	return fmt.Sprintf("driver: cannot sign with key %q: %s", e.KeyID, e.Reason)
}

// KeySigner is an in-memory Signer. Keys are added from PEM or as
// crypto.Signers; when Generate is set, a DPoP proof (a JWT that embeds its
// public key) asked for by an id it does not hold gets a new ECDSA P-256
// key: DPoP keys are this client's own (RFC 9449 §2). A client assertion
// key is never made up.
type KeySigner struct {
	Generate bool

	mu   sync.Mutex
	keys map[string]crypto.Signer
}

// NewKeySigner returns a signer that generates DPoP keys on demand.
func NewKeySigner() *KeySigner { return &KeySigner{Generate: true} }

// Add holds key under id.
func (k *KeySigner) Add(id string, key crypto.Signer) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]crypto.Signer{}
	}
	k.keys[id] = key
}

// AddPEM parses a PKCS#8, SEC 1 (EC) or PKCS#1 (RSA) private key and holds
// it under id. It returns the key's default JWS algorithm.
func (k *KeySigner) AddPEM(id string, data []byte) (alg string, err error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return "", &SignError{KeyID: id, Reason: "no PEM block"}
	}
	var key any
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return "", &SignError{KeyID: id, Reason: "unreadable private key"}
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return "", &SignError{KeyID: id, Reason: "not a signing key"}
	}
	alg, err = defaultAlg(signer)
	if err != nil {
		return "", &SignError{KeyID: id, Reason: err.Error()}
	}
	k.Add(id, signer)
	return alg, nil
}

func (k *KeySigner) key(id string, generate bool) (crypto.Signer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.keys[id]; ok {
		return key, nil
	}
	if !k.Generate || !generate {
		return nil, &SignError{KeyID: id, Reason: "no such key"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, &SignError{KeyID: id, Reason: "key generation failed"}
	}
	if k.keys == nil {
		k.keys = map[string]crypto.Signer{}
	}
	k.keys[id] = key
	return key, nil
}

// Sign implements Signer with go-jose: compact JWS, typ from the JWT, and
// the public JWK in the header when asked (RFC 9449 §4.2).
func (k *KeySigner) Sign(_ context.Context, j effects.JWT) (string, error) {
	// Only a key whose public half travels with the JWT (a DPoP proof) may
	// be made up here; a client assertion key must be the registered one.
	key, err := k.key(j.KeyID, j.EmbedJWK)
	if err != nil {
		return "", err
	}
	alg := j.Alg
	if alg == "" {
		if alg, err = defaultAlg(key); err != nil {
			return "", &SignError{KeyID: j.KeyID, Reason: err.Error()}
		}
	}
	if err := algFits(alg, key); err != nil {
		return "", &SignError{KeyID: j.KeyID, Reason: err.Error()}
	}
	opts := (&jose.SignerOptions{EmbedJWK: j.EmbedJWK}).WithType(jose.ContentType(j.Type))
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, opts)
	if err != nil {
		return "", &SignError{KeyID: j.KeyID, Reason: err.Error()}
	}
	obj, err := s.Sign(j.Claims)
	if err != nil {
		return "", &SignError{KeyID: j.KeyID, Reason: err.Error()}
	}
	return obj.CompactSerialize()
}

// BindToRequest adds the htm and htu claims of the request a JWT travels
// with, when the machine asked for it (effects.JWT.BindRequest).
func BindToRequest(j effects.JWT, method, target string) (effects.JWT, error) {
	if !j.BindRequest {
		return j, nil
	}
	var claims map[string]any
	if err := json.Unmarshal(j.Claims, &claims); err != nil {
		return j, &SignError{KeyID: j.KeyID, Reason: "claims are not a JSON object"}
	}
	claims["htm"], claims["htu"] = method, machine.HTU(target)
	b, err := json.Marshal(claims)
	if err != nil {
		return j, &SignError{KeyID: j.KeyID, Reason: err.Error()}
	}
	j.Claims, j.BindRequest = b, false
	return j, nil
}

// PublicJWK returns the public key held under id as a JWK (for tests and
// for computing the RFC 7638 thumbprint a server binds tokens to).
func (k *KeySigner) PublicJWK(id string) (jose.JSONWebKey, error) {
	key, err := k.key(id, true)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	return jose.JSONWebKey{Key: key.Public()}, nil
}

func defaultAlg(key crypto.Signer) (string, error) {
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
	case *rsa.PublicKey:
		return "RS256", nil
	case ed25519.PublicKey:
		return "EdDSA", nil
	}
	return "", errors.New("unsupported key type")
}

// algFits refuses an algorithm the key cannot make (alg confusion).
func algFits(alg string, key crypto.Signer) error {
	want, err := defaultAlg(key)
	if err != nil {
		return err
	}
	if _, isRSA := key.Public().(*rsa.PublicKey); isRSA {
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return nil
		}
	}
	if alg != want {
		return fmt.Errorf("algorithm %s does not fit the key (%s)", alg, want)
	}
	return nil
}
