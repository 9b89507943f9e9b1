package driver_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/internal/manualclock"
	"github.com/mcpauth/mcpauth/machine"
)

// A scripted world for the session: an MCP server, its PRM and an
// authorization server, answered from maps; a user agent that approves at
// once; a clock that moves only when told.

const (
	sessServer   = "https://mcp.example/mcp"
	sessPRM      = "https://mcp.example/.well-known/oauth-protected-resource/mcp"
	sessIssuer   = "https://as.example"
	sessToken    = "https://as.example/token"
	sessRedirect = "http://127.0.0.1:9/cb"
	sessWait     = 10 * time.Second // a guard against hangs, never for synchronization
)

var sessEpoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func sessConfig() machine.Config {
	return machine.Config{
		Server:      sessServer,
		RedirectURI: sessRedirect,
		Clients:     []effects.Client{{ClientID: "app"}},
	}
}

func sessJSON(status int, v any) machine.FetchResponse {
	b, _ := json.Marshal(v)
	return machine.FetchResponse{Status: status, Header: map[string][]string{"Content-Type": {"application/json"}}, Body: b}
}

// sessWorld is the scripted servers. Valid access tokens are accepted by
// the protected resource; the token endpoint mints AT-n / RT-n.
type sessWorld struct {
	mu       sync.Mutex
	valid    map[string]bool
	minted   int
	grants   map[string]int
	fetches  []effects.Fetch
	sent     []string           // Authorization headers of protected sends, in order
	onToken  func(grant string) // runs before the token endpoint answers
	tokenTTL int
}

func newSessWorld() *sessWorld {
	return &sessWorld{valid: map[string]bool{}, grants: map[string]int{}, tokenTTL: 3600}
}

func (w *sessWorld) Fetch(ctx context.Context, f effects.Fetch) (machine.FetchResponse, error) {
	w.mu.Lock()
	w.fetches = append(w.fetches, f)
	w.mu.Unlock()
	switch f.URL {
	case sessPRM:
		return sessJSON(200, map[string]any{"resource": sessServer, "authorization_servers": []string{sessIssuer}}), nil
	case sessIssuer + "/.well-known/oauth-authorization-server", sessIssuer + "/.well-known/openid-configuration":
		return sessJSON(200, map[string]any{
			"issuer":                           sessIssuer,
			"authorization_endpoint":           sessIssuer + "/authorize",
			"token_endpoint":                   sessToken,
			"code_challenge_methods_supported": []string{"S256"},
			"response_types_supported":         []string{"code"},
		}), nil
	case sessToken:
		form, err := url.ParseQuery(string(f.Body))
		if err != nil {
			return sessJSON(400, map[string]any{"error": "invalid_request"}), nil
		}
		grant := form.Get("grant_type")
		w.mu.Lock()
		hook := w.onToken
		w.mu.Unlock()
		if hook != nil {
			hook(grant)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.grants[grant]++
		switch {
		case grant == "authorization_code" && form.Get("code") == "CODE-1":
		case grant == "refresh_token" && strings.HasPrefix(form.Get("refresh_token"), "RT-"):
		default:
			return sessJSON(400, map[string]any{"error": "invalid_grant"}), nil
		}
		w.minted++
		n := itoaSess(w.minted)
		w.valid["AT-"+n] = true
		return sessJSON(200, map[string]any{
			"access_token": "AT-" + n, "token_type": "Bearer", "expires_in": w.tokenTTL, "refresh_token": "RT-" + n,
		}), nil
	}
	return machine.FetchResponse{Status: 404}, nil
}

func itoaSess(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func (w *sessWorld) accept(tokens ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range tokens {
		w.valid[t] = true
	}
}

func (w *sessWorld) revokeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.valid = map[string]bool{}
}

func (w *sessWorld) grantCount(g string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.grants[g]
}

func (w *sessWorld) sends() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.sent...)
}

