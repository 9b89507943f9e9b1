package machine_test

// Properties of the machine over random interleavings of at least 50
// protected requests and a hostile world (hostile_test.go). rapid draws the
// world and the configuration, the order in which effects are answered,
// each answer (honest, or hostile with a probability drawn per part of the
// world), stale and duplicate inputs, and the passing of time. After every
// step the invariants below are checked; at the end the world turns honest
// and is driven until quiescent, and the whole run is replayed.
//
//  1. Token confinement: an access token goes only to the MCP server's
//     origin, in the Authorization header (Bearer, or DPoP with a proof
//     that carries its hash); refresh tokens, client secrets, codes and
//     PKCE verifiers go only to the validated token endpoint of the issuer
//     they belong to; no secret is ever in a URL, a proof or an error;
//     every auxiliary request is https or loopback.
//  2. PKCE and resource: the code_verifier at /token hashes (S256) to the
//     code_challenge of the last authorization URL, which is always S256;
//     resource is the same on both, and names the MCP server.
//  3. Single flight: at most one auxiliary request and one authorization
//     outstanding per attempt, and the state says which one is awaited.
//  4. Every request is answered exactly once (Deliver or Fail), is never
//     sent after that, is re-sent once per new credential (plus the one
//     RFC 9449 §9 nonce retry), and is never stranded: in flight, it is
//     either parked while something runs or has a send outstanding.
//  5. Bounded: inputs per attempt, sends per request, the final drain.
//  6. Tokens never lost: a transient refresh failure keeps the refresh
//     token and forgets nothing; only invalid_grant forgets; a credential
//     is saved before a request carries it.
//  7. Determinism and purity: Step leaves its input snapshot untouched
//     (deep copy and request fingerprint), gives the same result twice,
//     and a replay of the run from New with the same seed and times gives
//     the same snapshots and effects. Illegal inputs return
//     *machine.UnexpectedInputError, the snapshot unchanged, no effects.
//  8. Transitions only along states.Table, chained from state to state.
//
// Run: RAPID_CHECKS=1000 go test -race -run 'Propert|Fuzz' ./machine (add -v
// for coverage: triggers reached, answers given). A failure prints the
// minimized draws and writes testdata/rapid/…; use -rapid.nofailfile=true to
// keep the tree clean. go test -fuzz FuzzMachine ./machine fuzzes the same
// property; nearly every input finds new coverage, so pass
// -fuzzminimizetime=2s or the fuzzer spends its time minimizing.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
	"github.com/mcpauth/mcpauth/states"
)

// Run sizes: at least 50 protected requests per run, and enough actions
// for them to interleave with attempts. RAPID_CHECKS=1000 under -race must
// stay well under a minute on two cores.
const (
	minRequests = 50
	maxRequests = 60
	minActions  = 30
	maxActions  = 180
)

func TestMachineProperties(t *testing.T) {
	cov := &coverage{triggers: map[string]int{}, variants: map[string]int{}}
	rapid.Check(t, func(rt *rapid.T) { machineProperty(rt, cov) })
	if testing.Verbose() {
		cov.report(t)
	}
}

func FuzzMachine(f *testing.F) {
	for seed := range uint64(3) {
		buf := make([]byte, 12<<10) // enough draws for a whole run, small enough to minimize
		r := rand.NewChaCha8([32]byte{byte(seed)})
		_, _ = r.Read(buf)
		f.Add(buf)
	}
	f.Fuzz(rapid.MakeFuzz(func(t *rapid.T) { machineProperty(t, nil) }))
}

func machineProperty(t *rapid.T, cov *coverage) {
	h := newHarness(t, cov)
	total := rapid.IntRange(minRequests, maxRequests).Draw(t, "requests")
	actions := rapid.IntRange(minActions, maxActions).Draw(t, "actions")
	for range actions {
		h.act(total)
	}
	for h.started < total {
		h.startRequest(mcpServer)
	}
	h.drain()
	h.replay()
	cov.add(h)
}

// --- the harness -------------------------------------------------------------

type harness struct {
	t          *rapid.T
	cov        *coverage
	cfg        machine.Config
	w          *world
	hostilePct [parts]int // how often each part of the world lies, in percent
	honest     bool       // the final drain: every answer honest, nothing drawn

	s        machine.Snapshot
	now      time.Time
	seed     [32]byte
	entropy  *rand.ChaCha8 // gives each Step its own ChaCha8 seed
	initial  machine.Snapshot
	initEffs []effects.Effect
	log      []stepRecord

	attempt       int // bumps when an attempt starts
	attemptInputs int // inputs consumed by the current attempt

	fetches    []*sentFetch  // auxiliary requests not answered yet (live or abandoned)
	answered   []uint64      // Seqs already answered
	callback   *sentCallback // the authorization response awaited, if any
	lastOpen   *authRequest  // the last authorization URL opened
	lastCode   string        // the code of the last authorization response
	loadStored bool          // LoadStored not answered yet
	loadClient *pendingLoad  // LoadClient not answered yet

	reqs     map[effects.RequestID]*reqModel
	nextID   effects.RequestID
	started  int
	inFlight int
	peak     int

	secrets   secrets
	persisted map[string]bool // access tokens saved, loaded from the store, or adopted from it
	stats     map[string]int
}

// secrets is every secret handed to the machine, so the properties can
// follow where it goes.
type secrets struct {
	access map[string]bool   // access tokens
	bound  map[string]string // refresh tokens and client secrets → the issuer they belong to
	flow   map[string]bool   // authorization codes and PKCE verifiers
	state  map[string]bool   // state parameters
}

type stepRecord struct {
	in   machine.Input
	now  time.Time
	next machine.Snapshot
	effs []effects.Effect
	err  error
}

type sentFetch struct {
	eff     effects.Fetch
	attempt int
}

type sentCallback struct {
	open    *authRequest
	attempt int
}

type authRequest struct {
	url, challenge, method, state, resource, redirect, clientID string
	hasResource                                                 bool
}

type pendingLoad struct {
	issuer  string
	attempt int
}

type reqModel struct {
	url         string
	foreign     bool // not the MCP server's origin, by the test's own reckoning
	sends       int
	lastCred    uint64
	outstanding *effects.SendProtected
	done        bool
	how         string
	nonceRetry  bool // the next send may repeat the credential (RFC 9449 §9)
	nonceUsed   bool
}

// inputNote says what an input answers, for the checks of its step.
type inputNote struct {
	variant         string
	fetch           *sentFetch
	transient       bool // a 5xx, a 429, a transport failure, or a transient error code
	invalidGrant    bool // error=invalid_grant, not transient
	callback        *sentCallback
	callbackCode    string
	protected       effects.RequestID
	hasProtected    bool
	protectedFailed bool
	nonceChallenge  bool   // a use_dpop_nonce challenge: one re-send with the same credential is allowed
	asNonce         string // the token endpoint asked for this DPoP nonce
}

