package driver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// traceSecrets collects every secret value a flow exchanged, from both
// ends of the requester and the user agent.
type traceSecrets struct {
	mu sync.Mutex
	m  map[string]string // value -> what it is
}

func (s *traceSecrets) add(kind string, vs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vs {
		if _, seen := s.m[v]; !seen && len(v) >= 8 {
			s.m[v] = kind
		}
	}
}

func (s *traceSecrets) addForm(raw string) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return
	}
	for _, k := range []string{"code", "state", "code_verifier", "client_secret", "refresh_token", "access_token", "code_challenge"} {
		s.add(k, q[k]...)
	}
}

func (s *traceSecrets) all() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

type traceSpyRequester struct {
	next driver.Requester
	s    *traceSecrets
}

func (r traceSpyRequester) Fetch(ctx context.Context, f effects.Fetch) (machine.FetchResponse, error) {
	r.s.addForm(string(f.Body))
	resp, err := r.next.Fetch(ctx, f)
	if err == nil {
		var m map[string]any
		if json.Unmarshal(resp.Body, &m) == nil {
			for _, k := range []string{"access_token", "refresh_token", "client_secret"} {
				if v, ok := m[k].(string); ok {
					r.s.add(k, v)
				}
			}
		}
	}
	return resp, err
}

type traceSpyAgent struct {
	next driver.UserAgent
	s    *traceSecrets
}

func (a traceSpyAgent) Authorize(ctx context.Context, authURL, redirectURI string) (string, error) {
	if u, err := url.Parse(authURL); err == nil {
		a.s.addForm(u.RawQuery)
	}
	q, err := a.next.Authorize(ctx, authURL, redirectURI)
	a.s.addForm(q)
	return q, err
}