// send is the protected resource: 200 for a valid bearer token, else 401
// with the PRM URL in the challenge.
func (w *sessWorld) send(_ context.Context, header map[string][]string) (driver.Answer, error) {
	auth := ""
	if v := header["Authorization"]; len(v) == 1 {
		auth = v[0]
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sent = append(w.sent, auth)
	if tok, ok := strings.CutPrefix(auth, "Bearer "); ok && w.valid[tok] {
		return driver.Answer{Status: 200}, nil
	}
	return driver.Answer{Status: 401, Challenges: []string{`Bearer resource_metadata="` + sessPRM + `"`}}, nil
}

// sessAgent approves at once, or when release is closed.
type sessAgent struct {
	entered chan string // receives the authorization URL, if not nil
	release chan struct{}
}

func (a sessAgent) Authorize(ctx context.Context, authURL, redirectURI string) (string, error) {
	if a.entered != nil {
		a.entered <- authURL
	}
	if a.release != nil {
		select {
		case <-a.release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	u, err := url.Parse(authURL)
	if err != nil {
		return "", err
	}
	if redirectURI != sessRedirect {
		return "", errors.New("test: wrong redirect URI " + redirectURI)
	}
	return "code=CODE-1&state=" + url.QueryEscape(u.Query().Get("state")), nil
}

// sessTracer records inputs and effects and signals the ones tests wait for.
type sessTracer struct {
	mu      sync.Mutex
	inputs  []machine.Input
	effects []effects.Effect
	refused []string
	saved   chan effects.SaveTokens
	started chan effects.RequestID
	changed chan machine.CredentialChanged
}

func newSessTracer() *sessTracer {
	return &sessTracer{saved: make(chan effects.SaveTokens, 256), started: make(chan effects.RequestID, 256), changed: make(chan machine.CredentialChanged, 256)}
}

func (r *sessTracer) Input(in machine.Input, _ time.Time) {
	r.mu.Lock()
	r.inputs = append(r.inputs, in)
	r.mu.Unlock()
	switch in := in.(type) {
	case machine.RequestStarted:
		r.started <- in.Request
	case machine.CredentialChanged:
		r.changed <- in
	}
}

func (r *sessTracer) Effect(e effects.Effect) {
	r.mu.Lock()
	r.effects = append(r.effects, e)
	r.mu.Unlock()
	if s, ok := e.(effects.SaveTokens); ok {
		r.saved <- s
	}
}

func (r *sessTracer) Refused(in machine.Input, err error) {
	r.mu.Lock()
	r.refused = append(r.refused, err.Error())
	r.mu.Unlock()
}

func (r *sessTracer) StoreError(err error) {
	r.mu.Lock()
	r.refused = append(r.refused, "store: "+err.Error())
	r.mu.Unlock()
}

func (r *sessTracer) countInputs(match func(machine.Input) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, in := range r.inputs {
		if match(in) {
			n++
		}
	}
	return n
}

func (r *sessTracer) waitSaved(t *testing.T) effects.SaveTokens {
	t.Helper()
	select {
	case s := <-r.saved:
		return s
	case <-time.After(sessWait):
		t.Fatal("no SaveTokens effect")
		return effects.SaveTokens{}
	}
}

func (r *sessTracer) waitStarted(t *testing.T) effects.RequestID {
	t.Helper()
	select {
	case id := <-r.started:
		return id
	case <-time.After(sessWait):
		t.Fatal("no request started")
		return 0
	}
}

// sessFixture is a started session over the scripted world.
type sessFixture struct {
	world  *sessWorld
	clock  *manualclock.Clock
	store  *driver.MemoryStore
	tracer *sessTracer
	s      *driver.Session
}

func newSessFixture(t *testing.T, agent driver.UserAgent, prepare func(*sessFixture)) *sessFixture {
	t.Helper()
	f := &sessFixture{world: newSessWorld(), clock: manualclock.New(sessEpoch), store: driver.NewMemoryStore(), tracer: newSessTracer()}
	if prepare != nil {
		prepare(f)
	}
	if agent == nil {
		agent = sessAgent{}
	}
	s, err := driver.NewSession(sessConfig(), driver.Deps{
		Requester: f.world, UserAgent: agent, Store: f.store, Clock: f.clock, Tracer: f.tracer,
	})
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(s.Close)
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	f.s = s
	return f
}

func (f *sessFixture) do(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sessWait)
	defer cancel()
	if err := f.s.Do(ctx, http.MethodPost, sessServer, f.world.send); err != nil {
		t.Fatalf("Do: %v", err)
	}
}

func lastSend(t *testing.T, w *sessWorld) string {
	t.Helper()
	s := w.sends()
	if len(s) == 0 {
		t.Fatal("nothing sent")
	}
	return s[len(s)-1]
}

func TestSessionAuthorizes(t *testing.T) {
	f := newSessFixture(t, nil, nil)
	f.do(t)
	if got := f.world.sends(); strings.Join(got, ",") != ",Bearer AT-1" {
		t.Errorf("sends %q, want one without credential, then Bearer AT-1", got)
	}
	if f.world.grantCount("authorization_code") != 1 {
		t.Errorf("code grants = %d", f.world.grantCount("authorization_code"))
	}
	in, err := driver.LoadStored(context.Background(), f.store, sessServer)
	if err != nil || in.Tokens == nil || in.Tokens.AccessToken != "AT-1" || in.TokensVersion != 1 || in.Discovery == nil {
		t.Errorf("stored %+v, %v", in, err)
	}
	// Later requests go straight through.
	f.do(t)
	if got := lastSend(t, f.world); got != "Bearer AT-1" || len(f.world.sends()) != 3 {
		t.Errorf("sends %q", f.world.sends())
	}
}

// TestSessionWakeAtRefresh: the WakeAt effect arms a timer; when it fires
// the Tick refreshes the credential with no request in flight.
func TestSessionWakeAtRefresh(t *testing.T) {
	f := newSessFixture(t, nil, nil)
	f.do(t)
	first := f.tracer.waitSaved(t)
	wantAt := first.Tokens.ExpiresAt.Add(-time.Minute)
	if armed := f.clock.Armed(); len(armed) != 1 || !armed[0].Equal(wantAt) {
		t.Fatalf("armed %v, want one timer at %v (expiry minus the default margin)", armed, wantAt)
	}
	if n := f.clock.Advance(58 * time.Minute); n != 0 {
		t.Fatalf("%d timers fired early", n)
	}
	if n := f.clock.Advance(time.Minute); n != 1 {
		t.Fatalf("%d timers fired at the margin, want 1", n)
	}
	saved := f.tracer.waitSaved(t)
	// The step that saved also arms the next timer, under the session's
	// lock: taking a snapshot waits for that step to end.
	_ = f.s.Snapshot()
	if saved.Tokens.AccessToken != "AT-2" || saved.IfVersion != 1 {
		t.Errorf("refresh saved %v with IfVersion %d, want AT-2 over version 1", saved.Tokens, saved.IfVersion)
	}
	if n := f.world.grantCount("refresh_token"); n != 1 {
		t.Errorf("refresh grants = %d, want 1", n)
	}
	if n := f.tracer.countInputs(func(in machine.Input) bool { _, ok := in.(machine.Tick); return ok }); n != 1 {
		t.Errorf("%d Tick inputs, want 1", n)
	}
	// The next timer is armed for the new credential.
	if armed := f.clock.Armed(); len(armed) != 1 || !armed[0].Equal(saved.Tokens.ExpiresAt.Add(-time.Minute)) {
		t.Errorf("armed %v after refresh", armed)
	}
	before := len(f.world.sends())
	f.do(t)
	if got := f.world.sends()[before:]; len(got) != 1 || got[0] != "Bearer AT-2" {
		t.Errorf("sends after refresh %q, want one with Bearer AT-2", got)
	}
	// The refresh went to the token endpoint with the refresh token.
	var refresh *effects.Fetch
	for _, fe := range f.world.fetches {
		if strings.Contains(string(fe.Body), "grant_type=refresh_token") {
			refresh = &fe
		}
	}
	if refresh == nil || refresh.URL != sessToken || !strings.Contains(string(refresh.Body), "refresh_token=RT-1") {
		t.Errorf("refresh request %v", refresh)
	}
}

// TestSessionCloseStopsTimers: Close disarms the refresh timer, and a timer
// that fires anyway (a race with Close) feeds nothing.
func TestSessionCloseStopsTimers(t *testing.T) {
	f := newSessFixture(t, nil, nil)
	f.do(t)
	if len(f.clock.Armed()) != 1 {
		t.Fatalf("armed %v, want one timer", f.clock.Armed())
	}
	f.s.Close()
	if armed := f.clock.Armed(); len(armed) != 0 {
		t.Errorf("armed after Close: %v", armed)
	}
	if n := f.clock.Advance(2 * time.Hour); n != 0 {
		t.Errorf("%d timers fired after Close", n)
	}
	for _, fn := range f.clock.Funcs() {
		fn() // as if it had fired concurrently with Close
	}
	if n := f.tracer.countInputs(func(in machine.Input) bool { _, ok := in.(machine.Tick); return ok }); n != 0 {
		t.Errorf("%d Tick inputs after Close", n)
	}
	if n := f.world.grantCount("refresh_token"); n != 0 {
		t.Errorf("refreshed after Close")
	}
}

// TestSessionCancelParked: a parked request whose context ends returns at
// once and leaves the machine; the attempt goes on for the others, and
// answering the gone request blocks nobody.
func TestSessionCancelParked(t *testing.T) {
	entered := make(chan string, 1)
	release := make(chan struct{})
	f := newSessFixture(t, sessAgent{entered: entered, release: release}, nil)

	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- f.s.Do(ctx1, http.MethodPost, sessServer, f.world.send) }()
	f.tracer.waitStarted(t)
	<-entered // request 1 is parked behind the authorization

	ctx2, cancel2 := context.WithTimeout(context.Background(), sessWait)
	defer cancel2()
	done2 := make(chan error, 1)
	go func() { done2 <- f.s.Do(ctx2, http.MethodPost, sessServer, f.world.send) }()
	f.tracer.waitStarted(t) // request 2 is parked too (the step ran under the lock)

	ctx3, cancel3 := context.WithCancel(context.Background())
	done3 := make(chan error, 1)
	go func() { done3 <- f.s.Do(ctx3, http.MethodPost, sessServer, f.world.send) }()
	f.tracer.waitStarted(t)

	if snap := f.s.Snapshot(); snap.Requests.Parked() != 3 || snap.Requests.Len() != 3 {
		t.Fatalf("snapshot %v, want three parked requests", snap)
	}
	cancel1()
	cancel3()
	for i, done := range []chan error{done1, done3} {
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled request %d: %v, want context.Canceled", i+1, err)
			}
		case <-time.After(sessWait):
			t.Fatalf("cancelled request %d did not return", i+1)
		}
	}
	if snap := f.s.Snapshot(); snap.Requests.Parked() != 1 || snap.Requests.Len() != 1 {
		t.Errorf("snapshot %v after cancel, want one parked request", snap)
	}
	close(release)
	select {
	case err := <-done2:
		if err != nil {
			t.Errorf("remaining request: %v", err)
		}
	case <-time.After(sessWait):
		t.Fatal("remaining request did not return")
	}
	if snap := f.s.Snapshot(); snap.Requests.Parked() != 0 || snap.Requests.Len() != 0 {
		t.Errorf("snapshot %v at the end", snap)
	}
	// Only request 2 was re-sent with the credential.
	if got := f.world.sends(); strings.Count(strings.Join(got, ","), "Bearer AT-1") != 1 {
		t.Errorf("sends %q, want exactly one with the credential", got)
	}
	f.do(t)
}

