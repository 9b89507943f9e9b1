package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Record is one stored value with its version. Versions start at 1 and
// grow by exactly 1 per write. A key that is deleted and written again
// starts over at version 1.
type Record struct {
	Key     string
	Value   []byte // secret: never logged, never put in an error
	Version uint64
}

// String describes the record without its value, which may be a secret.
func (r Record) String() string {
	return fmt.Sprintf("driver.Record{Key: %q, Version: %d, Value: <%d bytes redacted>}", r.Key, r.Version, len(r.Value))
}

// GoString is String, so that %#v does not print the value either.
func (r Record) GoString() string { return r.String() }

// ErrNotFound is returned (possibly wrapped; use errors.Is) by Get when the
// key has no record.
var ErrNotFound = errors.New("driver: no stored record")

// ErrInvalidKey is returned (possibly wrapped; use errors.Is) by every Store
// and Locker method given a key that is empty, not valid UTF-8, or holds a
// NUL byte. Keys are not secret: they appear in errors and in files, so
// callers must never put a secret in a key.
var ErrInvalidKey = errors.New("driver: invalid store key")

// ConflictError reports a compare-and-swap that lost: the stored version
// was not the expected one.
type ConflictError struct {
	Key  string
	Want uint64 // the ifVersion the caller passed
	Have uint64 // the stored version; 0 when there is no record
	// Current is a copy of the stored record, nil when there is none (it
	// was deleted or never written). It is the caller's to keep.
	Current *Record
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("driver: version casConflict on %q: want version %d, have %d", e.Key, e.Want, e.Have)
}

// CorruptStoreError reports a store file that cannot be read. The file has
// been moved aside to MovedTo, so its content is kept for inspection and is
// never overwritten silently; the store continues empty. MovedTo is empty
// when moving the file aside failed: then the file is still in place, Err
// says why, and every operation keeps failing until someone repairs or
// removes it.
type CorruptStoreError struct {
	Path    string
	MovedTo string
	Err     error // what was wrong; it never quotes the file's content
}

func (e *CorruptStoreError) Error() string {
	if e.MovedTo == "" {
		return fmt.Sprintf("driver: corrupt store file %s (could not move it aside): %v", e.Path, e.Err)
	}
	return fmt.Sprintf("driver: corrupt store file %s moved aside to %s, store starts empty: %v", e.Path, e.MovedTo, e.Err)
}

func (e *CorruptStoreError) Unwrap() error { return e.Err }

// Store is a versioned key-value store for credentials, registrations and
// discovery records. Values contain secrets: implementations never log them
// or put them in errors. Every method returns ctx.Err() (possibly wrapped)
// without touching the store when ctx is already done, and ErrInvalidKey for
// a key that is empty, not valid UTF-8 or holds a NUL byte.
//
// driver/internal/storetest is the conformance suite every implementation
// must pass.
type Store interface {
	// Get returns the record for key, or ErrNotFound.
	Get(ctx context.Context, key string) (Record, error)
	// Put writes value if the stored version is ifVersion (0: no record may
	// exist) and returns the new version, ifVersion+1; otherwise it returns
	// *ConflictError and changes nothing. The store keeps its own copy of
	// value.
	Put(ctx context.Context, key string, value []byte, ifVersion uint64) (uint64, error)
	// Delete removes the record if its version is ifVersion (0: delete
	// whatever is there; deleting nothing is not an error); otherwise it
	// returns *ConflictError and changes nothing.
	Delete(ctx context.Context, key string, ifVersion uint64) error
}

// Locker is implemented by stores shared between processes: Lock takes an
// exclusive advisory lock named key (used around refresh, so two processes
// never redeem the same refresh token), honouring ctx cancellation; the
// returned func releases it and may be called more than once. The lock is
// advisory: it does not stop Put or Delete, it only excludes other Lock
// calls with the same key.
type Locker interface {
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

// CheckStoreKey rejects keys not every implementation can store
// faithfully: JSON and PostgreSQL text both mangle or refuse invalid UTF-8,
// and PostgreSQL text refuses NUL. Store implementations call it first.
func CheckStoreKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidKey)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%w: contains NUL", ErrInvalidKey)
	}
	return nil
}

// storeEntry is a stored value and its version, as both built-in stores
// keep it.
type storeEntry struct {
	value   []byte
	version uint64
}

func cloneValue(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

func casConflict(key string, want uint64, cur *storeEntry) *ConflictError {
	e := &ConflictError{Key: key, Want: want}
	if cur != nil {
		e.Have = cur.version
		e.Current = &Record{Key: key, Value: cloneValue(cur.value), Version: cur.version}
	}
	return e
}

// applyPut is Put's compare-and-swap on a map; it copies value in.
func applyPut(m map[string]storeEntry, key string, value []byte, ifVersion uint64) (uint64, error) {
	cur, ok := m[key]
	if !ok {
		if ifVersion != 0 {
			return 0, casConflict(key, ifVersion, nil)
		}
	} else if cur.version != ifVersion {
		return 0, casConflict(key, ifVersion, &cur)
	}
	v := ifVersion + 1
	m[key] = storeEntry{value: cloneValue(value), version: v}
	return v, nil
}

// applyDelete is Delete's compare-and-swap on a map; it reports whether m
// changed.
func applyDelete(m map[string]storeEntry, key string, ifVersion uint64) (bool, error) {
	cur, ok := m[key]
	switch {
	case !ok && ifVersion == 0:
		return false, nil
	case !ok:
		return false, casConflict(key, ifVersion, nil)
	case ifVersion != 0 && cur.version != ifVersion:
		return false, casConflict(key, ifVersion, &cur)
	}
	delete(m, key)
	return true, nil
}
