package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// demoStore is the demo's store and the server whose records it holds.
type demoStore struct {
	store  driver.Store
	server string
}

var update = flag.Bool("update", false, "rewrite testdata/demo.golden")

// demoPath is the path the demo must take, in order: the first sign-in
// (discovery, registration, authorization, code exchange), the refresh
// after the forced expiry, and the step-up.
var demoPath = []effects.Transition{
	{From: "loading", Trigger: "nothing_stored", To: "unauthenticated"},
	{From: "unauthenticated", Trigger: "challenged", To: "discovering_resource"},
	{From: "discovering_resource", Trigger: "resource_metadata_found", To: "discovering_issuer"},
	{From: "discovering_issuer", Trigger: "issuer_validated", To: "loading_client"},
	{From: "loading_client", Trigger: "registration_needed", To: "registering"},
	{From: "registering", Trigger: "client_registered", To: "awaiting_callback"},
	{From: "awaiting_callback", Trigger: "callback_received", To: "exchanging_code"},
	{From: "exchanging_code", Trigger: "token_issued", To: "authenticated"},
	{From: "authenticated", Trigger: "credential_expiring", To: "refreshing"},
	{From: "refreshing", Trigger: "token_issued", To: "authenticated"},
	{From: "authenticated", Trigger: "scope_insufficient", To: "awaiting_callback"},
	{From: "awaiting_callback", Trigger: "callback_received", To: "exchanging_code"},
	{From: "exchanging_code", Trigger: "token_issued", To: "authenticated"},
}

// transitionLine matches a transition of the live trace.
var transitionLine = regexp.MustCompile(`state\s+(\S+) —(\S+)→ (\S+)`)

// runDemoCapturing runs `mcpauth demo args...` with a sniffer on the wire
// and returns the result, every secret that crossed the wire, and the
// store the demo used.
func runDemoCapturing(t *testing.T, args ...string) (result, []string, demoStore) {
	t.Helper()
	te := newTestEnv(t)
	sn := &sniffer{}
	te.demoNetwork = func(base http.RoundTripper) http.RoundTripper {
		sn.base = base
		return sn
	}
	var store demoStore
	te.demoDone = func(s driver.Store, server string) { store = demoStore{s, server} }
	r := te.run(t, append([]string{"demo"}, args...)...)
	if r.code != 0 {
		t.Fatalf("demo exited %d:\n%s", r.code, r.transcript)
	}
	if store.store == nil {
		t.Fatal("the demo did not hand over its store")
	}
	return r, sn.list(), store
}

func TestDemoRunsTheWholeFlow(t *testing.T) {
	r, secrets, store := runDemoCapturing(t)

	var got []effects.Transition
	for _, m := range transitionLine.FindAllStringSubmatch(r.stdout, -1) {
		got = append(got, effects.Transition{From: m[1], Trigger: m[2], To: m[3]})
	}
	if diff := cmp.Diff(append([]effects.Transition{}, demoPath...), got); diff != "" {
		t.Errorf("transitions in the trace (-want +got):\n%s\n%s", diff, r.transcript)
	}
	masked := maskDemo(r.stdout)
	for _, want := range []string{
		"POST http://127.0.0.1:PORT/register  → 201", "GET http://127.0.0.1:PORT/authorize?…  → 302",
		"tools/call echo  → 401", "tools/call write  → 403", "tools/call write  → 200",
		"effect  SaveTokens{", "effect  SaveClient{", "effect  OpenURL{",
		"MCP tools listed", "echo   Returns its text argument.", "write  Pretends to write",
		`echo   → "hello"`, `echo   → "hello again"`, `write  → "written"`,
		"1 registration · 2 authorizations · 2 code exchanges · 1 refresh",
	} {
		if !strings.Contains(masked, want) {
			t.Errorf("the demo output lacks %q:\n%s", want, r.transcript)
		}
	}
	if !regexp.MustCompile(`✓ \d+ HTTP requests \(9 MCP, 6 OAuth, 2 browser\) in [\d.]+m?s`).MatchString(r.stdout) {
		t.Errorf("no summary line with the request counts:\n%s", r.stdout)
	}

	// No secret is printed: neither what crossed the wire nor what the
	// store holds at the end.
	secrets = append(secrets, storeSecrets(t, store.store, store.server)...)
	if len(secrets) < 8 {
		t.Fatalf("captured only %d secrets; the sniffer is broken", len(secrets))
	}
	for _, s := range secrets {
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			t.Errorf("the demo printed a secret (%d characters)", len(s))
		}
	}
}

// storeSecrets returns the tokens and client secret in the demo's store.
func storeSecrets(t *testing.T, s driver.Store, server string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	var tokens effects.Tokens
	if ok, err := getRecord(ctx, s, tokensKey(server), &tokens); err != nil || !ok {
		t.Fatalf("no tokens stored for %s: %v", server, err)
	}
	if tokens.AccessToken == "" || tokens.RefreshToken == "" {
		t.Fatalf("the stored credential lacks a token: %v", tokens)
	}
	out = append(out, tokens.AccessToken, tokens.RefreshToken)
	var c effects.Client
	if ok, _ := getRecord(ctx, s, clientKey(tokens.Issuer), &c); ok && c.ClientSecret != "" {
		out = append(out, c.ClientSecret)
	}
	return out
}

