package machine_test

// Golden traces (design §5): each scenario runs through the scripted world
// with a fixed seed and epoch while a driver.TraceRecorder writes one JSON
// line per input, transition and effect, secrets redacted, to
// testdata/traces/<name>.jsonl. The test compares byte for byte;
// `go test ./machine -run TestGolden -update` (make golden) rewrites them.
// Every golden trace must replay (driver.Replay) with any entropy, a
// tampered one must not, and none may contain a secret the world issued or
// saw.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/machine"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden traces under testdata/traces")

const tracesDir = "../testdata/traces"

// goldenCase is one recorded scenario. prepare runs untraced (to fill the
// store or script the servers); drive runs traced, from machine.New.
type goldenCase struct {
	name    string
	world   func() *fakeWorld
	prepare func(t *testing.T, w *fakeWorld)
	drive   func(t *testing.T, w *fakeWorld, s machine.Snapshot)
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{
			name:  "cold_start_dcr",
			world: newFakeWorld,
			drive: func(t *testing.T, w *fakeWorld, s machine.Snapshot) {
				w.run(t, s, w.req(1))
			},
		},
		{
			name:  "warm_start",
			world: newFakeWorld,
			prepare: func(t *testing.T, w *fakeWorld) {
				w.run(t, w.boot(t), w.req(1)) // an earlier run filled the store
				w.Now = w.Now.Add(10 * time.Minute)
			},
			drive: func(t *testing.T, w *fakeWorld, s machine.Snapshot) {
				w.run(t, s, w.req(2), w.req(3))
			},
		},
		{
			name: "refresh",
			world: func() *fakeWorld {
				w := newFakeWorld()
				w.Config.TokenEndpointAuthMethod = "client_secret_basic" // a confidential client: a secret to redact
				w.AS[0].Rotate = true
				return w
			},
			drive: func(t *testing.T, w *fakeWorld, s machine.Snapshot) {
				s = w.run(t, s, w.req(1))
				w.Now = w.WakeAt
				s = w.run(t, s, machine.Tick{})
				w.Now = w.Now.Add(time.Minute)
				w.run(t, s, w.req(2))
			},
		},
		{
			name: "refresh_invalid_grant",
			world: func() *fakeWorld {
				w := newFakeWorld()
				w.AS[0].RefreshStatus = 400
				return w
			},
			drive: func(t *testing.T, w *fakeWorld, s machine.Snapshot) {
				s = w.run(t, s, w.req(1))
				w.Now = w.WakeAt
				w.run(t, s, w.req(2))
			},
		},
		{
			name:  "step_up",
			world: newFakeWorld,
			drive: func(t *testing.T, w *fakeWorld, s machine.Snapshot) {
				s = w.run(t, s, w.req(1))
				w.RequiredScope = "mcp:write"
				w.run(t, s, w.req(2))
			},
		},
		{
			name:  "legacy_fallback",
			world: newLegacyFakeWorld,
			drive: func(t *testing.T, w *fakeWorld, s machine.Snapshot) {
				w.run(t, s, w.req(1))
			},
		},
		{
			name: "cimd",
			world: func() *fakeWorld {
				w := newFakeWorld()
				w.Config.ClientMetadataURL = wCIMD
				w.AS[0].CIMD = true
				w.AS[0].Iss = true // RFC 9207 iss on the callback too
				return w
			},
			drive: func(t *testing.T, w *fakeWorld, s machine.Snapshot) {
				w.run(t, s, w.req(1))
			},
		},
	}
}

// record runs a golden case and returns its world and trace.
func record(t *testing.T, c goldenCase) (*fakeWorld, []byte) {
	t.Helper()
	w := c.world()
	if c.prepare != nil {
		c.prepare(t, w)
	}
	var buf bytes.Buffer
	rec := driver.NewTraceRecorder(&buf)
	w.Trace = rec
	s := w.boot(t)
	c.drive(t, w, s)
	w.Trace = nil
	if err := rec.Err(); err != nil {
		t.Fatal(err)
	}
	if len(w.Refused) > 0 {
		t.Fatalf("refused inputs while recording: %v", w.Refused)
	}
	w.requireClean(t)
	for id, o := range w.Outcomes {
		if len(o) != 1 || !o[0].Delivered {
			t.Errorf("request %d ended %+v", id, o)
		}
	}
	return w, buf.Bytes()
}

