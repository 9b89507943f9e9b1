package machine_test

// The scripted world (fakeWorld): a pure, deterministic, in-memory model of
// everything around the machine — the MCP resource server, one or more
// authorization servers, an enterprise identity provider, the user agent,
// and the driver's store — that answers the machine's effects.
// transitions_test.go, flows_test.go and golden_test.go drive the machine
// through it, and property tests may too. (hostile_test.go in this package
// declares its own world, epoch, mcpServer…; every name here is prefixed to
// stay clear of it: fake*, w*, t0.)
//
// API (keep it stable; other test files depend on it):
//
//	w := newFakeWorld()                   // one AS (wIssuer), DCR on, PRM in header mode
//	w := newLegacyFakeWorld()             // no PRM, no metadata: MCP 2025-03-26 defaults
//	w.Config.Scopes = ...                 // the machine.Config boot uses
//	w.PRM, w.AS[0].DCR, w.Status[url]=500 // script the servers (fields below)
//	s := w.boot(t)                        // machine.New, LoadStored answered from w.Store
//	s = w.run(t, s, w.req(1), w.req(2))   // feed inputs, answer every effect, until nothing is pending
//	s, out, err := w.step(s, in)          // one Step: recorded, effects executed, answers queued (not fed)
//	in := w.answer(e)                     // the world's answer to one effect (nil: none)
//	w.Hold = holdPurpose(p)               // keep matching effects unanswered in w.Held...
//	s = w.release(t, s, pred)             // ...answer the held ones matching pred (nil: all), then run
//	w.requireClean(t)                     // no server saw a breach
//
// Every effect is answered as a driver would: Fetch by URL with a canned
// machine.FetchResponse (effects.Fetch.Supply appended from w.Sources);
// OpenURL is the user's visit (the server checks the request and issues a
// code); AwaitCallback gets a CallbackReceived built from the preceding
// OpenURL (code, echoed state, iss when enabled; w.TamperCallback edits it);
// SendProtected gets 200 when its Authorization carries a live token issued
// for this resource by a trusted server, else 401 with a challenge for the
// PRM mode (or 403 insufficient_scope for w.RequiredScope); LoadStored and
// LoadClient are answered from w.Store, which SaveTokens (compare-and-swap:
// a lost one queues machine.CredentialChanged, as driver does), ForgetTokens,
// SaveClient, ForgetClient and SaveDiscovery change.
//
// Determinism: time is w.Now (advance it explicitly), entropy is w.Rand (a
// ChaCha8 seeded with w.Seed), every secret the world issues is numbered in
// issue order: access tokens "at-1", refresh tokens "rt-1", codes "code-1",
// clients "client-1" with secrets "secret-1", ID-JAGs "idjag-1".
// w.nextSecrets predicts the PKCE verifier and state of the next
// authorization request.
//
// Strictness: the servers check what a strict server would (PKCE S256
// against the verifier, resource identical on /authorize and /token and
// present on refresh, redirect_uri, client authentication, one-time codes,
// tokens and clients presented only to the server that issued them, no
// credential on a request to another origin, no secret in any auxiliary
// request that is not its own endpoint, each request answered once) and
// record every breach in w.Violations.
//
// Records: w.Inputs, w.Effects, w.Steps (input + effects of each accepted
// Step), w.Refused, w.Fetches, w.Authorizations, w.TokenRequests,
// w.Registrations, w.Sends, w.Outcomes, w.WakeAt, w.States, w.Verifiers.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// Fixed names of the default world.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	wServer    = "https://mcp.example.com/mcp"
	wOrigin    = "https://mcp.example.com"
	wIssuer    = "https://auth.example.com"
	wIssuer2   = "https://auth2.example.com"
	wRedirect  = "http://127.0.0.1:8765/callback"
	wCIMD      = "https://client.example.net/mcpauth.json"
	wIdP       = "https://idp.example.com/oauth2/token"
	wJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	wIDJAG     = "urn:ietf:params:oauth:token-type:id-jag"
)

// fakePRMMode says where the resource server publishes its RFC 9728 metadata.
type fakePRMMode int

const (
	// prmHeader: at PRMURL, named by resource_metadata in every 401
	// challenge (A-PRM-02); nowhere else.
	prmHeader fakePRMMode = iota
	// prmPathOnly: at the path-inserted well-known URL only; challenges
	// carry no resource_metadata.
	prmPathOnly
	// prmRootOnly: at the root well-known URL only.
	prmRootOnly
	// prmNone: no PRM at all (MCP 2025-03-26 legacy server).
	prmNone
)

// fakeMetaMode says where an authorization server publishes its metadata.
type fakeMetaMode int

const (
	metaOAuth        fakeMetaMode = iota // RFC 8414: /.well-known/oauth-authorization-server[/path]
	metaOIDC                             // OIDC, path-inserted: /.well-known/openid-configuration[/path]
	metaOIDCAppended                     // OIDC Discovery §4: <issuer>/.well-known/openid-configuration
	metaNone                             // none: MCP 2025-03-26 default endpoints
)

// fakeAS is one scripted authorization server. Its endpoints are
// Issuer+"/authorize", "/token" and "/register".
type fakeAS struct {
	Issuer         string
	Meta           fakeMetaMode
	MetadataIssuer string // the issuer its document names; "" means Issuer (set it to misbehave)
	DCR            bool   // registration_endpoint offered
	CIMD           bool   // client_id_metadata_document_supported
	Iss            bool   // advertises RFC 9207 and sends iss
	IssValue       string // the iss it sends; "" means Issuer
	OmitIss        bool   // advertises RFC 9207 but sends no iss
	NoS256         bool   // code_challenge_methods_supported lacks S256 (lists only plain)
	OmitPKCE       bool   // code_challenge_methods_supported is absent
	Deny           string // answers the authorization request with this error
	// ScopesSupported is its scopes_supported.
	ScopesSupported []string
	// Grantable are the scopes it grants; nil grants what is asked.
	Grantable []string
	// Lifetime of access tokens; 0 sends no expires_in.
	Lifetime time.Duration
	// RefreshTokens: issue refresh tokens; Rotate: a refresh issues a new
	// one and kills the old (otherwise the refresh response omits it).
	RefreshTokens bool
	Rotate        bool
	// AuthMethods is token_endpoint_auth_methods_supported; nil: none,
	// client_secret_basic, client_secret_post.
	AuthMethods []string
	// RefreshStatus, when not 0, is the status of every refresh answer:
	// 400 invalid_grant (the refresh token dies), 5xx server_error.
	RefreshStatus int
	// RegisterMethod overrides the token_endpoint_auth_method it
	// registers (and then issues a secret unless "none").
	RegisterMethod string
	// GrantRefresh: grants without a user (client credentials, jwt-bearer)
	// come with a refresh token too.
	GrantRefresh bool
	// Grants is grant_types_supported; nil: authorization_code and
	// refresh_token. Add "client_credentials" or wJWTBearer for the grants
	// without a user.
	Grants []string

	clients map[string]*fakeClient
}

type fakeClient struct {
	ID, Secret, Method string
	RedirectURIs       []string
}

