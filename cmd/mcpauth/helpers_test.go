package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
)

// lockedBuffer is a bytes.Buffer safe for the concurrent writes a command
// may make.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testEnv makes the env of each command a test runs: captured output, a
// private config directory, no colours, only the environment variables the
// test sets, and a headless user agent in place of the browser.
type testEnv struct {
	configDir string
	vars      map[string]string
	userAgent func(redirectURI string) driver.UserAgent
	// demoNetwork and demoDone are passed to the demo.
	demoNetwork func(http.RoundTripper) http.RoundTripper
	demoDone    func(store driver.Store, server string)
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return &testEnv{
		configDir: t.TempDir(),
		vars:      map[string]string{},
		userAgent: func(string) driver.UserAgent { return httpdriver.HeadlessUserAgent{} },
	}
}

// storePath is where commands of te keep their store by default.
func (te *testEnv) storePath() string {
	return filepath.Join(te.configDir, "mcpauth", "store.json")
}

// result is one command run.
type result struct {
	code       int
	stdout     string
	stderr     string
	transcript string
}

// run runs `mcpauth args...` in-process and returns what it printed.
func (te *testEnv) run(t *testing.T, args ...string) result {
	t.Helper()
	out, errb := &lockedBuffer{}, &lockedBuffer{}
	e := &env{
		stdout:      out,
		stderr:      errb,
		getenv:      func(k string) string { return te.vars[k] },
		configDir:   func() (string, error) { return te.configDir, nil },
		now:         time.Now,
		userAgent:   te.userAgent,
		demoNetwork: te.demoNetwork,
		demoDone:    te.demoDone,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, e)
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	r.transcript = "$ mcpauth " + strings.Join(args, " ") + "\n--- stdout\n" + r.stdout + "--- stderr\n" + r.stderr
	return r
}

// startWorld starts a test world and closes it with the test.
func startWorld(t *testing.T, o testworld.Options) *testworld.World {
	t.Helper()
	w, err := testworld.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// loginWorld is a world a user can sign in to: the demo's.
func loginWorld(t *testing.T) *testworld.World {
	return startWorld(t, demoWorld)
}

// readStore reads every record of a store file through the file store
// (driver.Lister and Get).
func readStore(t *testing.T, path string) map[string][]byte {
	t.Helper()
	s, err := driver.OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, s)
}

// readAll reads every record of a store that lists its keys.
func readAll(t *testing.T, s interface {
	driver.Store
	driver.Lister
}) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	keys, err := s.Keys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	recs := make(map[string][]byte, len(keys))
	for _, k := range keys {
		r, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		recs[k] = r.Value
	}
	return recs
}

// keysOf is the sorted keys of recs, for messages.
func keysOf(recs map[string][]byte) []string {
	out := make([]string, 0, len(recs))
	for k := range recs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// sniffer is an http.RoundTripper under the demo's logger that collects
// every secret crossing the wire: tokens from token responses, codes and
// state from authorization redirects, verifiers and refresh tokens from
// token requests, client secrets from registration responses.
type sniffer struct {
	base    http.RoundTripper
	mu      sync.Mutex
	secrets map[string]bool
}

func (s *sniffer) add(vs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets == nil {
		s.secrets = map[string]bool{}
	}
	for _, v := range vs {
		if len(v) >= 8 { // shorter values would match by accident
			s.secrets[v] = true
		}
	}
}

func (s *sniffer) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for v := range s.secrets {
		out = append(out, v)
	}
	return out
}