func TestGoldenTraces(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			w, got := record(t, c)
			path := filepath.Join(tracesDir, c.name+".jsonl")
			if *updateGolden {
				if err := os.MkdirAll(tracesDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./machine -run TestGolden -update)", err)
			}
			if !bytes.Equal(want, got) {
				t.Errorf("%s differs from the recording (-want +got):\n%s\n(rewrite with -update and review the diff)",
					path, cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")))
			}
			// A second recording is byte-identical: the world and machine are deterministic.
			if _, again := record(t, c); !bytes.Equal(got, again) {
				t.Error("two recordings of the same scenario differ")
			}
			requireNoSecrets(t, path, want, w.secrets())
		})
	}
}

// TestGoldenTracesReplay: driver.Replay reproduces every golden trace from
// the configuration alone, with entropy unrelated to the recording's.
func TestGoldenTracesReplay(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(tracesDir, c.name+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			cfg := c.world().Config
			if err := driver.Replay(cfg, bytes.NewReader(b), rand.NewChaCha8([32]byte{42})); err != nil {
				t.Errorf("Replay: %v", err)
			}
		})
	}
}

// TestGoldenTamperedTraceDiverges: changing one effect line makes Replay
// return *driver.DivergenceError naming that line; so do a dropped and an
// extra effect line.
func TestGoldenTamperedTraceDiverges(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(tracesDir, "cold_start_dcr.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	target := -1
	for i, l := range lines {
		if strings.Contains(l, `"kind":"effect"`) && strings.Contains(l, "OpenURL") {
			target = i
		}
	}
	if target < 0 {
		t.Fatal("no OpenURL effect line in the trace")
	}
	cfg := newFakeWorld().Config
	replay := func(ls []string) error {
		return driver.Replay(cfg, strings.NewReader(strings.Join(ls, "\n")+"\n"), rand.NewChaCha8([32]byte{7}))
	}
	check := func(name string, ls []string, wantLine int) {
		t.Helper()
		var div *driver.DivergenceError
		if err := replay(ls); !errors.As(err, &div) {
			t.Errorf("%s: Replay = %v, want *driver.DivergenceError", name, err)
		} else if div.Line != wantLine {
			t.Errorf("%s: divergence at line %d, want %d (%v)", name, div.Line, wantLine, div)
		}
	}

	changed := append([]string(nil), lines...)
	changed[target] = strings.Replace(changed[target], "scope=mcp%3Aread", "scope=mcp%3Aadmin", 1)
	if changed[target] == lines[target] {
		t.Fatalf("could not tamper with %s", lines[target])
	}
	check("changed effect", changed, target+1)

	dropped := append(append([]string(nil), lines[:target]...), lines[target+1:]...)
	check("dropped effect", dropped, target+1) // the next recorded effect no longer matches

	extra := append(append(append([]string(nil), lines[:target+1]...), lines[target]), lines[target+1:]...)
	check("extra effect", extra, target+2)

	if err := replay(lines); err != nil {
		t.Errorf("untampered: %v", err)
	}
}

// TestGoldenSecretCheckBites: the secret check finds what it must.
func TestGoldenSecretCheckBites(t *testing.T) {
	w, _ := record(t, goldenCases()[0])
	secrets := w.secrets()
	for _, must := range []string{"at-1", "rt-1", "code-1", w.States[0], w.Verifiers[0]} {
		if !slices.Contains(secrets, must) {
			t.Errorf("secrets() lacks %q", must)
		}
	}
	for _, c := range []struct {
		hay, secret string
		want        bool
	}{
		{`Authorization:[Bearer at-1]`, "at-1", true},
		{`"refresh_token":"rt-1"`, "rt-1", true},
		{`code=code-1&state=x`, "code-1", true},
		{`Bearer at-12`, "at-1", false},
		{`Bearer [redacted]`, "at-1", false},
		{`q=` + w.States[0], w.States[0], true},
	} {
		if got := hasSecret(c.hay, c.secret); got != c.want {
			t.Errorf("hasSecret(%q, %q) = %v", c.hay, c.secret, got)
		}
	}
}

// requireNoSecrets fails when a secret value appears in a trace: in its
// text, or in a JSON-encoded body it carries.
func requireNoSecrets(t *testing.T, path string, trace []byte, secrets []string) {
	t.Helper()
	if len(secrets) < 4 {
		t.Fatalf("only %d secrets recorded: the check would prove nothing", len(secrets))
	}
	hay := []string{string(trace)}
	for _, line := range strings.Split(string(trace), "\n") {
		if line == "" {
			continue
		}
		var l driver.TraceLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if l.Type == "FetchResponse" {
			var f machine.FetchResponse
			if err := json.Unmarshal(l.Input, &f); err != nil {
				t.Fatal(err)
			}
			hay = append(hay, string(f.Body))
		}
	}
	for _, h := range hay {
		for _, s := range secrets {
			if hasSecret(h, s) {
				t.Errorf("%s contains the secret %q", path, s)
			}
		}
	}
}