func (a *fakeAS) authorizeURL() string { return a.Issuer + "/authorize" }
func (a *fakeAS) tokenURL() string     { return a.Issuer + "/token" }
func (a *fakeAS) registerURL() string  { return a.Issuer + "/register" }

// addClient pre-registers a client at the server.
func (a *fakeAS) addClient(id, secret, method string) {
	a.clients[id] = &fakeClient{ID: id, Secret: secret, Method: method, RedirectURIs: []string{wRedirect}}
}

func newFakeAS(issuer string) *fakeAS {
	return &fakeAS{
		Issuer:          issuer,
		DCR:             true,
		ScopesSupported: []string{"mcp:read", "mcp:write"},
		Lifetime:        time.Hour,
		RefreshTokens:   true,
		clients:         map[string]*fakeClient{},
	}
}

// fakeStore is the driver's store: one credential and one discovery per
// server, one registration per issuer; credentials are versioned with the
// compare-and-swap of driver.Store (a deleted record starts over at 1).
type fakeStore struct {
	Tokens        map[string]effects.Tokens
	TokenVersions map[string]uint64
	Discoveries   map[string]effects.Discovery
	Clients       map[string]effects.Client
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		Tokens:        map[string]effects.Tokens{},
		TokenVersions: map[string]uint64{},
		Discoveries:   map[string]effects.Discovery{},
		Clients:       map[string]effects.Client{},
	}
}

// fakeGrant is what the world remembers about an issued access or refresh
// token, or an authorization code.
type fakeGrant struct {
	Issuer, ClientID, Resource, Scope string
	N                                 int       // the number in its value
	Expires                           time.Time // access tokens; zero: never
	// codes only
	RedirectURI, Challenge string
	Used                   bool
}

// fakePendingAuthz is the authorization request the user agent shows.
type fakePendingAuthz struct {
	AS    *fakeAS
	Query url.Values
	Code  string // "" when refused
	Err   string
}

// fakeAuthzRequest is a recorded OpenURL.
type fakeAuthzRequest struct {
	Endpoint string
	Query    url.Values
}

// fakeTokenRequest is a recorded POST to a token endpoint.
type fakeTokenRequest struct {
	Issuer string
	Header map[string][]string
	Form   url.Values
}

// fakeRegistration is a recorded POST to a registration endpoint.
type fakeRegistration struct {
	Issuer string
	Body   map[string]any
}

// fakeOutcome is how a request ended: Delivered, or Err from Fail.
type fakeOutcome struct {
	Delivered bool
	Err       error
}

// fakeStep is one accepted Step.
type fakeStep struct {
	In  machine.Input
	Out []effects.Effect
}

type fakeRefusal struct {
	In  machine.Input
	Err error
}

// fakeWorld: see the file comment.
type fakeWorld struct {
	Config machine.Config
	Now    time.Time
	Seed   uint64
	Rand   *rand.ChaCha8

	// The resource server.
	Server         string
	PRM            fakePRMMode
	PRMURL         string   // header mode's document URL; "" means the path-inserted URL
	PRMResource    string   // "" means Server (the origin in root-only mode)
	PRMScopes      []string // scopes_supported of the PRM
	PRMServers     []string // authorization_servers; nil means the first AS's issuer
	ChallengeScope string   // scope="…" in 401 challenges
	// ChallengeMetadataURL, when set, is the resource_metadata of 401
	// challenges whatever the PRM mode (it may point nowhere).
	ChallengeMetadataURL string
	RequiredScope        string // scopes every protected request needs (403 insufficient_scope)
	Forbid               bool   // answer 403 without a scope challenge
	AcceptAfter          int    // accept only at-N with N > AcceptAfter

	AS    []*fakeAS
	Store *fakeStore

	// The enterprise identity provider (SEP-990) at wIdP, and the
	// values the driver's sources supply (effects.Fetch.Supply).
	IdPStatus int // when not 0, the token exchange answers this status
	Sources   map[string]string

	// Scripting hooks.
	Hold            func(effects.Effect) bool                    // keep an fakeAnswerable effect in Held instead of answering it
	Intercept       func(effects.Fetch) machine.Input            // answer a fetch instead of the servers (nil: pass)
	Status          map[string]int                               // answer a fetch of this URL with this status
	TamperCallback  func(url.Values)                             // edit the authorization response
	CallbackFailure string                                       // answer AwaitCallback with CallbackFailed
	AllowRefused    bool                                         // run does not fail the test on a refused input
	Trace           *driver.TraceRecorder                        // records every input and effect
	OnStep          func(in machine.Input, out []effects.Effect) // observer

	Held []effects.Effect

	// Records.
	Inputs         []machine.Input
	Effects        []effects.Effect
	Steps          []fakeStep
	Refused        []fakeRefusal
	Fetches        []effects.Fetch
	Authorizations []fakeAuthzRequest
	TokenRequests  []fakeTokenRequest
	Registrations  []fakeRegistration
	Sends          []effects.SendProtected
	Outcomes       map[effects.RequestID][]fakeOutcome
	Violations     []string
	WakeAt         time.Time
	States         []string // every state parameter the machine sent
	Verifiers      []string // every code_verifier the machine sent

	queue       []machine.Input
	pending     *fakePendingAuthz
	requestURL  map[effects.RequestID]string
	access      map[string]*fakeGrant
	refresh     map[string]*fakeGrant
	codes       map[string]*fakeGrant
	nAccess     int
	nRefresh    int
	nCode       int
	nClient     int
	clientOwner map[string]string // client id -> issuer, for every client of every server
	idJAGs      map[string]bool
	nJAG        int
}

// newFakeWorld returns the default fakeWorld: the MCP server wServer with PRM in
// header mode naming wIssuer, which publishes RFC 8414 metadata, offers
// DCR, issues one-hour access tokens and refresh tokens; a loopback
// redirect URI; an empty store; the clock at t0; seed 1.
func newFakeWorld() *fakeWorld {
	w := &fakeWorld{
		Config:      machine.Config{Server: wServer, RedirectURI: wRedirect},
		Now:         t0,
		Seed:        1,
		Server:      wServer,
		PRM:         prmHeader,
		PRMScopes:   []string{"mcp:read"},
		AS:          []*fakeAS{newFakeAS(wIssuer)},
		Store:       newFakeStore(),
		Status:      map[string]int{},
		Sources:     map[string]string{effects.SourceWorkloadToken: "wit-1", effects.SourceIDToken: "idt-1"},
		idJAGs:      map[string]bool{},
		Outcomes:    map[effects.RequestID][]fakeOutcome{},
		requestURL:  map[effects.RequestID]string{},
		access:      map[string]*fakeGrant{},
		refresh:     map[string]*fakeGrant{},
		codes:       map[string]*fakeGrant{},
		clientOwner: map[string]string{},
	}
	w.reseed(w.Seed)
	return w
}

// newLegacyFakeWorld is a MCP 2025-03-26 server: no PRM, and its origin as the
// authorization server without metadata (default endpoints, DCR on).
func newLegacyFakeWorld() *fakeWorld {
	w := newFakeWorld()
	w.PRM = prmNone
	a := newFakeAS(wOrigin)
	a.Meta = metaNone
	a.ScopesSupported = nil
	w.AS = []*fakeAS{a}
	return w
}