// TestSessionCancelAllParked: when every waiting request is gone, the
// credential still arrives and is used by the next one.
func TestSessionCancelAllParked(t *testing.T) {
	entered := make(chan string, 1)
	release := make(chan struct{})
	f := newSessFixture(t, sessAgent{entered: entered, release: release}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.s.Do(ctx, http.MethodPost, sessServer, f.world.send) }()
	<-entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Do: %v", err)
	}
	close(release)
	saved := f.tracer.waitSaved(t)
	if saved.Tokens.AccessToken != "AT-1" {
		t.Fatalf("saved %v", saved.Tokens)
	}
	before := len(f.world.sends())
	f.do(t)
	if got := f.world.sends()[before:]; len(got) != 1 || got[0] != "Bearer AT-1" {
		t.Errorf("sends %q, want one with Bearer AT-1", got)
	}
}

// seedTokens writes a credential as another process would, n times (the
// record ends at version n).
func seedTokens(t *testing.T, s driver.Store, access string, n int) {
	t.Helper()
	tok := effects.Tokens{
		Resource: sessServer, Issuer: sessIssuer, ClientID: "app", AccessToken: access,
		TokenType: "Bearer", RefreshToken: "RT-OTHER", ExpiresAt: sessEpoch.Add(time.Hour),
	}
	b, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	for v := range n {
		if _, err := s.Put(context.Background(), "tokens:"+sessServer, b, uint64(v)); err != nil {
			t.Errorf("seed: %v", err)
		}
	}
}

