package driver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mcpauth/mcpauth/internal/keyedmutex"
)

// fileFormatVersion is the "version" a FileStore writes and reads.
const fileFormatVersion = 1

// FileStore is a Store and Locker kept in one JSON file, shareable by
// several processes on one machine.
//
// # File format
//
// The file (mode 0600; its directory is created 0700 when missing) holds
//
//	{
//	  "version": 1,
//	  "records": {
//	    "<key>": {"version": <N>, "value": "<standard base64 of the value bytes>"}
//	  }
//	}
//
// "version" at the top is the format version; a file with a larger one was
// written by a newer mcpauth and is refused (with an ordinary error, the
// file untouched). Record versions are at least 1. Values are secrets and
// base64 is no protection: the file's mode is what protects them.
//
// # Writes
//
// Put and Delete read, modify and write the whole file under an exclusive
// flock(2) on the sibling file <path>.lock, re-reading the file after the
// lock is taken; one that changes nothing (a lost compare-and-swap,
// deleting nothing) writes nothing. The new content goes to a temporary file in the same
// directory (.<name>.tmp-<digits>), which is fsynced, renamed over the
// store file, and then the directory is fsynced. A crash at any point
// leaves either the old or the new content; a temporary file a crash left
// behind is removed by the next OpenFileStore. Get reads without locking:
// the rename makes every read see a whole file.
//
// # Corrupt files
//
// A file that does not parse is never overwritten or deleted. The first
// operation that meets it (OpenFileStore, Get, Put or Delete) renames it
// to <path>.corrupt-<unix nanoseconds>[-<n>] and fails with a
// *CorruptStoreError naming both paths; the store is then empty, and every
// later operation, in this process or another, works on the empty store.
// The error is reported exactly once, to that operation: OpenFileStore
// returns it together with a usable (empty) store, Put and Delete return
// it without having written anything, so the caller may simply retry. If
// the file cannot be moved aside, every operation keeps returning a
// *CorruptStoreError with an empty MovedTo.
//
// # Locks
//
// Lock(ctx, key) flocks <path>.<first 16 hex digits of sha256(key)>.lock on
// a descriptor of its own, after an in-process per-key mutex, so it
// excludes other processes and other goroutines alike; it polls every few
// milliseconds so that ctx can cancel the wait. Lock files stay on disk
// (deleting a lock file would race with its next user). On platforms
// without flock (see store_lock_other.go) writes and Lock exclude only
// within the process, and a store file must not be shared between
// processes there.
//
// A FileStore is safe for concurrent use. Make one with OpenFileStore; the
// zero value is not usable.
type FileStore struct {
	path     string // absolute
	dir      string
	base     string
	lockPath string
	writeMu  chan struct{}    // this process's writers, in turn; honours ctx
	locks    keyedmutex.Mutex // this process's Lock holders, per key
}

var (
	_ Store  = (*FileStore)(nil)
	_ Locker = (*FileStore)(nil)
)

// OpenFileStore opens the store file at path, creating its directory (mode
// 0700) if needed; a missing file is an empty store, and the file is only
// created by the first write. It removes temporary files a crashed writer
// left behind.
//
// If the file is corrupt, OpenFileStore moves it aside and returns a
// usable, empty store together with a *CorruptStoreError: check with
// errors.As, warn, and carry on, or treat it as fatal. For any other error
// the store is nil.
func OpenFileStore(path string) (*FileStore, error) {
	if path == "" {
		return nil, errors.New("driver: empty store file path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("driver: store file path: %w", err)
	}
	s := &FileStore{
		path:     abs,
		dir:      filepath.Dir(abs),
		base:     filepath.Base(abs),
		lockPath: abs + ".lock",
		writeMu:  make(chan struct{}, 1),
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("driver: store directory: %w", err)
	}
	release, err := s.lockWrites(context.Background())
	if err != nil {
		return nil, err
	}
	defer release()
	s.removeStaleTemps()
	if _, err := s.loadLocked(); err != nil {
		var ce *CorruptStoreError
		if errors.As(err, &ce) && ce.MovedTo != "" {
			return s, err
		}
		return nil, err
	}
	return s, nil
}

// Path returns the absolute path of the store file.
func (s *FileStore) Path() string { return s.path }

// Get returns the record for key, or ErrNotFound.
func (s *FileStore) Get(ctx context.Context, key string) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	if err := CheckStoreKey(key); err != nil {
		return Record{}, err
	}
	recs, err := s.read()
	if _, bad := err.(*badStoreFileError); bad {
		// Move it aside under the lock, unless a writer fixed it meanwhile.
		release, lerr := s.lockWrites(ctx)
		if lerr != nil {
			return Record{}, lerr
		}
		recs, err = s.loadLocked()
		release()
	}
	if err != nil {
		return Record{}, err
	}
	e, ok := recs[key]
	if !ok {
		return Record{}, ErrNotFound
	}
	return Record{Key: key, Value: e.value, Version: e.version}, nil
}

