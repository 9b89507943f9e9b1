package driver

import (
	"context"
	"sync"

	"github.com/mcpauth/mcpauth/internal/keyedmutex"
)

// MemoryStore is an in-process Store and Locker: a map behind a mutex. It
// copies values in and out, so no caller ever aliases stored bytes. It is
// safe for concurrent use; its zero value is an empty store. Its Lock
// excludes goroutines of this process only.
type MemoryStore struct {
	mu    sync.Mutex
	recs  map[string]storeEntry
	locks keyedmutex.Mutex
}

var (
	_ Store  = (*MemoryStore)(nil)
	_ Locker = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{recs: make(map[string]storeEntry)}
}

// Get returns a copy of the record for key, or ErrNotFound.
func (s *MemoryStore) Get(ctx context.Context, key string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	if err := CheckStoreKey(key); err != nil {
		return Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.recs[key]
	if !ok {
		return Record{}, ErrNotFound
	}
	return Record{Key: key, Value: cloneValue(e.value), Version: e.version}, nil
}

// Put stores a copy of value if the stored version is ifVersion (0: none).
func (s *MemoryStore) Put(ctx context.Context, key string, value []byte, ifVersion uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := CheckStoreKey(key); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs == nil {
		s.recs = make(map[string]storeEntry)
	}
	return applyPut(s.recs, key, value, ifVersion)
}

// Delete removes the record if its version is ifVersion (0: any).
func (s *MemoryStore) Delete(ctx context.Context, key string, ifVersion uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckStoreKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := applyDelete(s.recs, key, ifVersion)
	return err
}

// Lock takes the in-process lock named key, waiting until it is free or ctx
// is done.
func (s *MemoryStore) Lock(ctx context.Context, key string) (func(), error) {
	if err := CheckStoreKey(key); err != nil {
		return nil, err
	}
	return s.locks.Lock(ctx, key)
}