// reseed restarts the entropy source.
func (w *fakeWorld) reseed(seed uint64) {
	w.Seed = seed
	var b [32]byte
	for i := range 8 {
		b[i] = byte(seed >> (8 * i))
	}
	w.Rand = rand.NewChaCha8(b)
}

func (w *fakeWorld) env() machine.Env { return machine.Env{Now: w.Now, Rand: w.Rand} }

// peekRand returns the next n bytes w.Rand will give, without consuming
// them: expected secrets can be computed before the Step draws them.
func (w *fakeWorld) peekRand(n int) []byte {
	state, err := w.Rand.MarshalBinary()
	if err != nil {
		panic(err)
	}
	var c rand.ChaCha8
	if err := c.UnmarshalBinary(state); err != nil {
		panic(err)
	}
	b := make([]byte, n)
	_, _ = c.Read(b)
	return b
}

// nextSecrets predicts the PKCE verifier and state the next authorization
// request draws (32 then 16 bytes, base64url).
func (w *fakeWorld) nextSecrets() (verifier, state string) {
	b := w.peekRand(48)
	return base64.RawURLEncoding.EncodeToString(b[:32]), base64.RawURLEncoding.EncodeToString(b[32:])
}

// pkceS256 is the RFC 7636 §4.2 challenge, computed independently of the
// machine.
func pkceS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// req is a request to the protected resource.
func (w *fakeWorld) req(id effects.RequestID) machine.RequestStarted {
	return machine.RequestStarted{Request: id, URL: w.Server}
}

// foreign is a request to another origin.
func (w *fakeWorld) foreign(id effects.RequestID) machine.RequestStarted {
	return machine.RequestStarted{Request: id, URL: "https://other.example.org/api"}
}

// boot runs machine.New with w.Config and answers its LoadStored.
func (w *fakeWorld) boot(t testing.TB) machine.Snapshot {
	t.Helper()
	s, out, err := machine.New(w.Config)
	if err != nil {
		t.Fatalf("machine.New: %v", err)
	}
	for _, e := range out {
		if w.Trace != nil {
			w.Trace.Effect(e)
		}
	}
	w.Effects = append(w.Effects, out...)
	w.execute(out)
	return w.run(t, s)
}

// step feeds in to the machine, records it, and executes the effects; the
// fakeWorld's answers are queued (run feeds them). A refused input leaves s.
func (w *fakeWorld) step(s machine.Snapshot, in machine.Input) (machine.Snapshot, []effects.Effect, error) {
	if r, ok := in.(machine.RequestStarted); ok {
		if _, seen := w.requestURL[r.Request]; !seen {
			w.requestURL[r.Request] = r.URL
		}
	}
	if w.Trace != nil {
		w.Trace.Input(in, w.Now)
	}
	w.Inputs = append(w.Inputs, in)
	next, out, err := machine.Step(s, in, w.env())
	if err != nil {
		w.Refused = append(w.Refused, fakeRefusal{In: in, Err: err})
		if w.Trace != nil {
			w.Trace.Refused(in, err)
		}
		return s, nil, err
	}
	for _, e := range out {
		if w.Trace != nil {
			w.Trace.Effect(e)
		}
	}
	w.Effects = append(w.Effects, out...)
	w.Steps = append(w.Steps, fakeStep{In: in, Out: out})
	if w.OnStep != nil {
		w.OnStep(in, out)
	}
	w.execute(out)
	return next, out, nil
}

// run queues inputs and feeds the queue, FIFO, until it is empty. A refused
// input fails the test unless w.AllowRefused.
func (w *fakeWorld) run(t testing.TB, s machine.Snapshot, inputs ...machine.Input) machine.Snapshot {
	t.Helper()
	w.queue = append(w.queue, inputs...)
	for n := 0; len(w.queue) > 0; n++ {
		if n > 100000 {
			t.Fatalf("world: no quiescence after %d inputs", n)
		}
		in := w.queue[0]
		w.queue = w.queue[1:]
		var err error
		s, _, err = w.step(s, in)
		if err != nil && !w.AllowRefused {
			t.Fatalf("world: machine refused %T %+v in state %s: %v", in, driver.RedactInput(in), s.State, err)
		}
	}
	return s
}

// pendingInputs returns and clears the queue (for tests that step by hand).
func (w *fakeWorld) pendingInputs() []machine.Input {
	q := w.queue
	w.queue = nil
	return q
}

// release answers the held effects that match pred (all when nil), then
// runs until nothing is pending.
func (w *fakeWorld) release(t testing.TB, s machine.Snapshot, pred func(effects.Effect) bool) machine.Snapshot {
	t.Helper()
	var keep []effects.Effect
	held := w.Held
	w.Held = nil
	for _, e := range held {
		if pred != nil && !pred(e) {
			keep = append(keep, e)
			continue
		}
		if in := w.answer(e); in != nil {
			w.queue = append(w.queue, in)
		}
	}
	w.Held = append(keep, w.Held...)
	return w.run(t, s)
}

// fakeAnswerable reports the effects the world answers with an input.
func fakeAnswerable(e effects.Effect) bool {
	switch e.(type) {
	case effects.Fetch, effects.SendProtected, effects.AwaitCallback, effects.LoadStored, effects.LoadClient:
		return true
	}
	return false
}

// Hold predicates.
func holdPurpose(p effects.Purpose) func(effects.Effect) bool {
	return func(e effects.Effect) bool { f, ok := e.(effects.Fetch); return ok && f.Purpose == p }
}

func isEffect[T effects.Effect](e effects.Effect) bool { _, ok := e.(T); return ok }

func holdType[T effects.Effect]() func(effects.Effect) bool { return isEffect[T] }

func holdRequest(id effects.RequestID) func(effects.Effect) bool {
	return func(e effects.Effect) bool { p, ok := e.(effects.SendProtected); return ok && p.Request == id }
}

// execute carries out effects in order, queueing answers.
func (w *fakeWorld) execute(out []effects.Effect) {
	for _, e := range out {
		if fakeAnswerable(e) && w.Hold != nil && w.Hold(e) {
			w.Held = append(w.Held, e)
			if sp, ok := e.(effects.SendProtected); ok {
				w.Sends = append(w.Sends, sp) // the send happened; only its answer waits
				w.checkSend(sp)
			}
			continue
		}
		if in := w.apply(e); in != nil {
			w.queue = append(w.queue, in)
		}
	}
}

// answer is the world's answer to one fakeAnswerable effect (nil: none).
func (w *fakeWorld) answer(e effects.Effect) machine.Input {
	if sp, ok := e.(effects.SendProtected); ok {
		return w.protectedAnswer(sp) // recorded when it was held
	}
	return w.apply(e)
}