// TestSessionSaveConflictAdoptsStored: when another writer stored a newer
// credential while our token request was in flight, the compare-and-swap
// fails and the session adopts the stored credential instead of its own.
func TestSessionSaveConflictAdoptsStored(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version int
	}{
		{name: "stored at version 2", version: 2},
		{name: "stored at version 1", version: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSessFixture(t, nil, func(f *sessFixture) {
				f.world.accept("AT-OTHER")
				f.world.onToken = func(grant string) {
					if grant == "authorization_code" {
						seedTokens(t, f.store, "AT-OTHER", tc.version)
					}
				}
			})
			f.do(t)
			// The requests released by the step that lost the swap are
			// TestSessionSaveConflictFirstRequest's concern. Wait for the
			// adoption (the snapshot waits for its step to end); the next
			// request must carry the stored credential.
			select {
			case <-f.tracer.changed:
			case <-time.After(sessWait):
				t.Fatal("no CredentialChanged input")
			}
			_ = f.s.Snapshot()
			f.do(t)
			if got := lastSend(t, f.world); got != "Bearer AT-OTHER" {
				t.Errorf("request sent with %q, want the stored credential", got)
			}
			snap := f.s.Snapshot()
			if snap.Credential.AccessToken != "AT-OTHER" || snap.CredentialVersion != uint64(tc.version) {
				t.Errorf("session holds %v at version %d, want AT-OTHER at %d", snap.Credential, snap.CredentialVersion, tc.version)
			}
			if n := f.tracer.countInputs(func(in machine.Input) bool { _, ok := in.(machine.CredentialChanged); return ok }); n != 1 {
				t.Errorf("%d CredentialChanged inputs, want 1", n)
			}
			r, err := f.store.Get(context.Background(), "tokens:"+sessServer)
			if err != nil || r.Version != uint64(tc.version) || !strings.Contains(string(r.Value), "AT-OTHER") {
				t.Errorf("store changed: %v %v", r, err)
			}
			// Later saves build on the adopted version.
			f.world.revokeAll()
			f.world.accept("AT-2")
			f.do(t)
			r, err = f.store.Get(context.Background(), "tokens:"+sessServer)
			if err != nil || r.Version != uint64(tc.version)+1 || !strings.Contains(string(r.Value), `"AT-2"`) {
				t.Errorf("after refresh the store holds %v %v, want AT-2 at version %d", r, err, tc.version+1)
			}
		})
	}
}

