package driver_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/driver/internal/storetest"
)

// Helper processes: the test binary re-executed with storeHelperEnv naming the
// helper and storePathEnv the store file.
const (
	storeHelperEnv = "MCPAUTH_STORE_TEST_HELPER"
	storePathEnv   = "MCPAUTH_STORE_TEST_PATH"
)

// openTestFileStore opens a FileStore in a fresh directory that does not exist yet,
// and checks when the test ends that no temporary file was left behind.
func openTestFileStore(t *testing.T) *driver.FileStore {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "store.json")
	s, err := driver.OpenFileStore(path)
	if err != nil {
		t.Fatalf("OpenFileStore: %v", err)
	}
	t.Cleanup(func() { wantNoStoreTemps(t, filepath.Dir(path)) })
	return s
}

// wantNoStoreTemps fails the test if dir holds a writer's temporary file.
func wantNoStoreTemps(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestFileStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) driver.Store { return openTestFileStore(t) })
}

func TestFileStoreModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix file modes")
	}
	s := openTestFileStore(t)
	ctx := context.Background()
	if _, err := s.Put(ctx, "k", []byte("secret"), 0); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	sum := sha256.Sum256([]byte("k"))
	for path, want := range map[string]fs.FileMode{
		s.Path():               0o600,
		filepath.Dir(s.Path()): 0o700 | fs.ModeDir,
		s.Path() + ".lock":     0o600,
		fmt.Sprintf("%s.%x.lock", s.Path(), sum[:8]): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (fs.ModePerm | fs.ModeDir); got != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(path), got, want)
		}
	}
}

func TestFileStoreReopen(t *testing.T) {
	ctx := context.Background()
	s1 := openTestFileStore(t)
	if _, err := s1.Put(ctx, "a", []byte("alpha"), 0); err != nil {
		t.Fatal(err)
	}
	s2, err := driver.OpenFileStore(s1.Path())
	if err != nil {
		t.Fatal(err)
	}
	r, err := s2.Get(ctx, "a")
	if err != nil || string(r.Value) != "alpha" || r.Version != 1 {
		t.Fatalf("reopened Get = %v %q, %v; want version 1 %q", r, r.Value, err, "alpha")
	}
	// Both handles see each other's writes, and CAS holds across them.
	if _, err := s2.Put(ctx, "a", []byte("beta"), 1); err != nil {
		t.Fatal(err)
	}
	var ce *driver.ConflictError
	if _, err := s1.Put(ctx, "a", []byte("lost"), 1); !errors.As(err, &ce) || ce.Have != 2 {
		t.Fatalf("stale Put through the other handle = %v, want conflict at version 2", err)
	}
	if r, err := s1.Get(ctx, "a"); err != nil || string(r.Value) != "beta" {
		t.Fatalf("Get = %q, %v; want %q", r.Value, err, "beta")
	}
}

// TestFileStoreFormat pins the documented file format.
func TestFileStoreFormat(t *testing.T) {
	ctx := context.Background()
	s := openTestFileStore(t)
	if _, err := s.Put(ctx, "tokens/x", []byte{0, 1, 2, 'h', 'i'}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "tokens/x", []byte("v2"), 1); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	var got any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	var want any
	if err := json.Unmarshal([]byte(`{"version":1,"records":{"tokens/x":{"version":2,"value":"djI="}}}`), &want); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("file content = %s\nwant the equivalent of %v", b, want)
	}

	// A file written by hand in the documented format reads back.
	hand := `{"version": 1, "records": {"k": {"version": 7, "value": "aGVsbG8="}, "n": {"version": 1, "value": null}}}`
	if err := os.WriteFile(s.Path(), []byte(hand), 0o600); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Get(ctx, "k"); err != nil || string(r.Value) != "hello" || r.Version != 7 {
		t.Errorf("Get(k) = %v %q, %v; want version 7 %q", r, r.Value, err, "hello")
	}
	if r, err := s.Get(ctx, "n"); err != nil || len(r.Value) != 0 || r.Version != 1 {
		t.Errorf("Get(n) = %v, %v; want version 1, empty", r, err)
	}
}

const storeCorruptSecret = "rt-CORRUPT-SECRET-1234"

var storeCorruptFiles = map[string]string{
	"garbage":            "not json " + storeCorruptSecret,
	"empty":              "",
	"truncated":          `{"version":1,"records":{"k":{"version":3,"value":"` + storeCorruptSecret,
	"trailing":           `{"version":1,"records":{}} ` + storeCorruptSecret,
	"no version":         `{"records":{"k":{"version":1,"value":"eA=="}}}`,
	"null":               `null`,
	"record version 0":   `{"version":1,"records":{"k":{"version":0,"value":"eA=="}}}`,
	"negative version":   `{"version":-1,"records":{}}`,
	"bad base64":         `{"version":1,"records":{"k":{"version":1,"value":"` + storeCorruptSecret + `!"}}}`,
	"records not a map":  `{"version":1,"records":["` + storeCorruptSecret + `"]}`,
	"value not a string": `{"version":1,"records":{"k":{"version":1,"value":{"t":"` + storeCorruptSecret + `"}}}}`,
}