// apply carries out one effect and returns the input that answers it.
func (w *fakeWorld) apply(e effects.Effect) machine.Input {
	switch e := e.(type) {
	case effects.Fetch:
		return w.fetch(e)
	case effects.SendProtected:
		w.Sends = append(w.Sends, e)
		w.checkSend(e)
		return w.protectedAnswer(e)
	case effects.OpenURL:
		w.openURL(e)
	case effects.AwaitCallback:
		return w.callback(e)
	case effects.LoadStored:
		in := machine.StoredLoaded{}
		if t, ok := w.Store.Tokens[e.Server]; ok {
			in.Tokens, in.TokensVersion = &t, w.Store.TokenVersions[e.Server]
		}
		if d, ok := w.Store.Discoveries[e.Server]; ok {
			in.Discovery = &d
			if c, ok := w.Store.Clients[d.Authorization.Issuer]; ok {
				in.Client = &c
			}
		}
		return in
	case effects.LoadClient:
		if c, ok := w.Store.Clients[e.Issuer]; ok {
			return machine.ClientLoaded{Client: &c}
		}
		return machine.ClientLoaded{}
	case effects.SaveTokens:
		have := w.Store.TokenVersions[e.Server]
		if have != e.IfVersion {
			if cur, ok := w.Store.Tokens[e.Server]; ok {
				return machine.CredentialChanged{Tokens: cur, Version: have}
			}
			return nil
		}
		w.Store.Tokens[e.Server] = e.Tokens
		w.Store.TokenVersions[e.Server] = e.IfVersion + 1
	case effects.ForgetTokens:
		if e.IfVersion == 0 || w.Store.TokenVersions[e.Server] == e.IfVersion {
			delete(w.Store.Tokens, e.Server)
			delete(w.Store.TokenVersions, e.Server)
		}
	case effects.SaveClient:
		w.Store.Clients[e.Client.Issuer] = e.Client
	case effects.ForgetClient:
		delete(w.Store.Clients, e.Issuer)
	case effects.SaveDiscovery:
		w.Store.Discoveries[e.Server] = e.Discovery
	case effects.WakeAt:
		w.WakeAt = e.At
	case effects.Deliver:
		w.end(e.Request, fakeOutcome{Delivered: true})
	case effects.Fail:
		w.end(e.Request, fakeOutcome{Err: e.Err})
	case effects.Transition:
	default:
		w.violate("unknown effect %T", e)
	}
	return nil
}

func (w *fakeWorld) end(id effects.RequestID, o fakeOutcome) {
	if len(w.Outcomes[id]) > 0 {
		w.violate("request %d answered twice", id)
	}
	w.Outcomes[id] = append(w.Outcomes[id], o)
}

func (w *fakeWorld) violate(format string, args ...any) {
	w.Violations = append(w.Violations, fmt.Sprintf(format, args...))
}

// requireClean fails the test when a server saw a breach.
func (w *fakeWorld) requireClean(t testing.TB) {
	t.Helper()
	for _, v := range w.Violations {
		t.Errorf("world violation: %s", v)
	}
}

// ---- the resource server ----

// resourceID is the RFC 8707 resource the servers expect: the PRM's, else
// the canonical server URI (MCP 2025-06-18+), else none (2025-03-26).
func (w *fakeWorld) resourceID() string {
	switch {
	case w.PRM == prmRootOnly && w.PRMResource == "":
		return originOfURL(w.Server)
	case w.PRM != prmNone && w.PRMResource == "":
		return w.Server
	case w.PRM != prmNone:
		return w.PRMResource
	case w.Config.ProtocolVersion == machine.Version20250326:
		return ""
	}
	r, err := machine.CanonicalResource(w.Server)
	if err != nil {
		panic(err)
	}
	return r
}

func originOfURL(server string) string {
	u, err := url.Parse(server)
	if err != nil {
		panic(err)
	}
	return u.Scheme + "://" + u.Host
}

func (w *fakeWorld) prmPathURL() string {
	u, _ := url.Parse(w.Server)
	return originOfURL(w.Server) + "/.well-known/oauth-protected-resource" + u.EscapedPath()
}

func (w *fakeWorld) prmRootURL() string {
	return originOfURL(w.Server) + "/.well-known/oauth-protected-resource"
}

// prmURL is where the PRM is served ("" in prmNone).
func (w *fakeWorld) prmURL() string {
	switch w.PRM {
	case prmHeader:
		if w.PRMURL != "" {
			return w.PRMURL
		}
		return w.prmPathURL()
	case prmPathOnly:
		return w.prmPathURL()
	case prmRootOnly:
		return w.prmRootURL()
	}
	return ""
}

// trusted are the issuers whose tokens the resource server accepts.
func (w *fakeWorld) trusted() []string {
	if w.PRM == prmNone {
		return []string{originOfURL(w.Server)}
	}
	if w.PRMServers != nil {
		return w.PRMServers
	}
	return []string{w.AS[0].Issuer}
}

// challenge401 is the WWW-Authenticate of a 401.
func (w *fakeWorld) challenge401() []string {
	var params []string
	switch {
	case w.ChallengeMetadataURL != "":
		params = append(params, `resource_metadata="`+w.ChallengeMetadataURL+`"`)
	case w.PRM == prmHeader:
		params = append(params, `resource_metadata="`+w.prmURL()+`"`)
	}
	if w.ChallengeScope != "" {
		params = append(params, `scope="`+w.ChallengeScope+`"`)
	}
	if len(params) == 0 {
		return []string{"Bearer"}
	}
	return []string{"Bearer " + strings.Join(params, ", ")}
}

func (w *fakeWorld) checkSend(e effects.SendProtected) {
	u, ok := w.requestURL[e.Request]
	if !ok {
		w.violate("SendProtected for request %d that never started", e.Request)
	}
	if len(w.Outcomes[e.Request]) > 0 {
		w.violate("SendProtected for request %d after it ended", e.Request)
	}
	if !strings.HasPrefix(u, originOfURL(w.Server)+"/") && u != originOfURL(w.Server) && len(e.Header) > 0 {
		w.violate("request %d to %s carries headers %v", e.Request, u, e.Header)
	}
	for k := range e.Header {
		if k != "Authorization" {
			w.violate("SendProtected header %q", k)
		}
	}
}

// protectedAnswer is the resource server's answer to one send.
func (w *fakeWorld) protectedAnswer(e effects.SendProtected) machine.Input {
	resp := machine.ProtectedResponse{Request: e.Request, Credential: e.Credential, Status: 200}
	u := w.requestURL[e.Request]
	if !strings.HasPrefix(u, originOfURL(w.Server)) {
		return resp // another origin: it does not care
	}
	var g *fakeGrant
	if h := e.Header["Authorization"]; len(h) == 1 && strings.HasPrefix(h[0], "Bearer ") {
		g = w.access[strings.TrimPrefix(h[0], "Bearer ")]
	}
	if g == nil || !slices.Contains(w.trusted(), g.Issuer) || g.N <= w.AcceptAfter ||
		(!g.Expires.IsZero() && !w.Now.Before(g.Expires)) || g.Resource != w.resourceID() {
		resp.Status, resp.Challenges = 401, w.challenge401()
		return resp
	}
	if w.Forbid {
		resp.Status = 403
		return resp
	}
	if missing := missingScopes(w.RequiredScope, g.Scope); missing {
		resp.Status = 403
		c := `Bearer error="insufficient_scope", scope="` + w.RequiredScope + `"`
		if w.PRM == prmHeader {
			c += `, resource_metadata="` + w.prmURL() + `"`
		}
		resp.Challenges = []string{c}
	}
	return resp
}