// TestSessionSaveConflictFirstRequest: the requests parked behind the
// attempt whose save lost the compare-and-swap are sent with the stored
// credential, never with the unsaved one.
func TestSessionSaveConflictFirstRequest(t *testing.T) {
	f := newSessFixture(t, nil, func(f *sessFixture) {
		f.world.accept("AT-OTHER")
		f.world.onToken = func(grant string) {
			if grant == "authorization_code" {
				seedTokens(t, f.store, "AT-OTHER", 2)
			}
		}
	})
	f.do(t)
	for _, h := range f.world.sends() {
		if h == "Bearer AT-1" {
			t.Errorf("sends %q: the unsaved credential AT-1 was used", f.world.sends())
		}
	}
}

// TestSessionAdoptsStoredBeforeRefresh: with a shared store, a session that
// needs a new credential first looks for one another process stored, and
// uses it without any token request.
func TestSessionAdoptsStoredBeforeRefresh(t *testing.T) {
	f := newSessFixture(t, nil, nil)
	f.do(t)
	seedOver := func() {
		// Another process refreshed: version 2 over our version 1.
		tok := effects.Tokens{Resource: sessServer, Issuer: sessIssuer, ClientID: "app", AccessToken: "AT-OTHER", TokenType: "Bearer", RefreshToken: "RT-OTHER", ExpiresAt: sessEpoch.Add(2 * time.Hour)}
		b, _ := json.Marshal(tok)
		if _, err := f.store.Put(context.Background(), "tokens:"+sessServer, b, 1); err != nil {
			t.Fatal(err)
		}
	}
	seedOver()
	f.world.revokeAll()
	f.world.accept("AT-OTHER")
	f.do(t)
	if got := lastSend(t, f.world); got != "Bearer AT-OTHER" {
		t.Errorf("request sent with %q, want the credential stored by the other process", got)
	}
	if n := f.world.grantCount("refresh_token"); n != 0 {
		t.Errorf("%d refresh grants: the stored credential should have been adopted", n)
	}
}