func TestDemoMermaidIsALegalPath(t *testing.T) {
	r, _, _ := runDemoCapturing(t, "--mermaid")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) < 2 || lines[0] != "stateDiagram-v2" || strings.TrimSpace(lines[1]) != "[*] --> "+string(states.Initial) {
		t.Fatalf("not a stateDiagram starting at %s:\n%s", states.Initial, r.stdout)
	}
	edge := regexp.MustCompile(`^    (\w+) --> (\w+): (\w+)$`)
	var got []effects.Transition
	seen := map[effects.Transition]bool{}
	for _, l := range lines[2:] {
		m := edge.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q is not a transition", l)
		}
		tr := effects.Transition{From: m[1], Trigger: m[3], To: m[2]}
		to, err := states.Next(states.State(tr.From), states.Trigger(tr.Trigger))
		if err != nil || string(to) != tr.To {
			t.Errorf("%s --> %s: %s is not in the table (Next gives %s, %v)", tr.From, tr.To, tr.Trigger, to, err)
		}
		if seen[tr] {
			t.Errorf("%v appears twice", tr)
		}
		seen[tr] = true
		got = append(got, tr)
	}
	// The path taken, first occurrences only.
	var want []effects.Transition
	wantSeen := map[effects.Transition]bool{}
	for _, tr := range demoPath {
		if !wantSeen[tr] {
			wantSeen[tr] = true
			want = append(want, tr)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mermaid path (-want +got):\n%s", diff)
	}
	if strings.Contains(r.stdout, "effect") || strings.Contains(r.stderr, "effect") {
		t.Errorf("--mermaid without -v printed the trace:\n%s", r.transcript)
	}
}

func TestDemoTraceFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "demo.jsonl")
	r, secrets, _ := runDemoCapturing(t, "--trace", file)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var transitions int
	haystack := append([]byte(nil), b...)
	for i, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var tl driver.TraceLine
		if err := json.Unmarshal(l, &tl); err != nil {
			t.Fatalf("line %d is not a trace line: %v", i+1, err)
		}
		if strings.HasPrefix(tl.Text, "Transition{") {
			transitions++
		}
		// Response bodies are []byte, so base64 in JSON: look inside.
		var in struct{ Body []byte }
		if tl.Kind == "input" && json.Unmarshal(tl.Input, &in) == nil {
			haystack = append(haystack, in.Body...)
		}
	}
	if transitions != len(demoPath) {
		t.Errorf("the trace holds %d transitions, want %d", transitions, len(demoPath))
	}
	if !bytes.Contains(haystack, []byte(`"token_type"`)) {
		t.Fatalf("no token response body found in the trace: the check below would see nothing")
	}
	for _, s := range secrets {
		if bytes.Contains(haystack, []byte(s)) {
			t.Errorf("the trace file holds a secret (%d characters)", len(s))
		}
	}
	if !strings.Contains(r.stdout, "machine trace written to "+file) {
		t.Errorf("the demo does not say where the trace went:\n%s", r.stdout)
	}
}

// TestDemoGolden compares the demo's output, with what varies between runs
// masked (times, ports, client ids, expiry times, shortened lines), with
// testdata/demo.golden; -update rewrites it.
func TestDemoGolden(t *testing.T) {
	r, _, _ := runDemoCapturing(t)
	got := maskDemo(r.stdout)
	path := filepath.Join("testdata", "demo.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/mcpauth -run TestDemoGolden -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("demo output differs from %s (-want +got):\n%s", path, diff)
	}
}

var demoMasks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?m)^ +\+[\d.]+m?s  `), "  +TIME  "},
	{regexp.MustCompile(`\b[\d.]+m?s\b`), "TIME"},
	{regexp.MustCompile(`127\.0\.0\.1(:|%3A)\d+`), "127.0.0.1${1}PORT"},
	{regexp.MustCompile(`client_[A-Za-z0-9_-]{16,}`), "CLIENT_ID"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\d[T ][\d:.]+(Z| \+0000 UTC)`), "DATE"},
	{regexp.MustCompile(`(?m)(effect  \w+)\{.*…$`), "$1{…"},
}

func maskDemo(s string) string {
	for _, m := range demoMasks {
		s = m.re.ReplaceAllString(s, m.with)
	}
	return s
}

// RoundTrip implements http.RoundTripper: it records secrets and passes the
// exchange through unchanged.
func (s *sniffer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.GetBody != nil {
		if body, err := req.GetBody(); err == nil {
			b, _ := io.ReadAll(body)
			body.Close()
			if q, err := url.ParseQuery(string(b)); err == nil {
				s.add(q.Get("code"), q.Get("code_verifier"), q.Get("refresh_token"), q.Get("client_secret"))
			}
		}
	}
	q := req.URL.Query()
	s.add(q.Get("state"), q.Get("code_challenge"))
	resp, err := s.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if loc, err := url.Parse(resp.Header.Get("Location")); err == nil {
		lq := loc.Query()
		s.add(lq.Get("code"), lq.Get("state"))
	}
	if strings.HasSuffix(req.URL.Path, "/token") || strings.HasSuffix(req.URL.Path, "/register") {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			for _, k := range []string{"access_token", "refresh_token", "client_secret", "registration_access_token"} {
				if v, ok := m[k].(string); ok {
					s.add(v)
				}
			}
		}
	}
	return resp, nil
}