func missingScopes(need, have string) bool {
	hs := strings.Fields(have)
	for _, s := range strings.Fields(need) {
		if !slices.Contains(hs, s) {
			return true
		}
	}
	return false
}

// ---- auxiliary requests ----

type fakePRMDoc struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported,omitempty"`
	BearerMethods        []string `json:"bearer_methods_supported"`
}

type fakeASMDoc struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	RegistrationEndpoint  string   `json:"registration_endpoint,omitempty"`
	ScopesSupported       []string `json:"scopes_supported,omitempty"`
	ResponseTypes         []string `json:"response_types_supported"`
	GrantTypes            []string `json:"grant_types_supported"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported,omitempty"`
	AuthMethods           []string `json:"token_endpoint_auth_methods_supported"`
	CIMD                  bool     `json:"client_id_metadata_document_supported,omitempty"`
	Iss                   bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
}

// metadataURL is where a serves its metadata ("" for metaNone).
func (a *fakeAS) metadataURL() string {
	u, err := url.Parse(a.Issuer)
	if err != nil {
		panic(err)
	}
	origin, path := u.Scheme+"://"+u.Host, strings.TrimSuffix(u.EscapedPath(), "/")
	switch a.Meta {
	case metaOAuth:
		return origin + "/.well-known/oauth-authorization-server" + path
	case metaOIDC:
		return origin + "/.well-known/openid-configuration" + path
	case metaOIDCAppended:
		return origin + path + "/.well-known/openid-configuration"
	}
	return ""
}

func (a *fakeAS) document() fakeASMDoc {
	d := fakeASMDoc{
		Issuer:                a.Issuer,
		AuthorizationEndpoint: a.authorizeURL(),
		TokenEndpoint:         a.tokenURL(),
		ScopesSupported:       a.ScopesSupported,
		ResponseTypes:         []string{"code"},
		GrantTypes:            a.Grants,
		CodeChallengeMethods:  []string{"S256"},
		AuthMethods:           a.AuthMethods,
		CIMD:                  a.CIMD,
		Iss:                   a.Iss || a.OmitIss,
	}
	if a.MetadataIssuer != "" {
		d.Issuer = a.MetadataIssuer
	}
	if a.DCR {
		d.RegistrationEndpoint = a.registerURL()
	}
	if a.NoS256 {
		d.CodeChallengeMethods = []string{"plain"}
	}
	if a.OmitPKCE {
		d.CodeChallengeMethods = nil
	}
	if d.AuthMethods == nil {
		d.AuthMethods = []string{"none", "client_secret_basic", "client_secret_post"}
	}
	if d.GrantTypes == nil {
		d.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	return d
}

func fakeJSON(seq uint64, status int, v any) machine.FetchResponse {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return machine.FetchResponse{
		Seq: seq, Status: status,
		Header: map[string][]string{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}},
		Body:   b,
	}
}

func fakeOAuthError(seq uint64, status int, code string) machine.FetchResponse {
	return fakeJSON(seq, status, map[string]string{"error": code})
}

func fakeNotFound(seq uint64) machine.FetchResponse {
	return machine.FetchResponse{Seq: seq, Status: 404, Header: map[string][]string{"Content-Type": {"text/plain"}}, Body: []byte("not found")}
}

// fetch answers one auxiliary request.
func (w *fakeWorld) fetch(f effects.Fetch) machine.Input {
	w.Fetches = append(w.Fetches, f)
	w.checkFetchSecrets(f)
	// The driver appends what its sources supply (effects.Supplied).
	for _, sup := range f.Supply {
		v, ok := w.Sources[sup.Source]
		if !ok {
			w.violate("no source %q", sup.Source)
		}
		sep := "&"
		if len(f.Body) == 0 {
			sep = ""
		}
		f.Body = append(slices.Clone(f.Body), []byte(sep+url.QueryEscape(sup.Form)+"="+url.QueryEscape(v))...)
	}
	if w.Intercept != nil {
		if in := w.Intercept(f); in != nil {
			return in
		}
	}
	if st, ok := w.Status[f.URL]; ok {
		return fakeJSON(f.Seq, st, map[string]string{"error": "server_error"})
	}
	if f.Method == "GET" {
		if u := w.prmURL(); u != "" && f.URL == u {
			servers := w.PRMServers
			if servers == nil {
				servers = []string{w.AS[0].Issuer}
			}
			resource := w.PRMResource
			if resource == "" {
				resource = w.resourceID()
			}
			return fakeJSON(f.Seq, 200, fakePRMDoc{Resource: resource, AuthorizationServers: servers, ScopesSupported: w.PRMScopes, BearerMethods: []string{"header"}})
		}
		for _, a := range w.AS {
			if u := a.metadataURL(); u != "" && f.URL == u {
				return fakeJSON(f.Seq, 200, a.document())
			}
		}
		return fakeNotFound(f.Seq)
	}
	if f.URL == wIdP {
		return w.exchange(f)
	}
	for _, a := range w.AS {
		switch f.URL {
		case a.tokenURL():
			return w.token(a, f)
		case a.registerURL():
			if a.DCR {
				return w.register(a, f)
			}
		}
	}
	return fakeNotFound(f.Seq)
}

// tokenWord matches a numbered secret exactly ("at-1" is not in "at-12").
func hasSecret(haystack, secret string) bool {
	return regexp.MustCompile(`(^|[^A-Za-z0-9_-])` + regexp.QuoteMeta(secret) + `($|[^0-9])`).MatchString(haystack)
}

// checkFetchSecrets: an access token never leaves for an auxiliary request;
// a refresh token, a code and a client secret go only to the token
// endpoint of the server that issued them (design §4.1, §4.2).
func (w *fakeWorld) checkFetchSecrets(f effects.Fetch) {
	var hay strings.Builder
	hay.WriteString(f.URL + "\n" + string(f.Body) + "\n")
	for k, vs := range f.Header {
		for _, v := range vs {
			hay.WriteString(k + ": " + v + "\n")
			if b, ok := strings.CutPrefix(v, "Basic "); ok {
				raw, _ := base64.StdEncoding.DecodeString(b)
				id, secret, _ := strings.Cut(string(raw), ":")
				id, _ = url.QueryUnescape(id)
				secret, _ = url.QueryUnescape(secret)
				hay.WriteString(id + " " + secret + "\n")
			}
		}
	}
	h := hay.String()
	for tok := range w.access {
		if hasSecret(h, tok) {
			w.violate("access token %s sent in %s %s", tok, f.Method, f.URL)
		}
	}
	for _, set := range []map[string]*fakeGrant{w.refresh, w.codes} {
		for tok, g := range set {
			if hasSecret(h, tok) && f.URL != g.Issuer+"/token" {
				w.violate("%s of %s sent to %s", tok, g.Issuer, f.URL)
			}
		}
	}
	for _, a := range w.AS {
		for _, c := range a.clients {
			if c.Secret != "" && strings.Contains(h, c.Secret) && f.URL != a.tokenURL() {
				w.violate("client secret of %s at %s sent to %s", c.ID, a.Issuer, f.URL)
			}
		}
	}
}

