//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package driver

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// crossProcessLocking reports whether lock files exclude other processes
// on this platform. Here they do not: FileStore serializes writes and
// Lock calls within this process only, so the store file must not be
// shared by concurrently running processes.
const crossProcessLocking = false

var errNoFlock = fmt.Errorf("driver: cross-process file locks on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// tryFlock always fails with an error wrapping errors.ErrUnsupported.
func tryFlock(*os.File) (bool, error) { return false, errNoFlock }

// funlock does nothing.
func funlock(*os.File) error { return nil }

// syncStoreDir does nothing: not every platform can fsync a directory.
func syncStoreDir(string) error { return nil }
