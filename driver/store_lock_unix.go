//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package driver

import (
	"errors"
	"os"
	"syscall"
)

// crossProcessLocking reports whether lock files exclude other processes
// on this platform (flock(2)).
const crossProcessLocking = true

// tryFlock takes an exclusive flock(2) on f without blocking. flock
// locks belong to the open file description, so a separately opened f
// excludes other processes and other descriptors in this process alike.
// It reports false, nil when someone else holds the lock.
func tryFlock(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
	}); err != nil {
		return false, err
	}
	switch {
	case ferr == nil:
		return true, nil
	case errors.Is(ferr, syscall.EWOULDBLOCK), errors.Is(ferr, syscall.EINTR):
		return false, nil
	default:
		return false, &os.PathError{Op: "flock", Path: f.Name(), Err: ferr}
	}
}

// funlock releases the flock(2) on f. Closing f releases it too; this
// just makes the release explicit.
func funlock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		ferr = syscall.Flock(int(fd), syscall.LOCK_UN)
	}); err != nil {
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