// traceSend is a SendFunc posting a JSON-RPC request to the world.
func traceSend(c *http.Client, u string) driver.SendFunc {
	return func(ctx context.Context, header map[string][]string) (driver.Answer, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`))
		if err != nil {
			return driver.Answer{}, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := c.Do(req)
		if err != nil {
			return driver.Answer{}, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return driver.Answer{Status: resp.StatusCode, Challenges: resp.Header.Values("WWW-Authenticate")}, nil
	}
}

// traceFlow runs a session over a real world, recording its trace: a
// registration with a client secret, an authorization, a refresh after
// expiry, and a failed refresh followed by a new authorization. It returns
// the config, the trace and the secrets exchanged.
func traceFlow(t *testing.T, store driver.Store, w *testworld.World) (machine.Config, []byte, map[string]string) {
	t.Helper()
	secrets := &traceSecrets{m: map[string]string{}}
	cfg := machine.Config{Server: w.MCPURL(), RedirectURI: "http://127.0.0.1:1/callback", TokenEndpointAuthMethod: "client_secret_post"}
	var buf bytes.Buffer
	rec := driver.NewTraceRecorder(&buf)
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	s, err := driver.NewSession(cfg, driver.Deps{
		Requester: traceSpyRequester{next: &httpdriver.Requester{}, s: secrets},
		UserAgent: traceSpyAgent{next: httpdriver.HeadlessUserAgent{}, s: secrets},
		Store:     store,
		Tracer:    rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	send := traceSend(&http.Client{Transport: base}, w.MCPURL())
	do := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), sessWait)
		defer cancel()
		if err := s.Do(ctx, http.MethodPost, w.MCPURL(), send); err != nil {
			t.Fatalf("Do: %v", err)
		}
	}
	do()
	do()
	w.ExpireAccessTokens()
	do() // refresh
	w.SetFault(testworld.Fault{InvalidGrantOnRefresh: true})
	w.ExpireAccessTokens()
	do() // refused refresh, new authorization
	s.Close()
	if err := rec.Err(); err != nil {
		t.Fatalf("recorder: %v", err)
	}
	in, err := driver.LoadStored(context.Background(), store, w.MCPURL())
	if err != nil {
		t.Fatal(err)
	}
	if in.Tokens != nil {
		secrets.add("stored access token", in.Tokens.AccessToken)
		secrets.add("stored refresh token", in.Tokens.RefreshToken)
	}
	if in.Client != nil {
		secrets.add("stored client secret", in.Client.ClientSecret)
	}
	return cfg, buf.Bytes(), secrets.all()
}

func traceLines(t *testing.T, trace []byte) []driver.TraceLine {
	t.Helper()
	var out []driver.TraceLine
	sc := bufio.NewScanner(bytes.NewReader(trace))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		var l driver.TraceLine
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("trace line %d does not parse: %v\n%s", n, err, sc.Bytes())
		}
		switch l.Kind {
		case "input":
			if l.At == nil || l.Type == "" || len(l.Input) == 0 {
				t.Errorf("trace line %d: input without time, type or value: %s", n, sc.Bytes())
			}
		case "effect", "refused", "store_error":
			if l.Text == "" {
				t.Errorf("trace line %d: %s without text", n, l.Kind)
			}
		default:
			t.Errorf("trace line %d: unknown kind %q", n, l.Kind)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func traceWorld(t *testing.T) *testworld.World {
	t.Helper()
	w, err := testworld.Start(testworld.Options{DCR: true, RotateRefresh: true, IssParameter: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

func TestTraceRecordsWithoutSecrets(t *testing.T) {
	w := traceWorld(t)
	store := driver.NewMemoryStore()
	_, trace, secrets := traceFlow(t, store, w)
	st := w.Stats()
	if st.Registrations != 1 || st.Authorizations != 2 || st.TokenRequests["refresh_token"] != 2 {
		t.Fatalf("the flow did not run as planned: %+v", st)
	}
	kinds := map[string]bool{}
	for _, k := range secrets {
		kinds[k] = true
	}
	for _, k := range []string{"code", "state", "code_verifier", "client_secret", "access_token", "refresh_token"} {
		if !kinds[k] {
			t.Errorf("no %s seen: the spies missed it", k)
		}
	}
	lines := traceLines(t, trace)
	var types = map[string]int{}
	for _, l := range lines {
		types[l.Kind+":"+l.Type]++
	}
	for _, want := range []string{"input:StoredLoaded", "input:RequestStarted", "input:FetchResponse", "input:CallbackReceived", "input:ProtectedResponse"} {
		if types[want] == 0 {
			t.Errorf("no %s in the trace (%v)", want, types)
		}
	}
	// []byte fields (response bodies) are base64 in JSON: search their
	// decoded form as well.
	text := string(trace) + "\n" + traceDecodedBytes(t, lines)
	if !strings.Contains(text, `"token_type":"Bearer"`) {
		t.Errorf("decoded trace has no token response: the search would miss body secrets")
	}
	for v, kind := range secrets {
		if strings.Contains(text, v) {
			t.Errorf("the trace contains a %s", kind)
		}
		// JSON escapes some characters: look for the escaped form too.
		b, _ := json.Marshal(v)
		if esc := strings.Trim(string(b), `"`); esc != v && strings.Contains(text, esc) {
			t.Errorf("the trace contains a %s (JSON-escaped)", kind)
		}
		if q := url.QueryEscape(v); q != v && strings.Contains(text, q) {
			t.Errorf("the trace contains a %s (query-escaped)", kind)
		}
	}
}