// wantStoreMovedAside checks that err reports the corrupt file at path moved
// aside with content intact, and that it does not quote the content.
func wantStoreMovedAside(t *testing.T, err error, path, content string) {
	t.Helper()
	var ce *driver.CorruptStoreError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *driver.CorruptStoreError", err)
	}
	if ce.Path != path || !strings.HasPrefix(ce.MovedTo, path+".corrupt-") || ce.Err == nil {
		t.Fatalf("CorruptStoreError{Path %q, MovedTo %q, Err %v}, want Path %q, MovedTo %q...", ce.Path, ce.MovedTo, ce.Err, path, path+".corrupt-")
	}
	if strings.Contains(err.Error(), storeCorruptSecret) {
		t.Errorf("error quotes the file: %v", err)
	}
	moved, rerr := os.ReadFile(ce.MovedTo)
	if rerr != nil || string(moved) != content {
		t.Errorf("moved-aside file = %q, %v; want the original content", moved, rerr)
	}
	if _, serr := os.Stat(path); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("corrupt file still at %s: %v", path, serr)
	}
}

func TestFileStoreCorruptOnOpen(t *testing.T) {
	ctx := context.Background()
	for name, content := range storeCorruptFiles {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "store.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := driver.OpenFileStore(path)
			wantStoreMovedAside(t, err, path, content)
			if s == nil {
				t.Fatal("OpenFileStore returned no store with its *CorruptStoreError")
			}
			// Reported once; the store is empty and works.
			if _, err := s.Get(ctx, "k"); !errors.Is(err, driver.ErrNotFound) {
				t.Errorf("Get after corruption = %v, want ErrNotFound", err)
			}
			if _, err := s.Put(ctx, "k", []byte("fresh"), 0); err != nil {
				t.Errorf("Put after corruption: %v", err)
			}
			if _, err := driver.OpenFileStore(path); err != nil {
				t.Errorf("reopen after corruption: %v", err)
			}
		})
	}
}

func TestFileStoreCorruptLater(t *testing.T) {
	ctx := context.Background()
	s := openTestFileStore(t)
	corrupt := func() {
		t.Helper()
		if err := os.WriteFile(s.Path(), []byte(storeCorruptFiles["garbage"]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Put(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}

	corrupt()
	_, err := s.Get(ctx, "k")
	wantStoreMovedAside(t, err, s.Path(), storeCorruptFiles["garbage"])
	if _, err := s.Get(ctx, "k"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("second Get = %v, want ErrNotFound", err)
	}

	// A write that meets a corrupt file fails without writing.
	corrupt()
	_, err = s.Put(ctx, "k", []byte("new"), 0)
	wantStoreMovedAside(t, err, s.Path(), storeCorruptFiles["garbage"])
	if _, err := s.Get(ctx, "k"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("Get after failed Put = %v, want ErrNotFound", err)
	}
	if _, err := s.Put(ctx, "k", []byte("new"), 0); err != nil {
		t.Fatal(err)
	}

	corrupt()
	err = s.Delete(ctx, "k", 0)
	wantStoreMovedAside(t, err, s.Path(), storeCorruptFiles["garbage"])

	// Every corrupt file was kept, none overwritten.
	matches, _ := filepath.Glob(s.Path() + ".corrupt-*")
	if len(matches) != 3 {
		t.Errorf("%d moved-aside files, want 3: %v", len(matches), matches)
	}
}

func TestFileStoreNewerFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.json")
	content := `{"version":2,"records":{},"future":true}`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := driver.OpenFileStore(path)
	var ce *driver.CorruptStoreError
	if err == nil || errors.As(err, &ce) || s != nil {
		t.Fatalf("OpenFileStore(format 2) = %v, %v; want nil and a plain error", s, err)
	}
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Errorf("file changed to %q", b)
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Errorf("newer file moved aside: %v", m)
	}
}

func TestFileStoreRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "store.json")
	stale := filepath.Join(dir, ".store.json.tmp-123456")
	foreign := filepath.Join(dir, ".store.json.tmp-notours")
	for _, p := range []string{stale, foreign} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := driver.OpenFileStore(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temporary file kept: %v", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("file that is not a temporary of ours removed: %v", err)
	}
}

