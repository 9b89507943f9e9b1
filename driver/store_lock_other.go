//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package driver

import (
	"context"
	"os"
)

// Without flock(2), lock files cannot exclude other processes. Here
// FileStore serializes its writes and its Lock calls within this process
// only (writes stay atomic: temporary file and rename), and a store file
// must not be used by two processes at once.

// lockStoreFile takes no file lock: the in-process locks FileStore takes
// first are all the exclusion there is. It returns ctx.Err(), so a done
// context still fails.
func lockStoreFile(ctx context.Context, _ string) (*os.File, error) {
	return nil, ctx.Err()
}

// releaseStoreFile does nothing: lockStoreFile opened no file.
func releaseStoreFile(*os.File) {}

// syncStoreDir does nothing: not every platform can fsync a directory.
func syncStoreDir(string) error { return nil }