func TestTraceReplay(t *testing.T) {
	w := traceWorld(t)
	store := driver.NewMemoryStore()
	cfg, trace, _ := traceFlow(t, store, w)
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	if err := driver.Replay(cfg, bytes.NewReader(trace), rng); err != nil {
		t.Fatalf("Replay of the recorded trace: %v", err)
	}

	// A second session over the warm store: its trace replays as well.
	var buf bytes.Buffer
	s, err := driver.NewSession(cfg, driver.Deps{Requester: &httpdriver.Requester{}, UserAgent: httpdriver.HeadlessUserAgent{}, Store: store, Tracer: driver.NewTraceRecorder(&buf)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sessWait)
	defer cancel()
	if err := s.Do(ctx, http.MethodPost, w.MCPURL(), traceSend(http.DefaultClient, w.MCPURL())); err != nil {
		t.Fatalf("warm Do: %v", err)
	}
	s.Close()
	in, _ := driver.LoadStored(context.Background(), store, w.MCPURL())
	if strings.Contains(buf.String(), in.Tokens.AccessToken) || strings.Contains(buf.String(), in.Tokens.RefreshToken) || strings.Contains(buf.String(), in.Client.ClientSecret) {
		t.Errorf("the warm trace contains the stored secrets")
	}
	if err := driver.Replay(cfg, bytes.NewReader(buf.Bytes()), rng); err != nil {
		t.Errorf("Replay of the warm trace: %v", err)
	}
}

func TestTraceReplayDivergence(t *testing.T) {
	w := traceWorld(t)
	cfg, trace, _ := traceFlow(t, driver.NewMemoryStore(), w)
	raw := strings.Split(strings.TrimSuffix(string(trace), "\n"), "\n")
	lines := traceLines(t, trace)
	// Alter a few different effect lines, one at a time.
	altered := 0
	for i, l := range lines {
		if l.Kind != "effect" || i < 3 || altered >= 4 || i%5 != 0 {
			continue
		}
		altered++
		l.Text += " (altered)"
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		mod := append(append(append([]string(nil), raw[:i]...), string(b)), raw[i+1:]...)
		err = driver.Replay(cfg, strings.NewReader(strings.Join(mod, "\n")+"\n"), rand.NewChaCha8([32]byte{}))
		var de *driver.DivergenceError
		if !errors.As(err, &de) {
			t.Errorf("line %d altered: Replay = %v, want *driver.DivergenceError", i+1, err)
			continue
		}
		if de.Line != i+1 || de.Want != l.Text {
			t.Errorf("line %d altered: divergence %+v, want it at line %d", i+1, de, i+1)
		}
	}
	if altered == 0 {
		t.Fatal("no effect line altered")
	}

	// A dropped effect line and a truncated trace diverge too.
	for i, l := range lines {
		if l.Kind == "effect" && i > 3 {
			mod := append(append([]string(nil), raw[:i]...), raw[i+1:]...)
			var de *driver.DivergenceError
			if err := driver.Replay(cfg, strings.NewReader(strings.Join(mod, "\n")), rand.NewChaCha8([32]byte{})); !errors.As(err, &de) {
				t.Errorf("dropped line %d: Replay = %v, want *driver.DivergenceError", i+1, err)
			}
			break
		}
	}
	var de *driver.DivergenceError
	for i := len(lines) - 1; i > 0; i-- {
		if lines[i].Kind == "input" {
			// Cut just after an input whose effects are then missing.
			if err := driver.Replay(cfg, strings.NewReader(strings.Join(raw[:i+1], "\n")), rand.NewChaCha8([32]byte{})); !errors.As(err, &de) {
				t.Errorf("truncated after line %d: Replay = %v, want *driver.DivergenceError", i+1, err)
			}
			break
		}
	}
	// Replaying under another configuration diverges.
	other := cfg
	other.TokenEndpointAuthMethod = "none"
	if err := driver.Replay(other, bytes.NewReader(trace), rand.NewChaCha8([32]byte{})); !errors.As(err, &de) {
		t.Errorf("Replay under another config = %v, want *driver.DivergenceError", err)
	}
}

// traceDecodedBytes returns every string of the traced inputs that is
// base64 (a []byte in JSON), decoded.
func traceDecodedBytes(t *testing.T, lines []driver.TraceLine) string {
	t.Helper()
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if d, err := base64.StdEncoding.DecodeString(v); err == nil {
				b.Write(d)
				b.WriteByte('\n')
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	for _, l := range lines {
		if l.Kind != "input" {
			continue
		}
		var v any
		if err := json.Unmarshal(l.Input, &v); err != nil {
			t.Fatalf("input %s: %v", l.Type, err)
		}
		walk(v)
	}
	return b.String()
}