// Put writes value if the stored version is ifVersion (0: none).
func (s *FileStore) Put(ctx context.Context, key string, value []byte, ifVersion uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := CheckStoreKey(key); err != nil {
		return 0, err
	}
	var v uint64
	err := s.update(ctx, func(recs map[string]storeEntry) (bool, error) {
		var err error
		v, err = applyPut(recs, key, value, ifVersion)
		return err == nil, err
	})
	if err != nil {
		return 0, err
	}
	return v, nil
}

// Delete removes the record if its version is ifVersion (0: any).
func (s *FileStore) Delete(ctx context.Context, key string, ifVersion uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckStoreKey(key); err != nil {
		return err
	}
	return s.update(ctx, func(recs map[string]storeEntry) (bool, error) {
		return applyDelete(recs, key, ifVersion)
	})
}

// Lock takes the lock named key, excluding other processes and goroutines,
// until it is free or ctx is done.
func (s *FileStore) Lock(ctx context.Context, key string) (func(), error) {
	if err := CheckStoreKey(key); err != nil {
		return nil, err
	}
	unlockMem, err := s.locks.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(key))
	f, err := lockStoreFile(ctx, fmt.Sprintf("%s.%x.lock", s.path, sum[:8]))
	if err != nil {
		unlockMem()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			releaseStoreFile(f)
			unlockMem()
		})
	}, nil
}

// update runs one read-modify-write of the file under the write lock; fn
// changes recs and reports whether there is anything to write.
func (s *FileStore) update(ctx context.Context, fn func(recs map[string]storeEntry) (bool, error)) error {
	release, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer release()
	recs, err := s.loadLocked()
	if err != nil {
		return err
	}
	changed, err := fn(recs)
	if err != nil || !changed {
		return err
	}
	return s.writeLocked(recs)
}

// lockWrites takes this process's write turn, then the flock on <path>.lock.
func (s *FileStore) lockWrites(ctx context.Context) (release func(), err error) {
	select {
	case s.writeMu <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f, err := lockStoreFile(ctx, s.lockPath)
	if err != nil {
		<-s.writeMu
		return nil, err
	}
	return func() {
		releaseStoreFile(f)
		<-s.writeMu
	}, nil
}

// storeFileImage is the file's JSON; see FileStore.
type storeFileImage struct {
	Version int                        `json:"version"`
	Records map[string]storeFileRecord `json:"records"`
}

type storeFileRecord struct {
	Version uint64 `json:"version"`
	Value   []byte `json:"value"` // base64 in JSON
}

// badStoreFileError is why a store file does not parse. Its message never
// quotes the file's content.
type badStoreFileError struct{ err error }

func (e *badStoreFileError) Error() string { return e.err.Error() }

// read reads and parses the file without locking; a missing file is an
// empty store. A file that does not parse gives a *badStoreFileError.
func (s *FileStore) read() (map[string]storeEntry, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return make(map[string]storeEntry), nil
	}
	if err != nil {
		return nil, fmt.Errorf("driver: reading store file: %w", err)
	}
	return decodeStoreFile(s.path, b)
}

