//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockStoreFile opens (creating, mode 0600) the lock file at path on a new
// descriptor and takes an exclusive flock(2) on it. flock locks belong to
// the open file description, so a lock taken on a descriptor of its own
// excludes other processes and other descriptors in this process alike.
// It polls with LOCK_NB, backing off from 1ms to 16ms, so that ctx can end
// the wait.
func lockStoreFile(ctx context.Context, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("driver: lock file: %w", err)
	}
	delay := time.Millisecond
	for {
		ok, err := tryFlock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("driver: lock file: %w", err)
		}
		if ok {
			return f, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
		if delay < 16*time.Millisecond {
			delay *= 2
		}
	}
}

// releaseStoreFile releases and closes a lock file from lockStoreFile.
func releaseStoreFile(f *os.File) {
	_ = flock(f, syscall.LOCK_UN)
	_ = f.Close()
}

// tryFlock takes an exclusive flock(2) on f without blocking. It reports
// false, nil when someone else holds the lock.
func tryFlock(f *os.File) (bool, error) {
	err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		return false, nil
	default:
		return false, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
}

func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = syscall.Flock(int(fd), how) }); err != nil {
		return err
	}
	return ferr
}

// syncStoreDir fsyncs directory dir, so that a rename in it is durable.
func syncStoreDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
