package pgstore_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/driver/pgstore"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// testRedirectURI is never contacted: HeadlessUserAgent reads the
// authorization response from the Location header.
const testRedirectURI = "http://127.0.0.1:1/callback"

// startWorld starts a test world that closes when the test ends.
func startWorld(t testing.TB, o testworld.Options) *testworld.World {
	t.Helper()
	w, err := testworld.Start(o)
	if err != nil {
		t.Fatalf("testworld.Start: %v", err)
	}
	t.Cleanup(w.Close)
	return w
}

// worldConfig is the machine configuration every replica uses.
func worldConfig(mcpURL string, margin time.Duration) machine.Config {
	return machine.Config{Server: mcpURL, RedirectURI: testRedirectURI, RefreshMargin: margin}
}

// newTransport builds a transport over store, with a headless user agent
// and a connection pool sized for many goroutines.
func newTransport(ctx context.Context, cfg machine.Config, store driver.Store, req driver.Requester) (*httpdriver.Transport, *http.Transport, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 64
	tr, err := httpdriver.NewTransport(ctx, cfg, httpdriver.Options{
		Store:     store,
		UserAgent: httpdriver.HeadlessUserAgent{},
		Base:      base,
		Requester: req,
	})
	return tr, base, err
}

// rpcBody is an MCP JSON-RPC request: tools/list, or tools/call echo.
func rpcBody(id int) []byte {
	if id%2 == 0 {
		return []byte(`{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"tools/list","params":{}}`)
	}
	return []byte(`{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`)
}

// postMCP sends one JSON-RPC request and returns the status.
func postMCP(ctx context.Context, c *http.Client, url string, id int) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(rpcBody(id)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// preauthorize signs in once through a transport on a store of its own
// (DCR, authorization, code exchange), so the fleet starts warm from the
// database. It returns when the credential is stored.
func preauthorize(t testing.TB, dsn string, w *testworld.World, margin time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := openStore(t, dsn, pgstore.Config{})
	defer s.Close()
	tr, base, err := newTransport(ctx, worldConfig(w.MCPURL(), margin), s, nil)
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	defer base.CloseIdleConnections()
	defer tr.Close()
	if code, err := postMCP(ctx, &http.Client{Transport: tr}, w.MCPURL(), 1); err != nil || code != http.StatusOK {
		t.Fatalf("preauthorize: %d, %v", code, err)
	}
	if st := w.Stats(); st.Authorizations != 1 || st.Registrations != 1 || st.TokenRequests["authorization_code"] != 1 {
		t.Fatalf("preauthorize: stats %+v", st)
	}
	if v := tokenVersion(t, s, w.MCPURL()); v != 1 {
		t.Fatalf("preauthorize: stored credential version %d, want 1", v)
	}
}

// tokenVersion is the version of the stored credential for server (0:
// none).
func tokenVersion(t testing.TB, s driver.Store, server string) uint64 {
	t.Helper()
	r, err := s.Get(context.Background(), "tokens:"+server)
	if err != nil {
		t.Fatalf("Get tokens: %v", err)
	}
	return r.Version
}

// storedExpiry is the expiry of the stored credential.
func storedExpiry(t testing.TB, s driver.Store, server string) time.Time {
	t.Helper()
	r, err := s.Get(context.Background(), "tokens:"+server)
	if err != nil {
		t.Fatalf("Get tokens: %v", err)
	}
	var tok effects.Tokens
	if err := json.Unmarshal(r.Value, &tok); err != nil {
		t.Fatalf("stored tokens: %v", err)
	}
	return tok.ExpiresAt
}

// Helper processes: the test binary re-executed with helperEnv set runs
// TestHelperReplica, which acts as one replica of a fleet. Its parameters
// come in the environment; it talks on stdin/stdout in lines:
//
//	child: "ready"             the transport is built and loaded from the store
//	parent: "go"               start the request loops
//	child: "refreshing <pid>"  a refresh request is about to be sent (the lease is held)
//	child: "hanging <pid>"     this replica's refresh hangs instead (see replicaSpec.hangFile)
//	parent: "stop"             (or EOF, or the duration passing) end the loops
//	child: "result <json>"     the replicaResult, then the child exits
const (
	helperEnv     = "MCPAUTH_PGSTORE_HELPER"
	dsnEnv        = "MCPAUTH_PGSTORE_DSN"
	mcpURLEnv     = "MCPAUTH_PGSTORE_MCP_URL"
	durationEnv   = "MCPAUTH_PGSTORE_DURATION"
	goroutinesEnv = "MCPAUTH_PGSTORE_GOROUTINES"
	leaseTTLEnv   = "MCPAUTH_PGSTORE_LEASE_TTL"
	marginEnv     = "MCPAUTH_PGSTORE_MARGIN"
	hangFileEnv   = "MCPAUTH_PGSTORE_HANG_FILE"
)

// replicaSpec is what a replica is told.
type replicaSpec struct {
	dsn, mcpURL string
	duration    time.Duration
	goroutines  int
	leaseTTL    time.Duration
	margin      time.Duration
	// hangFile, when set, makes the first refresh of the whole fleet
	// hang before it is sent, holding the lease: the replica that
	// creates this file (O_EXCL, so exactly one) never sends its
	// refresh. It stands for a replica that dies in the middle of a
	// refresh before the authorization server saw the request.
	hangFile string
}

// replicaResult is what a replica reports.
type replicaResult struct {
	PID        int            `json:"pid"`
	Requests   int            `json:"requests"`
	OK         int            `json:"ok"`
	Statuses   map[string]int `json:"statuses"` // answers other than 200, by status
	Errors     int            `json:"errors"`   // requests with no answer
	FirstError string         `json:"first_error,omitempty"`
	Refreshes  int            `json:"refreshes"` // refresh requests this replica sent
	Other      int            `json:"other"`     // auxiliary requests other than refreshes
}

// replica is a running helper process.
type replica struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	pid    int
	ready  chan struct{}
	marks  chan time.Time // one per "refreshing" line
	hangs  chan time.Time // one per "hanging" line
	result chan replicaResult
	done   chan struct{} // stdout closed

	mu     sync.Mutex
	stderr bytes.Buffer
}

