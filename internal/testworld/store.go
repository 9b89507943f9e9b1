package testworld

import (
	"crypto/rand"
	"encoding/base64"
	"slices"
	"sync"
	"time"
)

// client is a registered OAuth client (RFC 7591 §2 metadata we act on).
type client struct {
	id, secret   string
	authMethod   string   // the single token_endpoint_auth_method it must use
	redirectURIs []string // exact matches; nil with anyLoopback
	anyLoopback  bool     // pre-registered or CIMD: any loopback http (CIMD also https) URI
	allowHTTPS   bool     // CIMD: https redirect URIs accepted too
	grantTypes   []string
	// Recorded for inspection only.
	name, applicationType, scope string
	issuedAt                     time.Time
}

func (c *client) allowsGrant(g string) bool { return slices.Contains(c.grantTypes, g) }

// authCode is a pending authorization code (RFC 6749 §4.1.2) with everything
// the token request must match.
type authCode struct {
	clientID, redirectURI, challenge, resource string
	scope                                      []string
	expiresAt                                  time.Time
	used                                       bool
	family                                     string // the grant: tokens issued from this code
}

type tokenKind int

const (
	accessToken tokenKind = iota + 1
	refreshToken
)

// token is an opaque access or refresh token. The RS shares the AS's memory
// instead of introspecting (RFC 7662) over HTTP: it is a test world.
type token struct {
	kind      tokenKind
	clientID  string
	scope     []string
	resource  string
	family    string
	expiresAt time.Time // zero: never
	revoked   bool      // /revoke, family revocation, ExpireAccessTokens
	rotated   bool      // refresh token superseded by rotation; replay revokes the family
}

// store is one AS's state. One mutex: every operation is a few map accesses,
// and a single lock makes check-then-act sequences (use a code, rotate a
// refresh token) atomic under 64 concurrent goroutines.
type store struct {
	mu      sync.Mutex
	clients map[string]*client
	codes   map[string]*authCode
	tokens  map[string]*token
}

func newStore() *store {
	return &store{
		clients: map[string]*client{},
		codes:   map[string]*authCode{},
		tokens:  map[string]*token{},
	}
}

func (s *store) addClient(c *client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.id] = c
}

func (s *store) client(id string) (*client, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	return c, ok
}

func (s *store) addCode(code string, c *authCode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = c
}

// revokeFamilyLocked revokes every token of a grant; s.mu must be held.
func (s *store) revokeFamilyLocked(family string) {
	for _, t := range s.tokens {
		if t.family == family {
			t.revoked = true
		}
	}
}

func (s *store) expireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		if t.kind == accessToken {
			t.revoked = true
		}
	}
}

// newSecret returns 256 bits of crypto randomness, base64url, with a prefix
// saying what it is (as GitHub does), which helps when reading test failures
// without ever printing the secret part.
func newSecret(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand contract since Go 1.24)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}
