package driver_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// One refresh across processes (issue 7 item 4). The test binary runs
// itself as mpChildren child processes that share one FileStore file and
// one test world with rotating refresh tokens. Every child loads the stored
// credential, then, in each round, the parent expires every access token
// and tells all children to send a request at once: each gets a 401 and
// needs a new credential, but only one of them may redeem the refresh
// token; the others must take the store lock, re-read the store and adopt
// the credential the winner saved. With rotation, a second redemption of
// the same refresh token would be invalid_grant and revoke the family.

const (
	mpChildren = 4
	mpRounds   = 3
	mpEnvChild = "MCPAUTH_MULTIPROCESS_CHILD"
	mpEnvStore = "MCPAUTH_MULTIPROCESS_STORE"
	mpEnvMCP   = "MCPAUTH_MULTIPROCESS_MCP"
	mpRedirect = "http://127.0.0.1:1/callback" // never contacted: the headless agent reads Location
	mpWait     = 20 * time.Second              // guard against a hang, not a means of synchronisation
)

func TestMultiProcessRefresh(t *testing.T) {
	if os.Getenv(mpEnvChild) == "1" {
		mpChild(t)
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	w, err := testworld.Start(testworld.Options{DCR: true, RotateRefresh: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	storePath := filepath.Join(t.TempDir(), "store", "mcpauth.json")

	// Authorize once, in the parent, into the shared file.
	mpLogin(t, storePath, w.MCPURL())
	if st := w.Stats(); st.Authorizations != 1 || st.TokenRequests["authorization_code"] != 1 {
		t.Fatalf("setup: %+v", st)
	}

	children := make([]*mpProc, mpChildren)
	for i := range children {
		children[i] = mpStart(t, i, storePath, w.MCPURL())
	}
	for _, c := range children {
		c.expect(t, "READY")
	}

	for round := 1; round <= mpRounds; round++ {
		before := mpStoredToken(t, storePath, w.MCPURL())
		refused := w.Stats().Unauthorized
		w.ExpireAccessTokens() // every child now holds a token the server refuses
		for _, c := range children {
			c.send(t, "GO")
		}
		var held []string
		for _, c := range children {
			line := c.expect(t, "OK")
			held = append(held, strings.TrimPrefix(line, "OK "))
		}
		st := w.Stats()
		if got := st.Unauthorized - refused; got != mpChildren {
			t.Errorf("round %d: %d requests met the expired token, want all %d (they must all need a new credential at once)", round, got, mpChildren)
		}
		if got := st.TokenRequests["refresh_token"]; got != round {
			t.Errorf("round %d: %d refresh grants in all, want %d (exactly one per expiry)", round, got, round)
		}
		if st.InvalidGrants != 0 || st.FamiliesRevoked != 0 {
			t.Fatalf("round %d: invalid_grant %d, families revoked %d: a refresh token was redeemed twice", round, st.InvalidGrants, st.FamiliesRevoked)
		}
		if st.Authorizations != 1 || st.Registrations != 1 {
			t.Errorf("round %d: authorizations %d, registrations %d: no process may start over", round, st.Authorizations, st.Registrations)
		}
		after := mpStoredToken(t, storePath, w.MCPURL())
		if after == before {
			t.Fatalf("round %d: the stored credential did not change", round)
		}
		for i, h := range held {
			if h != mpHash(after) {
				t.Errorf("round %d: child %d holds %s, the store %s", round, i, h, mpHash(after))
			}
		}
		// The token every process holds is valid at the server.
		if status := mpPostWith(t, w.MCPURL(), after); status != http.StatusOK {
			t.Errorf("round %d: the shared token answers %d", round, status)
		}
	}
	for _, c := range children {
		c.finish(t)
	}
	t.Logf("stats: %+v", w.Stats().TokenRequests)
}

// mpLogin authorizes through a transport on the store file and closes it.
func mpLogin(t *testing.T, storePath, mcpURL string) {
	t.Helper()
	store, err := driver.OpenFileStore(storePath)
	if err != nil {
		t.Fatal(err)
	}
	tr := mpTransport(t, store, mcpURL)
	defer tr.Close()
	if status, err := mpPost(&http.Client{Transport: tr}, mcpURL); err != nil || status != http.StatusOK {
		t.Fatalf("login: status %d, %v", status, err)
	}
}

func mpTransport(t *testing.T, store driver.Store, mcpURL string) *httpdriver.Transport {
	t.Helper()
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	tr, err := httpdriver.NewTransport(context.Background(),
		machine.Config{Server: mcpURL, RedirectURI: mpRedirect},
		httpdriver.Options{Base: base, Store: store, UserAgent: httpdriver.HeadlessUserAgent{Timeout: 5 * time.Second},
			Requester: &httpdriver.Requester{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	return tr
}

func mpPost(c *http.Client, mcpURL string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), mpWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, mcpURL,
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// mpPostWith sends one request with a bare bearer token.
func mpPostWith(t *testing.T, mcpURL, token string) int {
	t.Helper()
	c := &http.Client{Transport: mpBearer{token: token}}
	status, err := mpPost(c, mcpURL)
	if err != nil {
		t.Fatalf("POST with the stored token: %v", err)
	}
	return status
}

type mpBearer struct{ token string }

func (b mpBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func mpStoredToken(t *testing.T, storePath, mcpURL string) string {
	t.Helper()
	store, err := driver.OpenFileStore(storePath)
	if err != nil {
		t.Fatal(err)
	}
	in, err := driver.LoadStored(context.Background(), store, mcpURL)
	if err != nil || in.Tokens == nil || in.Tokens.AccessToken == "" {
		t.Fatalf("stored credential: %v, %v", in.Tokens, err)
	}
	return in.Tokens.AccessToken
}

// mpHash names a token without printing it.
func mpHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}

// mpProc is one child process, driven line by line: the parent writes
// "GO", the child answers "OK <token hash>" or "ERR <reason>".
type mpProc struct {
	id     int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *mpSafeBuffer
	exited chan struct{} // closed when the process has been waited for
	err    error         // its exit status, once exited is closed
}

func mpStart(t *testing.T, id int, storePath, mcpURL string) *mpProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMultiProcessRefresh$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), mpEnvChild+"=1", mpEnvStore+"="+storePath, mpEnvMCP+"="+mcpURL)
	p := &mpProc{id: id, cmd: cmd, lines: make(chan string, 16), stderr: &mpSafeBuffer{}, exited: make(chan struct{})}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "MP "); ok {
				p.lines <- line
			}
		}
	}()
	go func() {
		wg.Wait() // stdout fully read before Wait closes it
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func (p *mpProc) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("child %d: write: %v", p.id, err)
	}
}