// TestSessionNeedsStart: NewSession refuses missing dependencies and bad
// configuration.
func TestSessionNew(t *testing.T) {
	if _, err := driver.NewSession(sessConfig(), driver.Deps{Store: driver.NewMemoryStore()}); err == nil {
		t.Error("NewSession without a Requester succeeded")
	}
	if _, err := driver.NewSession(sessConfig(), driver.Deps{Requester: newSessWorld()}); err == nil {
		t.Error("NewSession without a Store succeeded")
	}
	var ce *machine.ConfigError
	if _, err := driver.NewSession(machine.Config{Server: "http://mcp.example/mcp"}, driver.Deps{Requester: newSessWorld(), Store: driver.NewMemoryStore()}); !errors.As(err, &ce) {
		t.Errorf("NewSession with an insecure server: %v, want *machine.ConfigError", err)
	}
}

// TestSessionNoUserAgent: without a user agent the authorization fails
// with an error, never a hang.
func TestSessionNoUserAgent(t *testing.T) {
	w := newSessWorld()
	s, err := driver.NewSession(sessConfig(), driver.Deps{Requester: w, Store: driver.NewMemoryStore(), Clock: manualclock.New(sessEpoch)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessWait)
	defer cancel()
	err = s.Do(ctx, http.MethodPost, sessServer, w.send)
	var cbe *machine.CallbackError
	if !errors.As(err, &cbe) {
		t.Errorf("Do: %v, want *machine.CallbackError", err)
	}
}

// TestSessionSystemClockRefresh runs a session on the real clock inside a
// synctest bubble: the refresh-ahead timer armed by WakeAt fires at expiry
// minus the margin, each time, and never after Close.
func TestSessionSystemClockRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newSessWorld()
		s, err := driver.NewSession(sessConfig(), driver.Deps{Requester: w, UserAgent: sessAgent{}, Store: driver.NewMemoryStore()})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Do(context.Background(), http.MethodPost, sessServer, w.send); err != nil {
			t.Fatalf("Do: %v", err)
		}
		synctest.Wait()
		time.Sleep(59*time.Minute - time.Second)
		synctest.Wait()
		if n := w.grantCount("refresh_token"); n != 0 {
			t.Fatalf("refreshed %d times before the margin", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := w.grantCount("refresh_token"); n != 1 {
			t.Fatalf("%d refreshes at the margin, want 1", n)
		}
		if got := s.Snapshot().Credential.AccessToken; got != "AT-2" {
			t.Errorf("credential %q after the timer, want AT-2", got)
		}
		time.Sleep(59 * time.Minute)
		synctest.Wait()
		if n := w.grantCount("refresh_token"); n != 2 {
			t.Errorf("%d refreshes after the second timer, want 2", n)
		}
		s.Close()
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		if n := w.grantCount("refresh_token"); n != 2 {
			t.Errorf("%d refreshes after Close, want 2", n)
		}
	})
}
