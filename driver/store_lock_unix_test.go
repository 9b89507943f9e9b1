//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package driver_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/driver/internal/storetest"
)

// TestFileStoreLockAcrossHandles: two FileStore values on one file share
// no in-process state, so only flock can make them exclude each other.
func TestFileStoreLockAcrossHandles(t *testing.T) {
	s1 := openTestFileStore(t)
	s2, err := driver.OpenFileStore(s1.Path())
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := s1.Lock(context.Background(), "refresh")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if u, err := s2.Lock(ctx, "refresh"); !errors.Is(err, context.DeadlineExceeded) {
		if u != nil {
			u()
		}
		t.Fatalf("second handle's Lock while held = %v, want context.DeadlineExceeded", err)
	}
	other, err := s2.Lock(context.Background(), "other")
	if err != nil {
		t.Fatalf("Lock of another key: %v", err)
	}
	other()

	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		u, err := s2.Lock(ctx, "refresh")
		if err == nil {
			u()
		}
		got <- err
	}()
	time.Sleep(10 * time.Millisecond)
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
}

const storeLockerRounds = 50

// TestFileStoreLockAcrossProcesses runs two processes that each increment
// one counter storeLockerRounds times with Lock + Get + Put. The lock makes
// every Put's expected version right: no conflict may escape, and the
// counter ends at exactly twice storeLockerRounds.
func TestFileStoreLockAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	path := filepath.Join(t.TempDir(), "store.json")
	type child struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		stdout *bufio.Reader
		stderr bytes.Buffer
	}
	children := make([]*child, 2)
	for i := range children {
		c := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestHelperLocker$")}
		c.cmd.Env = append(os.Environ(), storeHelperEnv+"=locker", storePathEnv+"="+path)
		c.cmd.Stderr = &c.stderr
		var err error
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		out, err := c.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		c.stdout = bufio.NewReader(out)
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
		children[i] = c
	}
	// Start both loops together, so that they overlap.
	for i, c := range children {
		if line, err := c.stdout.ReadString('\n'); line != "ready\n" {
			t.Fatalf("child %d: %q, %v\n%s", i, line, err, c.stderr.Bytes())
		}
	}
	for _, c := range children {
		if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	timer := time.AfterFunc(30*time.Second, func() {
		for _, c := range children {
			_ = c.cmd.Process.Kill()
		}
	})
	defer timer.Stop()
	for i, c := range children {
		rest, _ := io.ReadAll(c.stdout)
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("child %d: %v\nstdout: %s\nstderr: %s", i, err, rest, c.stderr.Bytes())
		}
	}
	if t.Failed() {
		return
	}
	s, err := driver.OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Get(context.Background(), "counter")
	want := strconv.Itoa(2 * storeLockerRounds)
	if err != nil || string(r.Value) != want || r.Version != 2*storeLockerRounds {
		t.Fatalf("counter = %q at version %d, %v; want %s at version %s", r.Value, r.Version, err, want, want)
	}
}

// TestHelperLocker is a child of TestFileStoreLockAcrossProcesses.
func TestHelperLocker(t *testing.T) {
	if os.Getenv(storeHelperEnv) != "locker" {
		t.Skip("helper process for TestFileStoreLockAcrossProcesses")
	}
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		os.Exit(3)
	}
	ctx := context.Background()
	s, err := driver.OpenFileStore(os.Getenv(storePathEnv))
	if err != nil {
		fail("open", err)
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fail("waiting for go", err)
	}
	for i := 0; i < storeLockerRounds; i++ {
		unlock, err := s.Lock(ctx, "refresh")
		if err != nil {
			fail("lock", err)
		}
		n, version := 0, uint64(0)
		r, err := s.Get(ctx, "counter")
		switch {
		case err == nil:
			version = r.Version
			if n, err = strconv.Atoi(string(r.Value)); err != nil {
				fail("counter", err)
			}
		case !errors.Is(err, driver.ErrNotFound):
			fail("get", err)
		}
		// Like a refresh: a slow step between reading and writing, which
		// only the lock keeps the other process out of.
		time.Sleep(time.Millisecond)
		if _, err := s.Put(ctx, "counter", []byte(strconv.Itoa(n+1)), version); err != nil {
			fail("put (a conflict escaped the lock)", err)
		}
		unlock()
	}
}

// TestFileStoreConcurrentHandles runs compare-and-swap increments through
// several FileStore values on one file: they share no in-process state, so
// only the flock on <path>.lock keeps each read-modify-write whole.
func TestFileStoreConcurrentHandles(t *testing.T) {
	first := openTestFileStore(t)
	const handles, workers, each = 4, 4, 10
	var wg sync.WaitGroup
	for h := 0; h < handles; h++ {
		s, err := driver.OpenFileStore(first.Path())
		if err != nil {
			t.Fatal(err)
		}
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := storetest.Increment(context.Background(), s, "counter", each); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	r, err := first.Get(context.Background(), "counter")
	const want = handles * workers * each
	if err != nil || string(r.Value) != strconv.Itoa(want) || r.Version != want {
		t.Fatalf("counter = %q at version %d, %v; want %d at version %d", r.Value, r.Version, err, want, want)
	}
}