func newHarness(t *rapid.T, cov *coverage) *harness {
	w, cfg := drawWorld(t)
	h := &harness{
		t: t, cov: cov, cfg: cfg, w: w,
		now:    epoch,
		reqs:   map[effects.RequestID]*reqModel{},
		nextID: 1,
		secrets: secrets{access: map[string]bool{}, bound: map[string]string{}, flow: map[string]bool{},
			state: map[string]bool{}},
		persisted: map[string]bool{},
		stats:     map[string]int{},
	}
	for i, name := range partNames {
		h.hostilePct[i] = rapid.IntRange(0, 60).Draw(t, "hostile_percent_"+name)
	}
	if len(cfg.Clients) > 0 {
		h.secrets.bound[preSecret] = w.preIssuer
	}
	seed := rapid.Uint64().Draw(t, "seed")
	for i := range 8 {
		h.seed[i] = byte(seed >> (8 * i))
	}
	h.entropy = rand.NewChaCha8(h.seed)
	s, effs, err := machine.New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	if diff := cmp.Diff([]effects.Effect{effects.LoadStored{Server: mcpServer}}, effs); diff != "" {
		t.Fatalf("New effects mismatch (-want +got):\n%s", diff)
	}
	h.s, h.initial, h.initEffs, h.loadStored = s, s, effs, true
	return h
}

var actionTable = []string{
	"respond", "start", "fetch", "callback", "respond", "load", "start", "stale",
	"respond", "fetch", "time", "respond", "tick", "start", "stale", "changed", "fetch", "callback",
}

// act runs one random action.
func (h *harness) act(total int) {
	t := h.t
	switch rapid.SampledFrom(actionTable).Draw(t, "action") {
	case "start":
		if h.started < total+8 {
			for n := rapid.IntRange(1, 4).Draw(t, "burst"); n > 0; n-- {
				h.startRequest(h.requestURL())
			}
		}
	case "respond":
		ids := h.outstandingIDs()
		if len(ids) > 0 {
			id := ids[rapid.IntRange(0, len(ids)-1).Draw(t, "which_request")]
			in, note := h.answerProtected(id)
			h.step(in, true, note)
		}
	case "fetch":
		if f := h.liveFetch(); f != nil {
			in, note := h.answerFetch(f)
			h.step(in, true, note)
		}
	case "callback":
		if c := h.liveCallback(); c != nil {
			in, note := h.answerCallback(c)
			h.step(in, true, note)
		}
	case "load":
		h.answerLoads()
	case "time":
		dt := rapid.SampledFrom([]time.Duration{time.Second, 30 * time.Second, 2 * time.Minute,
			59 * time.Minute, 61 * time.Minute, 25 * time.Hour}).Draw(t, "time_passes")
		h.now = h.now.Add(dt)
		h.step(machine.Tick{}, true, inputNote{})
	case "tick":
		h.step(machine.Tick{}, true, inputNote{})
	case "stale":
		h.stale()
	case "changed":
		h.credentialChanged()
	}
}

var (
	sameOriginURLs = []string{mcpServer, mcpServer + "/tools/call", "HTTPS://MCP.EXAMPLE:443/mcp"}
	foreignURLs    = []string{evilOrigin + "/mcp", "http://mcp.example/mcp", "https://mcp.example:8443/mcp",
		"https://mcp.example.evil.example/mcp", "https://mcp.example@evil.example/mcp"}
)

func (h *harness) requestURL() string {
	if h.hostile(requester, "foreign_request") {
		return rapid.SampledFrom(foreignURLs).Draw(h.t, "foreign_url")
	}
	return rapid.SampledFrom(sameOriginURLs).Draw(h.t, "request_url")
}

func (h *harness) startRequest(u string) {
	id := h.nextID
	h.nextID++
	h.started++
	h.inFlight++
	h.peak = max(h.peak, h.inFlight)
	h.reqs[id] = &reqModel{url: u, foreign: originOf(u) != mcpOrigin}
	h.step(machine.RequestStarted{Request: id, Method: "POST", URL: u}, true, inputNote{})
}