func (r *replica) Stderr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// startReplica starts one helper process; it is killed when the test ends
// if it is still running.
func startReplica(t testing.TB, spec replicaSpec) *replica {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperReplica$", "-test.v=false")
	cmd.Env = append(os.Environ(),
		helperEnv+"=replica",
		dsnEnv+"="+spec.dsn,
		mcpURLEnv+"="+spec.mcpURL,
		durationEnv+"="+spec.duration.String(),
		goroutinesEnv+"="+strconv.Itoa(spec.goroutines),
		leaseTTLEnv+"="+spec.leaseTTL.String(),
		marginEnv+"="+spec.margin.String(),
		hangFileEnv+"="+spec.hangFile,
	)
	r := &replica{
		cmd:    cmd,
		ready:  make(chan struct{}),
		marks:  make(chan time.Time, 64),
		hangs:  make(chan time.Time, 1),
		result: make(chan replicaResult, 1),
		done:   make(chan struct{}),
	}
	cmd.Stderr = lockedWriter{&r.mu, &r.stderr}
	var err error
	if r.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.pid = cmd.Process.Pid
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "ready":
				close(r.ready)
			case strings.HasPrefix(line, "refreshing "):
				select {
				case r.marks <- time.Now():
				default:
				}
			case strings.HasPrefix(line, "hanging "):
				select {
				case r.hangs <- time.Now():
				default:
				}
			case strings.HasPrefix(line, "result "):
				var res replicaResult
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "result ")), &res); err == nil {
					r.result <- res
				}
			}
		}
	}()
	return r
}

// send writes one command line to the replica.
func (r *replica) send(cmd string) {
	_, _ = io.WriteString(r.stdin, cmd+"\n")
}

// waitReady waits for every replica's "ready".
func waitReady(t testing.TB, rs []*replica, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for i, r := range rs {
		select {
		case <-r.ready:
		case <-r.done:
			t.Fatalf("replica %d exited before it was ready:\n%s", i, r.Stderr())
		case <-deadline:
			t.Fatalf("replica %d not ready after %v:\n%s", i, limit, r.Stderr())
		}
	}
}

// collect waits for a replica's result.
func (r *replica) collect(t testing.TB, limit time.Duration) replicaResult {
	t.Helper()
	select {
	case res := <-r.result:
		return res
	case <-time.After(limit):
		t.Fatalf("replica %d: no result after %v:\n%s", r.pid, limit, r.Stderr())
	}
	return replicaResult{}
}

// markingRequester announces each refresh request on stdout before sending
// it: it is sent under the lease, so the announcement says who holds it.
type markingRequester struct {
	inner    driver.Requester
	mu       sync.Mutex
	out      io.Writer
	res      *replicaResult
	hangFile string
}

func (m *markingRequester) Fetch(ctx context.Context, f effects.Fetch) (machine.FetchResponse, error) {
	m.mu.Lock()
	if f.Purpose != effects.PurposeRefresh {
		m.res.Other++
		m.mu.Unlock()
		return m.inner.Fetch(ctx, f)
	}
	m.res.Refreshes++
	hang := false
	if m.hangFile != "" {
		if fh, err := os.OpenFile(m.hangFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			fh.Close()
			hang = true
		}
	}
	if hang {
		fmt.Fprintf(m.out, "hanging %d\n", os.Getpid())
	} else {
		fmt.Fprintf(m.out, "refreshing %d\n", os.Getpid())
	}
	m.mu.Unlock()
	if hang {
		<-ctx.Done()
		return machine.FetchResponse{}, ctx.Err()
	}
	return m.inner.Fetch(ctx, f)
}