// TestFileStoreCrashSafety kills a writer process at random moments and
// checks that the file always holds a whole, consistent state no older
// than the last write the writer reported done.
func TestFileStoreCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("starts many processes")
	}
	path := filepath.Join(t.TempDir(), "store.json")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	const rounds = 50
	var last uint64
	temps := 0
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < rounds && time.Now().Before(deadline); i++ {
		committed := runStoreWriter(t, path, time.Duration(rng.IntN(8000))*time.Microsecond)

		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if !json.Valid(b) {
			t.Fatalf("round %d: store file is not valid JSON (%d bytes)", i, len(b))
		}
		if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".store.json.tmp-*")); len(m) > 0 {
			temps += len(m)
		}
		s, err := driver.OpenFileStore(path)
		if err != nil {
			t.Fatalf("round %d: reopen: %v", i, err)
		}
		r, err := s.Get(context.Background(), "counter")
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		n, err := checkStoreCrashValue(r.Value)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if n != r.Version {
			t.Fatalf("round %d: counter %d at version %d", i, n, r.Version)
		}
		if n < last || n < committed || n > committed+1 {
			t.Fatalf("round %d: counter %d; before this round %d, writer reported %d done", i, n, last, committed)
		}
		last = n
		wantNoStoreTemps(t, filepath.Dir(path))
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Errorf("corrupt files appeared: %v", m)
	}
	t.Logf("%d writes survived the kills; %d temporary files left by killed writers, all removed on reopen", last, temps)
}

// runStoreWriter starts the writer helper, waits for its first reported write,
// kills it after delay and returns the last counter value it reported done.
func runStoreWriter(t *testing.T, path string, delay time.Duration) uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
	cmd.Env = append(os.Environ(), storeHelperEnv+"=writer", storePathEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		committed uint64
		first     = make(chan struct{})
		drained   = make(chan struct{})
	)
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(out)
		for seen := false; sc.Scan(); {
			v, ok := strings.CutPrefix(sc.Text(), "done ")
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			mu.Lock()
			committed = n
			mu.Unlock()
			if !seen {
				seen = true
				close(first)
			}
		}
	}()
	select {
	case <-first:
	case <-drained:
	case <-time.After(10 * time.Second):
	}
	time.Sleep(delay)
	_ = cmd.Process.Kill()
	<-drained
	werr := cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	if committed == 0 {
		t.Fatalf("writer never wrote: %v\n%s", werr, stderr.Bytes())
	}
	return committed
}

// storeCrashValue is the counter value n: n, padding that makes a write span
// several pages, and a checksum of both, so a torn value cannot pass.
func storeCrashValue(n uint64) []byte {
	body := fmt.Sprintf("%d:%s", n, strings.Repeat(strconv.FormatUint(n, 10)+",", 3000))
	return fmt.Appendf(nil, "%s:%x", body, sha256.Sum256([]byte(body)))
}

func checkStoreCrashValue(v []byte) (uint64, error) {
	i := bytes.LastIndexByte(v, ':')
	if i < 0 || fmt.Sprintf("%x", sha256.Sum256(v[:i])) != string(v[i+1:]) {
		return 0, errors.New("counter value fails its checksum")
	}
	n, err := strconv.ParseUint(string(v[:bytes.IndexByte(v, ':')]), 10, 64)
	if err != nil || !bytes.Equal(storeCrashValue(n), v) {
		return 0, errors.New("counter value is inconsistent")
	}
	return n, nil
}

// TestHelperWriter is the writer process of TestFileStoreCrashSafety: it
// increments the counter forever, printing "done N" after each write.
func TestHelperWriter(t *testing.T) {
	if os.Getenv(storeHelperEnv) != "writer" {
		t.Skip("helper process for TestFileStoreCrashSafety")
	}
	ctx := context.Background()
	s, err := driver.OpenFileStore(os.Getenv(storePathEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	for {
		var n, version uint64
		r, err := s.Get(ctx, "counter")
		if err == nil {
			if n, err = checkStoreCrashValue(r.Value); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			version = r.Version
		} else if !errors.Is(err, driver.ErrNotFound) {
			fmt.Fprintln(os.Stderr, "get:", err)
			os.Exit(2)
		}
		if _, err := s.Put(ctx, "counter", storeCrashValue(n+1), version); err != nil {
			fmt.Fprintln(os.Stderr, "put:", err)
			os.Exit(2)
		}
		fmt.Printf("done %d\n", n+1)
		// A second record that comes and goes changes the file's shape.
		side := fmt.Sprintf("side/%d", n%5)
		if n%2 == 0 {
			_, err = s.Put(ctx, side, bytes.Repeat([]byte{byte(n)}, int(n%4096)), 0)
		} else {
			err = s.Delete(ctx, side, 0)
		}
		var ce *driver.ConflictError
		if err != nil && !errors.As(err, &ce) {
			fmt.Fprintln(os.Stderr, "side:", err)
			os.Exit(2)
		}
	}
}