func (h *harness) outstandingIDs() []effects.RequestID {
	var ids []effects.RequestID
	for id, m := range h.reqs {
		if m.outstanding != nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// liveFetch is the auxiliary request the running attempt awaits.
func (h *harness) liveFetch() *sentFetch {
	for _, f := range h.fetches {
		if f.attempt == h.attempt && h.s.State.Attempting() {
			return f
		}
	}
	return nil
}

func (h *harness) liveCallback() *sentCallback {
	if c := h.callback; c != nil && c.attempt == h.attempt && h.s.State == states.AwaitingCallback {
		return c
	}
	return nil
}

func (h *harness) liveLoadClient() *pendingLoad {
	if l := h.loadClient; l != nil && l.attempt == h.attempt && h.s.State == states.LoadingClient {
		return l
	}
	return nil
}

// answerLoads answers the store's pending loads; an answer that comes too
// late (the machine moved on) must be refused.
func (h *harness) answerLoads() {
	switch {
	case h.loadStored:
		legal := h.s.State == states.Loading
		h.loadStored = false
		h.step(h.answerLoadStored(), legal, inputNote{})
	case h.loadClient != nil:
		l := h.liveLoadClient()
		in := h.answerLoadClient(h.loadClient.issuer)
		h.loadClient = nil
		h.step(in, l != nil, inputNote{})
	}
}

// credentialChanged: another process stored a newer credential.
func (h *harness) credentialChanged() {
	issuer := issuerA
	if h.s.Discovered {
		issuer = h.s.Discovery.Authorization.Issuer
	}
	at, rt, exp := h.issueTokens(issuer, true)
	v := h.s.CredentialVersion + 1 + uint64(rapid.IntRange(0, 2).Draw(h.t, "version_ahead"))
	resource := mcpServer // the resource the other process authorized for
	if d := h.s.Discovery; h.s.Discovered && !d.Legacy && d.Resource.Resource != "" {
		resource = d.Resource.Resource
	}
	tok := effects.Tokens{Resource: resource, Issuer: issuer, ClientID: h.s.Client.ClientID, AccessToken: at,
		TokenType: "Bearer", RefreshToken: rt, ExpiresAt: exp}
	h.step(machine.CredentialChanged{Tokens: tok, Version: v}, true, inputNote{})
}

// stale feeds an input that is illegal now: it must be refused with
// *machine.UnexpectedInputError, the snapshot unchanged and no effects.
func (h *harness) stale() {
	s := h.s
	kinds := []string{"unknown_seq", "unknown_request", "unknown_request_failed", "old_credential", "credential_other_resource"}
	var abandoned []*sentFetch
	for _, f := range h.fetches {
		if f != h.liveFetch() {
			abandoned = append(abandoned, f)
		}
	}
	if len(abandoned) > 0 {
		kinds = append(kinds, "abandoned_fetch")
	}
	if len(h.answered) > 0 {
		kinds = append(kinds, "duplicate_fetch_answer")
	}
	var finished, inflight []effects.RequestID
	for id, m := range h.reqs {
		if m.done {
			finished = append(finished, id)
		} else {
			inflight = append(inflight, id)
		}
	}
	slices.Sort(finished)
	slices.Sort(inflight)
	var parked []effects.RequestID
	s.Requests.Each(func(id effects.RequestID, info machine.RequestInfo) {
		if info.Parked {
			parked = append(parked, id)
		}
	})
	if len(finished) > 0 {
		kinds = append(kinds, "finished_request")
	}
	if len(parked) > 0 {
		kinds = append(kinds, "parked_request")
	}
	if len(inflight) > 0 {
		kinds = append(kinds, "duplicate_request_id")
	}
	if s.State != states.AwaitingCallback {
		kinds = append(kinds, "unawaited_callback", "unawaited_callback_failure")
	}
	if s.State != states.Loading {
		kinds = append(kinds, "stored_loaded_again")
	}
	if s.State != states.LoadingClient {
		kinds = append(kinds, "unasked_client")
	}
	if s.Discovered {
		kinds = append(kinds, "credential_other_issuer")
	}
	pick := func(ids []effects.RequestID, label string) effects.RequestID {
		return ids[rapid.IntRange(0, len(ids)-1).Draw(h.t, label)]
	}
	var in machine.Input
	kind := rapid.SampledFrom(kinds).Draw(h.t, "stale_kind")
	switch kind {
	case "unknown_seq":
		seq := s.Seq + 1 + uint64(rapid.IntRange(0, 3).Draw(h.t, "seq_ahead"))
		if rapid.Bool().Draw(h.t, "seq_zero") {
			seq = 0
		}
		in = machine.FetchResponse{Seq: seq, Status: 200, Body: []byte(`{}`)}
	case "abandoned_fetch":
		f := abandoned[rapid.IntRange(0, len(abandoned)-1).Draw(h.t, "which_fetch")]
		in = machine.FetchFailed{Seq: f.eff.Seq, Reason: "late"}
		if rapid.Bool().Draw(h.t, "late_success") {
			in = response(f.eff.Seq, 200, `{"access_token":"LATE00000000Z","token_type":"Bearer"}`)
		}
	case "duplicate_fetch_answer":
		seq := h.answered[rapid.IntRange(0, len(h.answered)-1).Draw(h.t, "which_seq")]
		in = response(seq, 200, `{}`)
	case "unknown_request":
		in = machine.ProtectedResponse{Request: h.nextID + 1000, Status: 200}
	case "unknown_request_failed":
		in = machine.ProtectedFailed{Request: h.nextID + 1000}
	case "finished_request":
		id := pick(finished, "which_finished")
		in = machine.ProtectedResponse{Request: id, Status: 401, Credential: h.reqs[id].lastCred,
			Challenges: []string{h.challenge()}}
		if rapid.Bool().Draw(h.t, "as_failure") {
			in = machine.ProtectedFailed{Request: id}
		}
	case "parked_request":
		in = machine.ProtectedResponse{Request: pick(parked, "which_parked"), Status: 200}
	case "duplicate_request_id":
		in = machine.RequestStarted{Request: pick(inflight, "which_inflight"), URL: mcpServer}
	case "unawaited_callback":
		st := "forged"
		if h.lastOpen != nil {
			st = h.lastOpen.state
		}
		in = machine.CallbackReceived{Query: "code=CODESTALE0000000Z&state=" + url.QueryEscape(st)}
	case "unawaited_callback_failure":
		in = machine.CallbackFailed{Reason: "timeout"}
	case "stored_loaded_again":
		in = h.answerLoadStored()
	case "unasked_client":
		in = machine.ClientLoaded{}
	case "old_credential":
		// Older than ours, or ours again; an equal version with another
		// token is a lost compare-and-swap, which is legal.
		tok := effects.Tokens{Resource: mcpServer, Issuer: s.Discovery.Authorization.Issuer, AccessToken: h.bogusToken(), TokenType: "Bearer"}
		v := uint64(0)
		if s.CredentialVersion > 0 {
			v = uint64(rapid.IntRange(0, int(min(s.CredentialVersion-1, 3))).Draw(h.t, "old_version"))
		}
		switch rapid.IntRange(0, 2).Draw(h.t, "old_credential_kind") {
		case 1:
			tok.AccessToken, v = "", s.CredentialVersion+1
		case 2:
			if s.HasCredential() && s.CredentialVersion > 0 {
				tok, v = s.Credential, s.CredentialVersion
			}
		}
		in = machine.CredentialChanged{Tokens: tok, Version: v}
	case "credential_other_resource":
		in = machine.CredentialChanged{Version: s.CredentialVersion + 1,
			Tokens: effects.Tokens{Resource: "https://other.example/mcp", Issuer: s.Discovery.Authorization.Issuer, AccessToken: h.bogusToken(), TokenType: "Bearer"}}
	case "credential_other_issuer":
		in = machine.CredentialChanged{Version: s.CredentialVersion + 1,
			Tokens: effects.Tokens{Resource: mcpServer, Issuer: "https://rogue.example", AccessToken: h.bogusToken(), TokenType: "Bearer"}}
	}
	h.step(in, false, inputNote{variant: "stale:" + kind})
}

// drain turns the world honest and answers everything in a fixed order
// until nothing is left to answer.
func (h *harness) drain() {
	h.honest = true
	limit := 40 * (h.started + 10)
	for i := 0; ; i++ {
		if i > limit {
			h.t.Fatalf("not quiescent after %d honest answers: state %s, %d requests in flight, %d parked",
				limit, h.s.State, h.s.Requests.Len(), h.s.Requests.Parked())
		}
		if h.loadStored || h.liveLoadClient() != nil {
			h.answerLoads()
			continue
		}
		if f := h.liveFetch(); f != nil {
			in, note := h.answerFetch(f)
			h.step(in, true, note)
			continue
		}
		if c := h.liveCallback(); c != nil {
			in, note := h.answerCallback(c)
			h.step(in, true, note)
			continue
		}
		if ids := h.outstandingIDs(); len(ids) > 0 {
			in, note := h.answerProtected(ids[0])
			h.step(in, true, note)
			continue
		}
		break
	}
	// 4: nobody stranded.
	for id, m := range h.reqs {
		if !m.done {
			h.t.Fatalf("request %d (%s) was never answered: state %s, info %+v", id, m.url, h.s.State, h.reqInfo(id))
		}
	}
	if h.s.Requests.Len() != 0 || h.s.Requests.Parked() != 0 || h.s.State.Attempting() || h.s.State == states.Loading {
		h.t.Fatalf("not quiescent: %v", h.s)
	}
}

func (h *harness) stat(key string) {
	if h.cov != nil {
		h.stats[key]++
	}
}

func (h *harness) reqInfo(id effects.RequestID) any {
	info, ok := h.s.Requests.Get(id)
	if !ok {
		return "not in flight"
	}
	return info
}

// --- one step ----------------------------------------------------------------

var (
	errorsByText = cmp.Comparer(func(a, b error) bool {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		return reflect.TypeOf(a) == reflect.TypeOf(b) && a.Error() == b.Error()
	})
	exact = cmp.Options{errorsByText}
	loose = cmp.Options{errorsByText, cmpopts.EquateEmpty()}
)

// same reports whether x and y are equal by cmp with opts. reflect.DeepEqual
// is only a fast path, stricter than cmp (it also compares the shape of the
// Requests trie and errors field by field): when it says "different", cmp
// decides. cmp alone would call each Equal method in goroutines, which costs
// most of a run under -race.
func same(x, y any, opts cmp.Options) bool {
	return reflect.DeepEqual(x, y) || cmp.Equal(x, y, opts)
}

// sameSnapshot is same for snapshots, with Requests compared by its Equal
// method (by content, as cmp does) rather than walked node by node.
func sameSnapshot(a, b machine.Snapshot, opts cmp.Options) bool {
	ra, rb := a.Requests, b.Requests
	a.Requests, b.Requests = machine.Requests{}, machine.Requests{}
	return ra.Equal(rb) && same(a, b, opts)
}

var fingerprintSeed = maphash.MakeSeed()

// fingerprint sums a hash of every request in flight: it changes when the
// set changes in place, without copying the set.
func fingerprint(r machine.Requests) uint64 {
	sum := uint64(r.Len())
	r.Each(func(id effects.RequestID, info machine.RequestInfo) {
		sum += maphash.Comparable(fingerprintSeed, struct {
			ID   effects.RequestID
			Info machine.RequestInfo
		}{id, info})
	})
	return sum
}

// step feeds one input. legal says whether the machine must accept it
// (else it must refuse it, harmlessly).
func (h *harness) step(in machine.Input, legal bool, note inputNote) []effects.Effect {
	t := h.t
	t.Helper()
	prev := h.s
	var seed [32]byte
	_, _ = h.entropy.Read(seed[:])
	env := machine.Env{Now: h.now, Rand: rand.NewChaCha8(seed)}

	// 7: Step never mutates its input snapshot, and gives the same result
	// for the same input twice.
	prevCopy := deepCopy(reflect.ValueOf(prev)).Interface().(machine.Snapshot)
	prevReqs := fingerprint(prev.Requests)
	next, effs, err := machine.Step(prev, in, env)
	if !same(prevCopy, prev, exact) || prevReqs != fingerprint(prev.Requests) {
		t.Fatalf("step %d: Step(%s) mutated its input snapshot (-before +after):\n%s",
			len(h.log), describe(in), cmp.Diff(prevCopy, prev, exact))
	}
	next2, effs2, err2 := machine.Step(prev, in, machine.Env{Now: h.now, Rand: rand.NewChaCha8(seed)})
	if !sameSnapshot(next, next2, exact) || !same(effs, effs2, exact) || !same(err, err2, exact) {
		t.Fatalf("step %d: Step(%s) is not deterministic (-first +second):\nsnapshot: %s\neffects: %s\nerror: %v / %v",
			len(h.log), describe(in), cmp.Diff(next, next2, exact), cmp.Diff(effs, effs2, exact), err, err2)
	}
	h.log = append(h.log, stepRecord{in: in, now: h.now, next: next, effs: effs, err: err})
	if h.cov != nil {
		h.stats["input:"+fmt.Sprintf("%T", in)]++
		if note.variant != "" {
			h.stats["variant:"+note.variant]++
		}
	}
	if err != nil {
		h.checkNoSecrets("error "+err.Error(), err.Error())
	}

	if !legal {
		var unexpected *machine.UnexpectedInputError
		if !errors.As(err, &unexpected) {
			t.Fatalf("step %d: illegal input %s in state %s: got error %v, want *machine.UnexpectedInputError",
				len(h.log), describe(in), prev.State, err)
		}
		if !sameSnapshot(prev, next, loose) {
			diff := cmp.Diff(prev, next, loose)
			t.Fatalf("step %d: refused input %s changed the snapshot (-before +after):\n%s", len(h.log), describe(in), diff)
		}
		if len(effs) != 0 {
			t.Fatalf("step %d: refused input %s emitted effects %v", len(h.log), describe(in), effs)
		}
		return nil
	}
	if err != nil {
		t.Fatalf("step %d: legal input %s refused in state %s: %v", len(h.log), describe(in), prev.State, err)
	}
	h.s = next
	h.check(prev, in, next, effs, note)
	return effs
}

// check verifies every invariant after a legal step and updates the model.
func (h *harness) check(prev machine.Snapshot, in machine.Input, next machine.Snapshot, effs []effects.Effect, note inputNote) {
	t := h.t
	n := len(h.log)
	where := func() string { return fmt.Sprintf("step %d (%s, %s → %s)", n, describe(in), prev.State, next.State) }

	// What the input consumed.
	if note.fetch != nil {
		h.fetches = slices.DeleteFunc(h.fetches, func(f *sentFetch) bool { return f == note.fetch })
		h.answered = append(h.answered, note.fetch.eff.Seq)
	}
	if note.callback != nil {
		h.callback = nil
		h.lastCode = note.callbackCode
	}
	if note.hasProtected {
		m := h.reqs[note.protected]
		m.outstanding = nil
		m.nonceRetry = note.nonceChallenge && !m.nonceUsed
		if note.protectedFailed {
			h.finish(note.protected, "transport failure")
		}
	}
	switch in := in.(type) {
	case machine.FetchResponse, machine.FetchFailed, machine.CallbackReceived, machine.CallbackFailed, machine.ClientLoaded:
		if prev.State.Attempting() {
			h.attemptInputs++
		}
	case machine.StoredLoaded:
		if in.Tokens != nil {
			h.persisted[in.Tokens.AccessToken] = true
		}
	case machine.CredentialChanged:
		h.persisted[in.Tokens.AccessToken] = true
	}

	// 8: transitions only along states.Table, chained from prev to next.
	at := prev.State
	for _, e := range effs {
		tr, ok := e.(effects.Transition)
		if !ok {
			continue
		}
		to, err := states.Next(states.State(tr.From), states.Trigger(tr.Trigger))
		if err != nil || string(to) != tr.To || tr.From != string(at) {
			t.Fatalf("%s: transition %+v is not in states.Table from %s (Next: %s, %v)", where(), tr, at, to, err)
		}
		h.cov.trigger(tr.Trigger)
		if !states.State(tr.From).Attempting() && states.State(tr.To).Attempting() {
			h.attempt++
			h.attemptInputs = 0
		}
		at = states.State(tr.To)
	}
	if at != next.State || !slices.Contains(states.All, next.State) {
		t.Fatalf("%s: transitions end in %s but the snapshot is in %s", where(), at, next.State)
	}

	// The effects, in order.
	saved := -1
	var forgot bool
	for i, e := range effs {
		switch e := e.(type) {
		case effects.Fetch:
			h.checkFetch(where, prev, next, e, note)
			if live := h.liveFetchOf(h.attempt); live != nil {
				t.Fatalf("%s: 3: fetch %d (%s) emitted while fetch %d (%s) of the same attempt is outstanding",
					where(), e.Seq, e.Purpose, live.eff.Seq, live.eff.Purpose)
			}
			h.fetches = append(h.fetches, &sentFetch{eff: e, attempt: h.attempt})
		case effects.OpenURL:
			h.checkOpenURL(where, next, e)
		case effects.AwaitCallback:
			if h.lastOpen == nil || i == 0 || !isOpenURL(effs[i-1]) {
				t.Fatalf("%s: AwaitCallback without the OpenURL just before it", where())
			}
			if h.callback != nil && h.callback.attempt == h.attempt {
				t.Fatalf("%s: 3: a second authorization in the same attempt while one is awaited", where())
			}
			if e.RedirectURI != redirectURI {
				t.Fatalf("%s: AwaitCallback at %q, want %q", where(), e.RedirectURI, redirectURI)
			}
			h.callback = &sentCallback{open: h.lastOpen, attempt: h.attempt}
		case effects.SendProtected:
			h.checkSend(where, next, e)
		case effects.Deliver:
			if !note.hasProtected || note.protected != e.Request || note.protectedFailed {
				t.Fatalf("%s: 4: Deliver{%d} without a response for that request", where(), e.Request)
			}
			h.finish(e.Request, "delivered")
		case effects.Fail:
			info, _ := prev.Requests.Get(e.Request)
			if !(note.hasProtected && note.protected == e.Request) && !info.Parked {
				t.Fatalf("%s: 4: Fail{%d} for a request that neither answered nor was parked", where(), e.Request)
			}
			if e.Err == nil {
				t.Fatalf("%s: Fail{%d} without an error", where(), e.Request)
			}
			h.checkNoSecrets(fmt.Sprintf("%s: the error failing request %d", where(), e.Request), e.Err.Error())
			h.finish(e.Request, "failed: "+e.Err.Error())
		case effects.SaveTokens:
			saved = i
			h.persisted[e.Tokens.AccessToken] = true
			if e.Server != mcpServer || e.Tokens.AccessToken == "" || e.Tokens != next.Credential {
				t.Fatalf("%s: SaveTokens %v does not save the credential adopted (%v)", where(), e.Tokens, next.Credential)
			}
			if !h.secrets.access[e.Tokens.AccessToken] {
				t.Fatalf("%s: SaveTokens of an access token nobody issued", where())
			}
		case effects.ForgetTokens:
			forgot = true
			h.stat("forget_tokens")
			// 6: only invalid_grant may forget the credential.
			if note.fetch == nil || note.fetch.eff.Purpose != effects.PurposeRefresh || !note.invalidGrant || note.transient {
				t.Fatalf("%s: 6: ForgetTokens after %q; only an invalid_grant refresh answer may forget tokens", where(), note.variant)
			}
		case effects.LoadClient:
			if next.State != states.LoadingClient || e.Issuer != next.Discovery.Authorization.Issuer {
				t.Fatalf("%s: LoadClient{%s} in state %s", where(), e.Issuer, next.State)
			}
			h.loadClient = &pendingLoad{issuer: e.Issuer, attempt: h.attempt}
		case effects.LoadStored:
			t.Fatalf("%s: LoadStored after start-up", where())
		case effects.SaveClient:
			if e.Client.Issuer != next.Discovery.Authorization.Issuer {
				t.Fatalf("%s: SaveClient for issuer %q, discovery says %q", where(), e.Client.Issuer, next.Discovery.Authorization.Issuer)
			}
		case effects.Transition, effects.SaveDiscovery, effects.ForgetClient, effects.WakeAt:
		default:
			t.Fatalf("%s: unknown effect %T", where(), e)
		}
	}

	// 6: tokens never lost.
	if note.fetch != nil && note.fetch.eff.Purpose == effects.PurposeRefresh {
		h.stat("refresh_answer:" + note.variant)
		if note.transient && (forgot || next.Credential.RefreshToken != prev.Credential.RefreshToken) {
			t.Fatalf("%s: 6: transient refresh failure (%s) lost the refresh token (had %q, now %q, forgot %v)",
				where(), note.variant, prev.Credential.RefreshToken, next.Credential.RefreshToken, forgot)
		}
		if saved >= 0 && prev.Credential.RefreshToken != "" && next.Credential.RefreshToken == "" {
			t.Fatalf("%s: 6: a refresh without a new refresh token dropped the old one", where())
		}
	}

	// 2: PKCE and the verifier's secrecy bookkeeping.
	if v := next.Attempt.Verifier; v != "" {
		h.secrets.flow[v] = true
	}
	if st := next.Attempt.StateParam; st != "" {
		h.secrets.state[st] = true
	}

	// 5: bounded.
	if limit := next.Config.Limits.StepsPerAttempt; next.Attempt.Steps > limit || h.attemptInputs > limit {
		t.Fatalf("%s: 5: attempt consumed %d inputs (snapshot says %d), limit %d", where(), h.attemptInputs, next.Attempt.Steps, limit)
	}

	h.checkLiveness(where, next)
	h.checkRequests(where, next)
	if next.State == states.Authenticated && !next.HasCredential() {
		t.Fatalf("%s: authenticated without a credential", where())
	}
}

func isOpenURL(e effects.Effect) bool { _, ok := e.(effects.OpenURL); return ok }

// liveFetchOf is the unanswered fetch of attempt a, if any.
func (h *harness) liveFetchOf(a int) *sentFetch {
	for _, f := range h.fetches {
		if f.attempt == a {
			return f
		}
	}
	return nil
}

func (h *harness) finish(id effects.RequestID, how string) {
	m := h.reqs[id]
	if m == nil || m.done {
		h.t.Fatalf("step %d: 4: request %d answered twice (first: %s; now: %s)", len(h.log), id, m.how, how)
	}
	if m.outstanding != nil {
		h.t.Fatalf("step %d: 4: request %d ended (%s) while a send is outstanding", len(h.log), id, how)
	}
	m.done, m.how = true, how
	h.inFlight--
}

// checkLiveness: 3 and 4. The state says what is awaited, exactly that is
// outstanding, and at most one auxiliary request per attempt.
func (h *harness) checkLiveness(where func() string, next machine.Snapshot) {
	t := h.t
	live := 0
	var f *sentFetch
	for _, x := range h.fetches {
		if x.attempt == h.attempt && next.State.Attempting() {
			live++
			f = x
		}
	}
	if live > 1 {
		t.Fatalf("%s: 3: %d auxiliary requests outstanding in one attempt", where(), live)
	}
	want := map[states.State]effects.Purpose{
		states.DiscoveringResource: effects.PurposeResourceMetadata,
		states.DiscoveringIssuer:   effects.PurposeServerMetadata,
		states.Registering:         effects.PurposeRegistration,
		states.ExchangingCode:      effects.PurposeToken,
		states.Refreshing:          effects.PurposeRefresh,
		states.RequestingToken:     effects.PurposeGrant,
		states.ExchangingIdentity:  effects.PurposeIdentityExchange,
	}
	if p, ok := want[next.State]; ok {
		if f == nil || f.eff.Purpose != p || f.eff.Seq != next.Attempt.Pending {
			t.Fatalf("%s: 4: state %s awaits a %s request (pending %d) but none is outstanding (%+v)",
				where(), next.State, p, next.Attempt.Pending, f)
		}
	} else if f != nil {
		t.Fatalf("%s: 3: fetch %d outstanding in state %s", where(), f.eff.Seq, next.State)
	}
	if next.State == states.AwaitingCallback && h.liveCallback() == nil {
		t.Fatalf("%s: 4: awaiting a callback nobody was asked for", where())
	}
	if next.State == states.LoadingClient && h.liveLoadClient() == nil {
		t.Fatalf("%s: 4: loading a client nobody was asked for", where())
	}
	if next.State == states.Loading && !h.loadStored {
		t.Fatalf("%s: 4: loading with the store already answered", where())
	}
}

// checkRequests: 4. The machine's requests are the model's; a parked
// request waits for something running; any other has a send outstanding.
func (h *harness) checkRequests(where func() string, next machine.Snapshot) {
	t := h.t
	count, parked := 0, 0
	next.Requests.Each(func(id effects.RequestID, info machine.RequestInfo) {
		count++
		m := h.reqs[id]
		switch {
		case m == nil || m.done:
			t.Fatalf("%s: 4: request %d is in flight in the machine but was answered or never started", where(), id)
		case info.Parked:
			parked++
			if m.outstanding != nil {
				t.Fatalf("%s: 4: request %d is parked with a send outstanding", where(), id)
			}
			if next.State != states.Loading && !next.State.Attempting() {
				t.Fatalf("%s: 4: request %d is stranded: parked in %s, where nothing will release it", where(), id, next.State)
			}
		case m.outstanding == nil:
			t.Fatalf("%s: 4: request %d is stranded: in flight, not parked, never sent", where(), id)
		}
		if info.Foreign != m.foreign {
			t.Fatalf("%s: request %d to %s: machine says foreign=%v", where(), id, m.url, info.Foreign)
		}
	})
	if count != h.inFlight || parked != next.Requests.Parked() {
		t.Fatalf("%s: 4: machine has %d requests (%d parked, Parked=%d); the model has %d in flight",
			where(), count, parked, next.Requests.Parked(), h.inFlight)
	}
}

// checkSend: 1 and 4 for one SendProtected.
func (h *harness) checkSend(where func() string, next machine.Snapshot, e effects.SendProtected) {
	t := h.t
	m := h.reqs[e.Request]
	switch {
	case m == nil:
		t.Fatalf("%s: 4: SendProtected{%d} for a request never started", where(), e.Request)
	case m.done:
		t.Fatalf("%s: 4: SendProtected{%d} after it was answered (%s)", where(), e.Request, m.how)
	case m.outstanding != nil:
		t.Fatalf("%s: 4: SendProtected{%d} while its previous send is unanswered", where(), e.Request)
	case m.sends > 0 && e.Credential < m.lastCred,
		m.sends > 0 && e.Credential == m.lastCred && !(m.nonceRetry && e.Credential > 0):
		t.Fatalf("%s: 4: request %d re-sent with credential %d after credential %d", where(), e.Request, e.Credential, m.lastCred)
	}
	if m.sends > 0 && e.Credential == m.lastCred {
		m.nonceUsed = true
		h.stat("resent_with_nonce")
	}
	if e.Proof != nil {
		h.stat("sent_with_dpop_proof")
	}
	m.nonceRetry = false
	m.sends++
	m.lastCred = e.Credential
	if l := next.Config.Limits; m.sends > 2+l.ResendsPerRequest+l.StepUpsPerRequest {
		t.Fatalf("%s: 5: request %d sent %d times", where(), e.Request, m.sends)
	}
	for k, vs := range e.Header {
		for _, v := range vs {
			h.checkNoneOf(where, "a SendProtected header", v, h.secrets.bound, h.secrets.flow, h.secrets.state)
			if k != "Authorization" {
				h.checkNoneOf(where, "a SendProtected header other than Authorization", v, h.secrets.access)
			}
		}
	}
	if auth := e.Header["Authorization"]; len(auth) > 0 {
		// 1: the access token only to the resource's origin.
		if m.foreign || originOf(m.url) != mcpOrigin {
			t.Fatalf("%s: 1: access token sent with request %d to %s (origin %s), not %s", where(), e.Request, m.url, originOf(m.url), mcpOrigin)
		}
		scheme := "Bearer"
		if next.Credential.DPoPKeyID != "" {
			scheme = "DPoP" // RFC 9449 §7.1
		}
		if len(auth) != 1 || auth[0] != scheme+" "+next.Credential.AccessToken || e.Credential != next.Generation {
			t.Fatalf("%s: request %d sent with %q (credential %d), not the current credential (generation %d)",
				where(), e.Request, auth, e.Credential, next.Generation)
		}
		if (e.Proof != nil) != (scheme == "DPoP") {
			t.Fatalf("%s: request %d: %s token with proof %v", where(), e.Request, scheme, e.Proof)
		}
		if e.Proof != nil {
			h.checkProof(where, *e.Proof, m.url, next.Credential.AccessToken)
		}
		if !h.persisted[next.Credential.AccessToken] {
			t.Fatalf("%s: 6: request %d sent with a credential before it was saved", where(), e.Request)
		}
	} else if e.Credential != 0 || e.Proof != nil {
		t.Fatalf("%s: request %d sent without a header but with credential %d or a proof", where(), e.Request, e.Credential)
	}
	m.outstanding = &e
}

// checkFetch: 1 and 2 for one auxiliary request.
func (h *harness) checkFetch(where func() string, prev, next machine.Snapshot, f effects.Fetch, note inputNote) {
	t := h.t
	if !secureURL(f.URL) {
		t.Fatalf("%s: 1: %s request to %q, neither https nor loopback", where(), f.Purpose, f.URL)
	}
	m := next.Discovery.Authorization
	tokenPurpose := f.Purpose == effects.PurposeToken || f.Purpose == effects.PurposeRefresh || f.Purpose == effects.PurposeGrant
	toTokenEndpoint := tokenPurpose && f.Method == "POST" && f.URL == m.TokenEndpoint && m.TokenEndpoint != ""
	if tokenPurpose && !toTokenEndpoint {
		t.Fatalf("%s: 1: %s request to %q, not the validated token endpoint %q", where(), f.Purpose, f.URL, m.TokenEndpoint)
	}
	if f.Purpose == effects.PurposeRegistration && (f.URL != m.RegistrationEndpoint || f.Method != "POST") {
		t.Fatalf("%s: registration %s %q, not the validated registration endpoint %q", where(), f.Method, f.URL, m.RegistrationEndpoint)
	}
	hay := []string{string(f.Body)}
	for _, vs := range f.Header {
		for _, v := range vs {
			hay = append(hay, v)
			if basic, ok := strings.CutPrefix(v, "Basic "); ok {
				if dec, err := base64.StdEncoding.DecodeString(basic); err == nil {
					if u, err := url.QueryUnescape(string(dec)); err == nil {
						hay = append(hay, u)
					}
				}
			}
		}
	}
	for _, sg := range f.Sign {
		hay = append(hay, string(sg.JWT.Claims))
		if sg.Header == "DPoP" {
			h.checkProof(where, sg.JWT, f.URL, "")
			h.stat("fetch_with_dpop_proof")
			if note.variant == "use_dpop_nonce" || note.asNonce != "" {
				h.stat("token_request_retried_with_nonce")
			}
		}
	}
	all := strings.Join(hay, "\n")
	// 1: never an access token, never a secret in a URL, and the other
	// secrets only to the token endpoint of their own issuer.
	h.checkNoneOf(where, "a fetch URL", f.URL, h.secrets.access, h.secrets.bound, h.secrets.flow, h.secrets.state)
	h.checkNoneOf(where, "a fetch", all, h.secrets.access, h.secrets.state)
	if !toTokenEndpoint {
		h.checkNoneOf(where, fmt.Sprintf("a %s request to %s", f.Purpose, f.URL), all, h.secrets.bound, h.secrets.flow)
	} else {
		for s, issuer := range h.secrets.bound {
			if strings.Contains(all, s) && issuer != m.Issuer {
				t.Fatalf("%s: 1: a secret of issuer %s sent to the token endpoint of %s", where(), issuer, m.Issuer)
			}
		}
	}
	if !toTokenEndpoint {
		return
	}
	form, err := url.ParseQuery(string(f.Body))
	if err != nil {
		t.Fatalf("%s: token request body is not a form: %v", where(), err)
	}
	switch f.Purpose {
	case effects.PurposeToken:
		// 2: PKCE and resource consistency with the authorization URL.
		o := h.lastOpen
		switch {
		case o == nil:
			t.Fatalf("%s: 2: code exchanged with no authorization URL opened", where())
		case form.Get("grant_type") != "authorization_code":
			t.Fatalf("%s: token request grant_type %q", where(), form.Get("grant_type"))
		case s256(form.Get("code_verifier")) != o.challenge:
			t.Fatalf("%s: 2: code_verifier does not hash to the code_challenge of the authorization URL", where())
		case form.Has("resource") != o.hasResource || form.Get("resource") != o.resource:
			t.Fatalf("%s: 2: resource %q at /token, %q (present %v) on the authorization URL", where(), form["resource"], o.resource, o.hasResource)
		case form.Get("redirect_uri") != o.redirect:
			t.Fatalf("%s: redirect_uri %q at /token, %q on the authorization URL", where(), form.Get("redirect_uri"), o.redirect)
		case form.Get("code") == "" || form.Get("code") != h.lastCode:
			t.Fatalf("%s: code at /token is not the code of the callback", where())
		case form.Has("client_id") && form.Get("client_id") != o.clientID:
			t.Fatalf("%s: client_id %q at /token, %q on the authorization URL", where(), form.Get("client_id"), o.clientID)
		}
	case effects.PurposeRefresh:
		c := next.Credential // the credential being refreshed stays held while the refresh runs
		switch {
		case form.Get("grant_type") != "refresh_token" || form.Get("refresh_token") == "" || form.Get("refresh_token") != c.RefreshToken:
			t.Fatalf("%s: refresh request does not redeem the credential's refresh token", where())
		case form.Has("code_verifier") || form.Has("code"):
			t.Fatalf("%s: refresh request carries a code or verifier", where())
		case form.Has("resource") && form.Get("resource") != c.Resource:
			t.Fatalf("%s: 2: refresh resource %q, credential issued for %q", where(), form.Get("resource"), c.Resource)
		}
	case effects.PurposeGrant:
		switch {
		case form.Get("grant_type") != string(machine.GrantClientCredentials):
			t.Fatalf("%s: grant request grant_type %q", where(), form.Get("grant_type"))
		case form.Has("code") || form.Has("code_verifier") || form.Has("refresh_token"):
			t.Fatalf("%s: client credentials grant carries a code, verifier or refresh token", where())
		case form.Get("resource") != next.Attempt.ResourceParam ||
			(!form.Has("resource") && next.Config.ProtocolVersion != machine.Version20250326):
			t.Fatalf("%s: 2: grant resource %q, attempt says %q", where(), form["resource"], next.Attempt.ResourceParam)
		case form.Has("resource") && originOf(form.Get("resource")) != mcpOrigin:
			t.Fatalf("%s: 2: grant resource %q is not the MCP server", where(), form.Get("resource"))
		}
	}
}

// checkProof: a DPoP proof (RFC 9449 §4.2) names the request it goes with
// (or asks the driver to, with BindRequest), carries the hash of the
// access token (never the token), and nothing secret.
func (h *harness) checkProof(where func() string, p effects.JWT, target, accessToken string) {
	t := h.t
	var c struct {
		Jti, Htm, Htu, Ath, Nonce string
	}
	if err := json.Unmarshal(p.Claims, &c); err != nil {
		t.Fatalf("%s: DPoP proof claims are not json: %v", where(), err)
	}
	wantAth := ""
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		wantAth = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	switch {
	case p.Type != "dpop+jwt" || !p.EmbedJWK || c.Jti == "":
		t.Fatalf("%s: malformed DPoP proof %+v", where(), p)
	case !p.BindRequest && c.Htm == "":
		t.Fatalf("%s: DPoP proof without htm, and the driver is not asked to bind it", where())
	case (!p.BindRequest || c.Htu != "") && (originOf(c.Htu) != originOf(target) || strings.ContainsAny(c.Htu, "?#")):
		t.Fatalf("%s: DPoP proof htu %q for a request to %q", where(), c.Htu, target)
	case c.Ath != wantAth:
		t.Fatalf("%s: DPoP proof ath %q, want the hash of the access token", where(), c.Ath)
	}
	h.checkNoneOf(where, "a DPoP proof", string(p.Claims), h.secrets.access, h.secrets.bound, h.secrets.flow, h.secrets.state)
}

// checkOpenURL: 1 and 2 for the authorization URL.
func (h *harness) checkOpenURL(where func() string, next machine.Snapshot, e effects.OpenURL) {
	t := h.t
	m := next.Discovery.Authorization
	if !secureURL(e.URL) || m.AuthorizationEndpoint == "" || !strings.HasPrefix(e.URL, m.AuthorizationEndpoint) {
		t.Fatalf("%s: 1: authorization URL %q is not at the validated endpoint %q", where(), e.URL, m.AuthorizationEndpoint)
	}
	h.checkNoneOf(where, "the authorization URL", e.URL, h.secrets.access, h.secrets.bound, h.secrets.flow)
	u, err := url.Parse(e.URL)
	if err != nil {
		t.Fatalf("%s: authorization URL does not parse: %v", where(), err)
	}
	q := u.Query()
	for k, vs := range q {
		if len(vs) != 1 {
			t.Fatalf("%s: authorization URL repeats %s", where(), k)
		}
	}
	o := &authRequest{url: e.URL, challenge: q.Get("code_challenge"), method: q.Get("code_challenge_method"),
		state: q.Get("state"), resource: q.Get("resource"), hasResource: q.Has("resource"),
		redirect: q.Get("redirect_uri"), clientID: q.Get("client_id")}
	switch {
	case o.method != "S256":
		t.Fatalf("%s: 2: code_challenge_method %q, want S256", where(), o.method)
	case len(o.challenge) != 43:
		t.Fatalf("%s: 2: code_challenge %q is not an S256 challenge", where(), o.challenge)
	case s256(next.Attempt.Verifier) != o.challenge:
		t.Fatalf("%s: 2: code_challenge is not the S256 of the attempt's verifier", where())
	case len(o.state) < 16 || o.state != next.Attempt.StateParam:
		t.Fatalf("%s: state %q too short or not the attempt's", where(), o.state)
	case q.Get("response_type") != "code" || o.redirect != redirectURI || o.clientID == "" || o.clientID != next.Client.ClientID:
		t.Fatalf("%s: authorization URL %q: response_type, redirect_uri or client_id wrong", where(), e.URL)
	case o.hasResource && originOf(o.resource) != mcpOrigin:
		t.Fatalf("%s: 2: resource %q is not the MCP server", where(), o.resource)
	case !o.hasResource && next.Config.ProtocolVersion != machine.Version20250326:
		t.Fatalf("%s: 2: authorization URL without resource", where())
	}
	if n := next.Attempt.ResourceParam; n != o.resource {
		t.Fatalf("%s: 2: authorization URL resource %q, attempt says %q", where(), o.resource, n)
	}
	h.lastOpen = o
}

// checkNoneOf fails if s contains any of the secrets.
func (h *harness) checkNoneOf(where func() string, what, s string, sets ...any) {
	for _, set := range sets {
		switch set := set.(type) {
		case map[string]bool:
			for k := range set {
				if strings.Contains(s, k) {
					h.t.Fatalf("%s: 1: secret %q found in %s: %q", where(), k, what, s)
				}
			}
		case map[string]string:
			for k := range set {
				if strings.Contains(s, k) {
					h.t.Fatalf("%s: 1: secret %q found in %s: %q", where(), k, what, s)
				}
			}
		}
	}
}

// checkNoSecrets: design §4.10, no secret in an error.
func (h *harness) checkNoSecrets(what, s string) {
	h.checkNoneOf(func() string { return fmt.Sprintf("step %d", len(h.log)) }, what, s,
		h.secrets.access, h.secrets.bound, h.secrets.flow, h.secrets.state)
}

// --- replay -----------------------------------------------------------------

// replay runs the recorded inputs again from a fresh New, with entropy from
// the same seed and the same times: 7, determinism of the whole run.
func (h *harness) replay() {
	t := h.t
	s, effs, err := machine.New(h.cfg)
	if err != nil || !sameSnapshot(h.initial, s, exact) || !same(h.initEffs, effs, exact) {
		t.Fatalf("7: New is not deterministic: %v\n%s", err, cmp.Diff(h.initial, s, exact))
	}
	entropy := rand.NewChaCha8(h.seed)
	for i, r := range h.log {
		var seed [32]byte
		_, _ = entropy.Read(seed[:])
		next, effs, err := machine.Step(s, r.in, machine.Env{Now: r.now, Rand: rand.NewChaCha8(seed)})
		if !same(r.err, err, exact) {
			t.Fatalf("7: replay step %d (%s): error %v, first run %v", i+1, describe(r.in), err, r.err)
		}
		if !sameSnapshot(r.next, next, exact) {
			t.Fatalf("7: replay step %d (%s): snapshot differs (-first +replay):\n%s", i+1, describe(r.in), cmp.Diff(r.next, next, exact))
		}
		if !same(r.effs, effs, exact) {
			t.Fatalf("7: replay step %d (%s): effects differ (-first +replay):\n%s", i+1, describe(r.in), cmp.Diff(r.effs, effs, exact))
		}
		if err == nil {
			s = next
		}
	}
}

// --- helpers -------------------------------------------------------------------

// originOf is scheme://host[:port], lower-cased, default port dropped,
// computed here independently of the machine's own SameOrigin.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host
}

// secureURL: https, or http to a loopback host (design §4.7).
func secureURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return u.Host != ""
	case "http":
		host := u.Hostname()
		return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
	}
	return false
}

