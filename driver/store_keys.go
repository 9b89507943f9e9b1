package driver

import (
	"context"
	"sort"
	"strings"
)

// Lister is implemented by stores that can list their keys: MemoryStore,
// FileStore and pgstore.Store. Store itself has no listing (the session
// never needs one); tools that show or remove what a store holds, such as
// the mcpauth command, do.
type Lister interface {
	// Keys returns the keys that start with prefix ("" for all), sorted
	// in byte order. It returns ctx.Err() (possibly wrapped) without
	// touching the store when ctx is already done.
	Keys(ctx context.Context, prefix string) ([]string, error)
}

var (
	_ Lister = (*MemoryStore)(nil)
	_ Lister = (*FileStore)(nil)
)

// Keys lists the keys that start with prefix, in byte order.
func (s *MemoryStore) Keys(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return keysOf(s.recs, prefix), nil
}

// Keys lists the keys that start with prefix, in byte order. It reads the
// file as Get does: without locking, and a file that does not parse is
// moved aside under the write lock and reported as *CorruptStoreError (a
// file with a newer format version gives an ordinary error, the file
// untouched).
func (s *FileStore) Keys(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	recs, err := s.read()
	if _, bad := err.(*badStoreFileError); bad {
		// Move it aside under the lock, unless a writer fixed it meanwhile.
		release, lerr := s.lockWrites(ctx)
		if lerr != nil {
			return nil, lerr
		}
		recs, err = s.loadLocked()
		release()
	}
	if err != nil {
		return nil, err
	}
	return keysOf(recs, prefix), nil
}

// keysOf returns the sorted keys of m that start with prefix.
func keysOf(m map[string]storeEntry, prefix string) []string {
	out := []string{}
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