// expect waits for the child's next line and requires it to start with
// word.
func (p *mpProc) expect(t *testing.T, word string) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("child %d exited before %s; stderr:\n%s", p.id, word, p.stderr)
		}
		if line != word && !strings.HasPrefix(line, word+" ") {
			t.Fatalf("child %d said %q, want %s", p.id, line, word)
		}
		return line
	case <-time.After(mpWait):
		t.Fatalf("child %d: no %s within %v", p.id, word, mpWait)
	}
	return ""
}

func (p *mpProc) finish(t *testing.T) {
	t.Helper()
	p.stdin.Close()
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("child %d: %v; stderr:\n%s", p.id, p.err, p.stderr)
		}
	case <-time.After(mpWait):
		t.Errorf("child %d did not exit", p.id)
	}
}

type mpSafeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *mpSafeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *mpSafeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// mpChild is the child side: load the store, say READY, then answer each
// GO with one request through the transport.
func mpChild(t *testing.T) {
	storePath, mcpURL := os.Getenv(mpEnvStore), os.Getenv(mpEnvMCP)
	store, err := driver.OpenFileStore(storePath)
	if err != nil {
		t.Fatalf("child: OpenFileStore: %v", err)
	}
	tr := mpTransport(t, store, mcpURL)
	defer tr.Close()
	if tr.Session().Snapshot().Credential.AccessToken == "" {
		t.Fatalf("child: no credential loaded from the store")
	}
	client := &http.Client{Transport: tr}
	fmt.Println("MP READY")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() != "GO" {
			continue
		}
		status, err := mpPost(client, mcpURL)
		switch {
		case err != nil:
			fmt.Printf("MP ERR %v\n", err)
		case status != http.StatusOK:
			fmt.Printf("MP ERR status %d\n", status)
		default:
			fmt.Printf("MP OK %s\n", mpHash(tr.Session().Snapshot().Credential.AccessToken))
		}
	}
}