func decodeStoreFile(path string, b []byte) (map[string]storeEntry, error) {
	var img storeFileImage
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, &badStoreFileError{describeJSONError(err)}
	}
	switch {
	case img.Version > fileFormatVersion:
		return nil, fmt.Errorf("driver: store file %s has format version %d; this build reads version %d and leaves it alone", path, img.Version, fileFormatVersion)
	case img.Version < 1:
		return nil, &badStoreFileError{errors.New("missing or invalid format version")}
	}
	recs := make(map[string]storeEntry, len(img.Records))
	for k, r := range img.Records {
		if CheckStoreKey(k) != nil {
			return nil, &badStoreFileError{errors.New("record with an invalid key")}
		}
		if r.Version == 0 {
			return nil, &badStoreFileError{fmt.Errorf("record %q has version 0", k)}
		}
		recs[k] = storeEntry{value: r.Value, version: r.Version}
	}
	return recs, nil
}

// describeJSONError says where and why JSON failed to parse without
// quoting any of it (encoding/json's messages can quote a character).
func describeJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var b64 base64.CorruptInputError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Errorf("JSON value of the wrong type at byte %d (field %s)", typ.Offset, typ.Field)
		}
		return fmt.Errorf("JSON value of the wrong type at byte %d", typ.Offset)
	case errors.As(err, &b64):
		return errors.New("a value is not valid base64")
	default:
		return errors.New("invalid JSON")
	}
}

// loadLocked reads the file; the caller holds the write lock. A file that
// does not parse is moved aside and reported as *CorruptStoreError.
func (s *FileStore) loadLocked() (map[string]storeEntry, error) {
	recs, err := s.read()
	bad, ok := err.(*badStoreFileError)
	if !ok {
		return recs, err
	}
	moved, merr := moveStoreAside(s.path)
	if merr != nil {
		return nil, &CorruptStoreError{Path: s.path, Err: errors.Join(bad.err, fmt.Errorf("moving it aside: %w", merr))}
	}
	_ = syncStoreDir(s.dir)
	return nil, &CorruptStoreError{Path: s.path, MovedTo: moved, Err: bad.err}
}

// moveStoreAside renames path to a fresh <path>.corrupt-<nanos>[-n], never
// replacing an existing file.
func moveStoreAside(path string) (string, error) {
	stamp := time.Now().UnixNano()
	for i := 0; i < 1000; i++ {
		target := fmt.Sprintf("%s.corrupt-%d", path, stamp)
		if i > 0 {
			target = fmt.Sprintf("%s.corrupt-%d-%d", path, stamp, i)
		}
		// A hard link cannot replace an existing file.
		err := os.Link(path, target)
		if err == nil {
			return target, os.Remove(path)
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		// No hard links here: rename to a name checked to be free. Only
		// holders of the write lock create these names.
		if _, serr := os.Lstat(target); serr == nil {
			continue
		} else if !errors.Is(serr, fs.ErrNotExist) {
			return "", serr
		}
		if err := os.Rename(path, target); err != nil {
			return "", err
		}
		return target, nil
	}
	return "", errors.New("no free name to move the file to")
}

// writeLocked atomically replaces the file with recs; the caller holds the
// write lock.
func (s *FileStore) writeLocked(recs map[string]storeEntry) error {
	img := storeFileImage{Version: fileFormatVersion, Records: make(map[string]storeFileRecord, len(recs))}
	for k, e := range recs {
		img.Records[k] = storeFileRecord{Version: e.version, Value: e.value}
	}
	b, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return fmt.Errorf("driver: encoding store file: %w", err)
	}
	b = append(b, '\n')

	if err := s.replaceFile(b); err != nil {
		return fmt.Errorf("driver: writing store file: %w", err)
	}
	// The new content is in place; only its durability is in question now.
	if err := syncStoreDir(s.dir); err != nil {
		return fmt.Errorf("driver: syncing store directory: %w", err)
	}
	return nil
}

// replaceFile writes b to a fresh temporary file in the store's directory,
// fsyncs it and renames it over the store file. On failure it removes the
// temporary file and the store file is untouched.
func (s *FileStore) replaceFile(b []byte) (err error) {
	f, err := os.CreateTemp(s.dir, "."+s.base+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				f.Close()
			}
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(b); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	closed = true
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// removeStaleTemps deletes temporary files that crashed writers left; the
// caller holds the write lock, so no live writer owns one.
func (s *FileStore) removeStaleTemps() {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	prefix := "." + s.base + ".tmp-"
	for _, e := range ents {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		_ = os.Remove(filepath.Join(s.dir, name))
	}
}