func (w *fakeWorld) register(a *fakeAS, f effects.Fetch) machine.Input {
	var body map[string]any
	if err := json.Unmarshal(f.Body, &body); err != nil {
		w.violate("registration body is not JSON: %v", err)
		return fakeOAuthError(f.Seq, 400, "invalid_client_metadata")
	}
	w.Registrations = append(w.Registrations, fakeRegistration{Issuer: a.Issuer, Body: body})
	method, _ := body["token_endpoint_auth_method"].(string)
	if a.RegisterMethod != "" {
		method = a.RegisterMethod
	}
	if method == "" {
		method = "client_secret_basic"
	}
	var redirects []string
	if rs, ok := body["redirect_uris"].([]any); ok {
		for _, r := range rs {
			s, _ := r.(string)
			redirects = append(redirects, s)
		}
	}
	if len(redirects) == 0 {
		return fakeOAuthError(f.Seq, 400, "invalid_redirect_uri")
	}
	w.nClient++
	c := &fakeClient{ID: fmt.Sprintf("client-%d", w.nClient), Method: method, RedirectURIs: redirects}
	if method != "none" {
		c.Secret = fmt.Sprintf("secret-%d", w.nClient)
	}
	a.clients[c.ID] = c
	w.clientOwner[c.ID] = a.Issuer
	resp := map[string]any{
		"client_id":                  c.ID,
		"token_endpoint_auth_method": method,
		"redirect_uris":              redirects,
		"grant_types":                body["grant_types"],
	}
	if c.Secret != "" {
		resp["client_secret"] = c.Secret
	}
	return fakeJSON(f.Seq, 201, resp)
}

// lookupClient finds the client id at a; CIMD URLs are clients wherever
// CIMD is supported (they are portable, A-BIND-04).
func (w *fakeWorld) lookupClient(a *fakeAS, id string) *fakeClient {
	if c, ok := a.clients[id]; ok {
		return c
	}
	if a.CIMD && id == wCIMD {
		return &fakeClient{ID: id, Method: "none", RedirectURIs: []string{wRedirect}}
	}
	if owner, ok := w.clientOwner[id]; ok && owner != a.Issuer {
		w.violate("client %s of %s presented to %s (A-PRM-10, A-BIND-02)", id, owner, a.Issuer)
	}
	for _, other := range w.AS {
		if c, ok := other.clients[id]; ok && other != a {
			w.violate("client %s of %s presented to %s (A-PRM-10, A-BIND-02)", c.ID, other.Issuer, a.Issuer)
		}
	}
	return nil
}

// openURL is the user agent showing the authorization page: the server
// checks the request and, when it is good, the user consents.
func (w *fakeWorld) openURL(e effects.OpenURL) {
	endpoint, rawQuery, _ := strings.Cut(e.URL, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		w.violate("authorization URL query: %v", err)
	}
	w.Authorizations = append(w.Authorizations, fakeAuthzRequest{Endpoint: endpoint, Query: q})
	w.States = append(w.States, q.Get("state"))
	var a *fakeAS
	for _, s := range w.AS {
		if s.authorizeURL() == endpoint {
			a = s
		}
	}
	if a == nil {
		w.violate("OpenURL to unknown endpoint %s", endpoint)
		w.pending = nil
		return
	}
	p := &fakePendingAuthz{AS: a, Query: q}
	w.pending = p
	bad := func(format string, args ...any) {
		w.violate("authorization request to %s: "+format, append([]any{a.Issuer}, args...)...)
		p.Err = "invalid_request"
	}
	for k, vs := range q {
		if len(vs) != 1 {
			bad("parameter %s repeated", k)
		}
	}
	c := w.lookupClient(a, q.Get("client_id"))
	switch {
	case q.Get("response_type") != "code":
		bad("response_type %q", q.Get("response_type"))
	case c == nil:
		bad("unknown client %q", q.Get("client_id"))
	case !slices.Contains(c.RedirectURIs, q.Get("redirect_uri")):
		bad("redirect_uri %q not registered", q.Get("redirect_uri"))
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		bad("PKCE %q %q", q.Get("code_challenge_method"), q.Get("code_challenge"))
	case q.Get("state") == "":
		bad("no state")
	case q.Get("resource") != w.resourceID():
		bad("resource %q, want %q", q.Get("resource"), w.resourceID())
	}
	if p.Err != "" {
		return
	}
	if a.Deny != "" {
		p.Err = a.Deny
		return
	}
	w.nCode++
	p.Code = fmt.Sprintf("code-%d", w.nCode)
	w.codes[p.Code] = &fakeGrant{
		Issuer: a.Issuer, ClientID: c.ID, Resource: q.Get("resource"), Scope: a.grantScope(q.Get("scope")),
		N: w.nCode, RedirectURI: q.Get("redirect_uri"), Challenge: q.Get("code_challenge"),
	}
}