func describe(in machine.Input) string {
	switch in := in.(type) {
	case machine.FetchResponse:
		return fmt.Sprintf("FetchResponse{Seq:%d Status:%d Body:%q}", in.Seq, in.Status, in.Body)
	case machine.CallbackReceived:
		return fmt.Sprintf("CallbackReceived{%q}", in.Query)
	case machine.StoredLoaded:
		return fmt.Sprintf("StoredLoaded{Tokens:%v Version:%d}", in.Tokens != nil, in.TokensVersion)
	}
	return fmt.Sprintf("%T%+v", in, in)
}

// deepCopy copies a value through pointers, slices and maps; structs with
// unexported fields (machine.Requests, time.Time) are copied as values,
// which is enough: Requests is persistent, and checked through Map.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Elem().Type())
		p.Elem().Set(deepCopy(v.Elem()))
		return p
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			c.Index(i).Set(deepCopy(v.Index(i)))
		}
		return c
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		iter := v.MapRange()
		for iter.Next() {
			c.SetMapIndex(deepCopy(iter.Key()), deepCopy(iter.Value()))
		}
		return c
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		c.Set(v)
		for i := range v.NumField() {
			if c.Field(i).CanSet() {
				c.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return c
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type()).Elem()
		c.Set(deepCopy(v.Elem()))
		return c
	}
	return v
}

// coverage counts what the runs of one test reached, printed with -v.
type coverage struct {
	runs, steps, peak, requests int
	triggers                    map[string]int
	variants                    map[string]int
}

func (c *coverage) trigger(tr string) {
	if c != nil {
		c.triggers[tr]++
	}
}

func (c *coverage) add(h *harness) {
	if c == nil {
		return
	}
	c.runs++
	c.steps += len(h.log)
	c.requests += h.started
	c.peak = max(c.peak, h.peak)
	for k, v := range h.stats {
		c.variants[k] += v
	}
}

func (c *coverage) report(t *testing.T) {
	if c.runs == 0 {
		return
	}
	t.Logf("%d runs, %d steps (%d per run), %d requests, peak %d in flight", c.runs, c.steps, c.steps/c.runs, c.requests, c.peak)
	var missing []string
	for _, tr := range states.Triggers {
		if c.triggers[string(tr)] == 0 {
			missing = append(missing, string(tr))
		}
	}
	t.Logf("triggers: %v; never reached: %v", c.triggers, missing)
	keys := slices.Collect(maps.Keys(c.variants))
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, c.variants[k])
	}
	t.Logf("inputs and answers: %s", b.String())
}