func (a *fakeAS) grantScope(requested string) string {
	if a.Grantable == nil {
		return requested
	}
	var out []string
	for _, s := range strings.Fields(requested) {
		if slices.Contains(a.Grantable, s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// callback is the authorization response arriving at the redirect URI.
func (w *fakeWorld) callback(e effects.AwaitCallback) machine.Input {
	if w.CallbackFailure != "" {
		return machine.CallbackFailed{Reason: w.CallbackFailure}
	}
	p := w.pending
	if p == nil {
		w.violate("AwaitCallback without an authorization request")
		return machine.CallbackFailed{Reason: "no authorization page was shown"}
	}
	if e.RedirectURI != p.Query.Get("redirect_uri") {
		w.violate("AwaitCallback at %s, authorization request redirects to %s", e.RedirectURI, p.Query.Get("redirect_uri"))
	}
	q := url.Values{}
	if p.Err != "" {
		q.Set("error", p.Err)
	} else {
		q.Set("code", p.Code)
	}
	q.Set("state", p.Query.Get("state"))
	if p.AS.Iss && !p.AS.OmitIss {
		iss := p.AS.IssValue
		if iss == "" {
			iss = p.AS.Issuer
		}
		q.Set("iss", iss)
	}
	if w.TamperCallback != nil {
		w.TamperCallback(q)
	}
	return machine.CallbackReceived{Query: q.Encode()}
}

// authenticate checks the client authentication of a token request (RFC
// 6749 §2.3.1: Basic credentials are form-encoded first).
func (w *fakeWorld) authenticate(a *fakeAS, f effects.Fetch, form url.Values) (*fakeClient, bool) {
	if h := f.Header["Authorization"]; len(h) > 0 {
		b, ok := strings.CutPrefix(h[0], "Basic ")
		raw, err := base64.StdEncoding.DecodeString(b)
		if !ok || err != nil {
			w.violate("token request Authorization %q is not Basic", "…")
			return nil, false
		}
		rawID, rawSecret, _ := strings.Cut(string(raw), ":")
		id, err1 := url.QueryUnescape(rawID)
		secret, err2 := url.QueryUnescape(rawSecret)
		c := w.lookupClient(a, id)
		if err1 != nil || err2 != nil || c == nil || c.Method != "client_secret_basic" || c.Secret != secret {
			return nil, false
		}
		if form.Has("client_secret") {
			w.violate("client secret both in Basic and in the body")
		}
		return c, true
	}
	c := w.lookupClient(a, form.Get("client_id"))
	if c == nil {
		return nil, false
	}
	switch c.Method {
	case "client_secret_post":
		return c, form.Get("client_secret") == c.Secret
	case "none":
		return c, !form.Has("client_secret")
	}
	return nil, false
}

func (w *fakeWorld) token(a *fakeAS, f effects.Fetch) machine.Input {
	form, err := url.ParseQuery(string(f.Body))
	if err != nil {
		w.violate("token request body: %v", err)
		return fakeOAuthError(f.Seq, 400, "invalid_request")
	}
	w.TokenRequests = append(w.TokenRequests, fakeTokenRequest{Issuer: a.Issuer, Header: f.Header, Form: form})
	if v := form.Get("code_verifier"); v != "" {
		w.Verifiers = append(w.Verifiers, v)
	}
	grantType := form.Get("grant_type")
	anonymous := grantType == wJWTBearer && !form.Has("client_id") && len(f.Header["Authorization"]) == 0
	c, ok := w.authenticate(a, f, form)
	if !ok && !anonymous {
		return fakeOAuthError(f.Seq, 401, "invalid_client")
	}
	if anonymous {
		c = &fakeClient{}
	}
	if !slices.Contains(a.document().GrantTypes, grantType) {
		return fakeOAuthError(f.Seq, 400, "unsupported_grant_type")
	}
	switch grantType {
	case "client_credentials":
		if form.Get("resource") != w.resourceID() {
			w.violate("client_credentials resource %q, want %q", form.Get("resource"), w.resourceID())
		}
		return w.issue(a, f.Seq, c.ID, form.Get("resource"), a.grantScope(form.Get("scope")), a.GrantRefresh)
	case wJWTBearer:
		as := form.Get("assertion")
		if as != w.Sources[effects.SourceWorkloadToken] && !w.idJAGs[as] {
			return fakeOAuthError(f.Seq, 400, "invalid_grant")
		}
		if form.Get("resource") != w.resourceID() {
			w.violate("jwt-bearer resource %q, want %q", form.Get("resource"), w.resourceID())
		}
		return w.issue(a, f.Seq, c.ID, form.Get("resource"), a.grantScope(form.Get("scope")), a.GrantRefresh)
	case "authorization_code":
		g := w.codes[form.Get("code")]
		switch {
		case g == nil || g.Issuer != a.Issuer || g.Used:
			if g != nil && g.Issuer != a.Issuer {
				w.violate("code of %s sent to %s", g.Issuer, a.Issuer)
			}
			return fakeOAuthError(f.Seq, 400, "invalid_grant")
		case g.ClientID != c.ID:
			w.violate("code of client %s redeemed by %s", g.ClientID, c.ID)
			return fakeOAuthError(f.Seq, 400, "invalid_grant")
		case form.Get("redirect_uri") != g.RedirectURI:
			w.violate("token redirect_uri %q, authorization had %q", form.Get("redirect_uri"), g.RedirectURI)
			return fakeOAuthError(f.Seq, 400, "invalid_grant")
		case pkceS256(form.Get("code_verifier")) != g.Challenge:
			w.violate("PKCE verifier does not match the challenge (RFC 7636 §4.6)")
			return fakeOAuthError(f.Seq, 400, "invalid_grant")
		case form.Get("resource") != g.Resource:
			w.violate("token resource %q, authorization had %q (A-RES-10)", form.Get("resource"), g.Resource)
			return fakeOAuthError(f.Seq, 400, "invalid_target")
		}
		g.Used = true
		return w.issue(a, f.Seq, c.ID, g.Resource, g.Scope, true)
	case "refresh_token":
		g := w.refresh[form.Get("refresh_token")]
		if g == nil || g.Issuer != a.Issuer || g.ClientID != c.ID {
			if g != nil && g.Issuer != a.Issuer {
				w.violate("refresh token of %s sent to %s", g.Issuer, a.Issuer)
			}
			return fakeOAuthError(f.Seq, 400, "invalid_grant")
		}
		if form.Get("resource") != g.Resource {
			w.violate("refresh resource %q, grant had %q (A-RES-02)", form.Get("resource"), g.Resource)
		}
		if form.Has("scope") && missingScopes(form.Get("scope"), g.Scope) {
			w.violate("refresh widens scope %q beyond %q", form.Get("scope"), g.Scope)
		}
		switch st := a.RefreshStatus; {
		case st == 400:
			delete(w.refresh, form.Get("refresh_token"))
			return fakeOAuthError(f.Seq, 400, "invalid_grant")
		case st >= 500:
			return fakeOAuthError(f.Seq, st, "server_error")
		case st != 0:
			return fakeOAuthError(f.Seq, st, "invalid_request")
		}
		if a.Rotate {
			delete(w.refresh, form.Get("refresh_token"))
		}
		return w.issue(a, f.Seq, c.ID, g.Resource, g.Scope, a.Rotate)
	}
	return fakeOAuthError(f.Seq, 400, "unsupported_grant_type")
}

// exchange is the identity provider's RFC 8693 token exchange: the user's
// ID token for an ID-JAG "idjag-N".
func (w *fakeWorld) exchange(f effects.Fetch) machine.Input {
	form, err := url.ParseQuery(string(f.Body))
	if err != nil {
		w.violate("token exchange body: %v", err)
	}
	if w.IdPStatus != 0 {
		return fakeOAuthError(f.Seq, w.IdPStatus, "server_error")
	}
	if form.Get("subject_token") != w.Sources[effects.SourceIDToken] || form.Get("requested_token_type") != wIDJAG {
		return fakeOAuthError(f.Seq, 400, "invalid_grant")
	}
	w.nJAG++
	jag := fmt.Sprintf("idjag-%d", w.nJAG)
	w.idJAGs[jag] = true
	return fakeJSON(f.Seq, 200, map[string]string{"access_token": jag, "issued_token_type": wIDJAG, "token_type": "N_A"})
}

// issue mints an access token (and a refresh token when newRefresh and the
// server issues them).
func (w *fakeWorld) issue(a *fakeAS, seq uint64, clientID, resource, scope string, newRefresh bool) machine.Input {
	w.nAccess++
	at := fmt.Sprintf("at-%d", w.nAccess)
	g := &fakeGrant{Issuer: a.Issuer, ClientID: clientID, Resource: resource, Scope: scope, N: w.nAccess}
	body := map[string]any{"access_token": at, "token_type": "Bearer"}
	if a.Lifetime > 0 {
		g.Expires = w.Now.Add(a.Lifetime)
		body["expires_in"] = int64(a.Lifetime / time.Second)
	}
	if scope != "" {
		body["scope"] = scope
	}
	w.access[at] = g
	if newRefresh && a.RefreshTokens {
		w.nRefresh++
		rt := fmt.Sprintf("rt-%d", w.nRefresh)
		w.refresh[rt] = &fakeGrant{Issuer: a.Issuer, ClientID: clientID, Resource: resource, Scope: scope, N: w.nRefresh}
		body["refresh_token"] = rt
	}
	return fakeJSON(seq, 200, body)
}

// secrets lists every secret value the world issued or saw: tokens,
// codes, client secrets, PKCE verifiers and state values.
func (w *fakeWorld) secrets() []string {
	var out []string
	for _, m := range []map[string]*fakeGrant{w.access, w.refresh, w.codes} {
		for k := range m {
			out = append(out, k)
		}
	}
	for _, a := range w.AS {
		for _, c := range a.clients {
			if c.Secret != "" {
				out = append(out, c.Secret)
			}
		}
	}
	out = append(out, w.States...)
	out = append(out, w.Verifiers...)
	for k := range w.idJAGs {
		out = append(out, k)
	}
	for _, v := range w.Sources {
		out = append(out, v)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ---- queries over the records ----

// fetchURLs lists the URLs fetched, in order, optionally of one purpose.
func (w *fakeWorld) fetchURLs(p effects.Purpose) []string {
	var out []string
	for _, f := range w.Fetches {
		if p == "" || f.Purpose == p {
			out = append(out, f.URL)
		}
	}
	return out
}

// sendsOf lists the sends of one request.
func (w *fakeWorld) sendsOf(id effects.RequestID) []effects.SendProtected {
	var out []effects.SendProtected
	for _, s := range w.Sends {
		if s.Request == id {
			out = append(out, s)
		}
	}
	return out
}

// countEffects returns how many effects of type T were emitted.
func countEffects[T effects.Effect](w *fakeWorld) int {
	n := 0
	for _, e := range w.Effects {
		if isEffect[T](e) {
			n++
		}
	}
	return n
}

// ---- expected effects ----

func trans(from, trigger, to string) effects.Transition {
	return effects.Transition{From: from, Trigger: trigger, To: to}
}

// metadataGet is the discovery GET the machine sends (A-ASM-07).
func metadataGet(seq uint64, p effects.Purpose, u string) effects.Fetch {
	return effects.Fetch{Seq: seq, Purpose: p, Method: "GET", URL: u, Header: map[string][]string{
		"Accept": {"application/json"}, "Mcp-Protocol-Version": {machine.Version20251125},
	}}
}

// tokenPost is a token endpoint POST with form body (keys sorted, as
// url.Values.Encode does) and optional Basic credentials.
func tokenPost(seq uint64, p effects.Purpose, endpoint string, form url.Values, basic string) effects.Fetch {
	h := map[string][]string{"Accept": {"application/json"}, "Content-Type": {"application/x-www-form-urlencoded"}}
	if basic != "" {
		h["Authorization"] = []string{"Basic " + basic}
	}
	return effects.Fetch{Seq: seq, Purpose: p, Method: "POST", URL: endpoint, Header: h, Body: []byte(form.Encode())}
}

// bearerHeader is the credential header of a protected send.
func bearerHeader(token string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + token}}
}

// expectAuthURL is the expected authorization request.
func expectAuthURL(endpoint, clientID, verifier, state, resource, scope string) string {
	q := url.Values{}
	q.Set("response_type", "code")
	q.Set("client_id", clientID)
	q.Set("redirect_uri", wRedirect)
	q.Set("code_challenge", pkceS256(verifier))
	q.Set("code_challenge_method", "S256")
	q.Set("state", state)
	if resource != "" {
		q.Set("resource", resource)
	}
	if scope != "" {
		q.Set("scope", scope)
		if slices.Contains(strings.Fields(scope), "offline_access") {
			q.Set("prompt", "consent")
		}
	}
	return endpoint + "?" + q.Encode()
}

// formOf builds url.Values from pairs.
func formOf(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// Paths of the default world.
const (
	wPRMPath  = wOrigin + "/.well-known/oauth-protected-resource/mcp"
	wPRMRoot  = wOrigin + "/.well-known/oauth-protected-resource"
	wASMOAuth = wIssuer + "/.well-known/oauth-authorization-server"
	wASMOIDC  = wIssuer + "/.well-known/openid-configuration"
)

// fakeMeta is the parsed metadata of newFakeAS(issuer).
func fakeMeta(issuer string) effects.ServerMetadata {
	return effects.ServerMetadata{
		Issuer:                            issuer,
		AuthorizationEndpoint:             issuer + "/authorize",
		TokenEndpoint:                     issuer + "/token",
		RegistrationEndpoint:              issuer + "/register",
		ScopesSupported:                   []string{"mcp:read", "mcp:write"},
		ResponseTypesSupported:            []string{"code"},
		GrantTypesSupported:               []string{"authorization_code", "refresh_token"},
		CodeChallengeMethodsSupported:     []string{"S256"},
		TokenEndpointAuthMethodsSupported: []string{"none", "client_secret_basic", "client_secret_post"},
	}
}

// fakeDiscovery is what the default world's discovery saves.
func fakeDiscovery() effects.Discovery {
	return effects.Discovery{
		Server:              wServer,
		ResourceMetadataURL: wPRMPath,
		Resource: effects.ResourceMetadata{
			Resource: wServer, AuthorizationServers: []string{wIssuer},
			ScopesSupported: []string{"mcp:read"}, BearerMethodsSupported: []string{"header"},
		},
		Authorization: fakeMeta(wIssuer),
	}
}

// wDCRBody is the registration the machine sends in the default world
// (A-DCR-02/03: native for a loopback redirect; A-REF-02: refresh_token).
const wDCRBody = `{"client_name":"mcpauth","redirect_uris":["http://127.0.0.1:8765/callback"],` +
	`"grant_types":["authorization_code","refresh_token"],"response_types":["code"],` +
	`"token_endpoint_auth_method":"none","application_type":"native","scope":"mcp:read"}`

func registrationPost(seq uint64, endpoint, body string) effects.Fetch {
	return effects.Fetch{Seq: seq, Purpose: effects.PurposeRegistration, Method: "POST", URL: endpoint,
		Header: map[string][]string{"Accept": {"application/json"}, "Content-Type": {"application/json"}},
		Body:   []byte(body)}
}

// dcrClient is the n-th client the world registers at issuer.
func dcrClient(issuer string, n int) effects.Client {
	return effects.Client{Issuer: issuer, ClientID: fmt.Sprintf("client-%d", n), AuthMethod: "none",
		RedirectURIs: []string{wRedirect}, Source: effects.ClientDynamic}
}

// fakeTokens is the credential the default world's n-th access token makes.
func fakeTokens(n int, refresh string, scope string, at time.Time) effects.Tokens {
	return effects.Tokens{
		Resource: wServer, Issuer: wIssuer, ClientID: "client-1",
		AccessToken: fmt.Sprintf("at-%d", n), TokenType: "Bearer", RefreshToken: refresh,
		Scope: scope, ExpiresAt: at.Add(time.Hour), Grant: string(machine.GrantAuthorizationCode),
	}
}
