package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpauth/mcpauth/driver"
)

// Run runs the whole suite against stores made by open.
func Run(t *testing.T, open func(t *testing.T) driver.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) driver.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutCreates", testPutCreates},
		{"PutSequence", testPutSequence},
		{"PutConflict", testPutConflict},
		{"Delete", testDelete},
		{"DeleteConflict", testDeleteConflict},
		{"CopiesValues", testCopiesValues},
		{"Keys", testKeys},
		{"InvalidKeys", testInvalidKeys},
		{"Values", testValues},
		{"CanceledContext", testCanceledContext},
		{"NoSecretsInErrors", testNoSecretsInErrors},
		{"ConcurrentCAS", testConcurrentCAS},
		{"Model", testModel},
		{"Locker", testLocker},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// mustGet returns the record for key, failing the test on any error.
func mustGet(t testing.TB, s driver.Store, key string) driver.Record {
	t.Helper()
	r, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return r
}

// mustPut writes value, failing the test unless it gets version want.
func mustPut(t testing.TB, s driver.Store, key string, value []byte, ifVersion, want uint64) {
	t.Helper()
	got, err := s.Put(context.Background(), key, value, ifVersion)
	if err != nil {
		t.Fatalf("Put(%q, ifVersion %d): %v", key, ifVersion, err)
	}
	if got != want {
		t.Fatalf("Put(%q, ifVersion %d) = version %d, want %d", key, ifVersion, got, want)
	}
}

// wantMissing fails the test unless key has no record.
func wantMissing(t testing.TB, s driver.Store, key string) {
	t.Helper()
	r, err := s.Get(context.Background(), key)
	if !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("Get(%q) = %v, %v; want ErrNotFound", key, r, err)
	}
}

// wantRecord fails the test unless key holds exactly value at version.
func wantRecord(t testing.TB, s driver.Store, key string, value []byte, version uint64) {
	t.Helper()
	got := mustGet(t, s, key)
	want := driver.Record{Key: key, Value: value, Version: version}
	if diff := cmp.Diff(want, got, cmp.Comparer(bytes.Equal)); diff != "" {
		t.Fatalf("Get(%q) mismatch (-want +got):\n%s", key, diff)
	}
}

// wantConflict fails the test unless err is a *ConflictError for key with
// the given versions whose Current is cur (nil: no record).
func wantConflict(t testing.TB, err error, key string, want, have uint64, cur *driver.Record) {
	t.Helper()
	var ce *driver.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *driver.ConflictError", err)
	}
	wantErr := &driver.ConflictError{Key: key, Want: want, Have: have, Current: cur}
	if diff := cmp.Diff(wantErr, ce, cmp.Comparer(bytes.Equal)); diff != "" {
		t.Fatalf("ConflictError mismatch (-want +got):\n%s", diff)
	}
}

func testGetMissing(t *testing.T, open func(t *testing.T) driver.Store) {
	s := open(t)
	wantMissing(t, s, "missing")
	mustPut(t, s, "present", []byte("x"), 0, 1)
	wantMissing(t, s, "missing")
	wantMissing(t, s, "presen")
}

func testPutCreates(t *testing.T, open func(t *testing.T) driver.Store) {
	s := open(t)
	mustPut(t, s, "k", []byte("v1"), 0, 1)
	wantRecord(t, s, "k", []byte("v1"), 1)
}

func testPutSequence(t *testing.T, open func(t *testing.T) driver.Store) {
	s := open(t)
	for v := uint64(0); v < 5; v++ {
		mustPut(t, s, "k", fmt.Appendf(nil, "value %d", v+1), v, v+1)
		wantRecord(t, s, "k", fmt.Appendf(nil, "value %d", v+1), v+1)
	}
}

func testPutConflict(t *testing.T, open func(t *testing.T) driver.Store) {
	ctx := context.Background()
	s := open(t)
	mustPut(t, s, "k", []byte("one"), 0, 1)
	mustPut(t, s, "k", []byte("two"), 1, 2)
	cur := &driver.Record{Key: "k", Value: []byte("two"), Version: 2}

	for _, stale := range []uint64{0, 1, 3, 100} {
		_, err := s.Put(ctx, "k", []byte("lost"), stale)
		wantConflict(t, err, "k", stale, 2, cur)
	}
	wantRecord(t, s, "k", []byte("two"), 2)

	// A version for a key that has no record.
	_, err := s.Put(ctx, "none", []byte("lost"), 1)
	wantConflict(t, err, "none", 1, 0, nil)
	wantMissing(t, s, "none")
}

func testDelete(t *testing.T, open func(t *testing.T) driver.Store) {
	ctx := context.Background()
	s := open(t)

	// Deleting nothing, unconditionally, is not an error.
	if err := s.Delete(ctx, "k", 0); err != nil {
		t.Fatalf("Delete(missing, 0): %v", err)
	}

	mustPut(t, s, "k", []byte("one"), 0, 1)
	mustPut(t, s, "k", []byte("two"), 1, 2)
	mustPut(t, s, "other", []byte("stays"), 0, 1)
	if err := s.Delete(ctx, "k", 2); err != nil {
		t.Fatalf("Delete(k, 2): %v", err)
	}
	wantMissing(t, s, "k")
	wantRecord(t, s, "other", []byte("stays"), 1)

	// Versions start over after a delete.
	mustPut(t, s, "k", []byte("again"), 0, 1)
	wantRecord(t, s, "k", []byte("again"), 1)

	// 0 deletes whatever is there.
	mustPut(t, s, "k", []byte("again 2"), 1, 2)
	if err := s.Delete(ctx, "k", 0); err != nil {
		t.Fatalf("Delete(k, 0): %v", err)
	}
	wantMissing(t, s, "k")
	if err := s.Delete(ctx, "k", 0); err != nil {
		t.Fatalf("Delete(k, 0) again: %v", err)
	}
	wantRecord(t, s, "other", []byte("stays"), 1)
}

func testDeleteConflict(t *testing.T, open func(t *testing.T) driver.Store) {
	ctx := context.Background()
	s := open(t)
	mustPut(t, s, "k", []byte("one"), 0, 1)
	mustPut(t, s, "k", []byte("two"), 1, 2)
	cur := &driver.Record{Key: "k", Value: []byte("two"), Version: 2}
	for _, stale := range []uint64{1, 3} {
		wantConflict(t, s.Delete(ctx, "k", stale), "k", stale, 2, cur)
	}
	wantRecord(t, s, "k", []byte("two"), 2)

	// A version for a key that has no record (deleted meanwhile).
	wantConflict(t, s.Delete(ctx, "none", 4), "none", 4, 0, nil)
}

func testCopiesValues(t *testing.T, open func(t *testing.T) driver.Store) {
	ctx := context.Background()
	s := open(t)

	v := []byte("original")
	mustPut(t, s, "k", v, 0, 1)
	copy(v, "MUTATED!")
	wantRecord(t, s, "k", []byte("original"), 1)

	// A slice with spare capacity must not be shared either.
	v2 := make([]byte, 0, 64)
	v2 = append(v2, "second"...)
	mustPut(t, s, "k", v2, 1, 2)
	for i, full := 0, v2[:cap(v2)]; i < len(full); i++ {
		full[i] = 'X'
	}
	wantRecord(t, s, "k", []byte("second"), 2)

	r := mustGet(t, s, "k")
	copy(r.Value, "XXXXXX")
	r.Value = append(r.Value[:0], "appended"...)
	wantRecord(t, s, "k", []byte("second"), 2)

	_, err := s.Put(ctx, "k", []byte("lost"), 1)
	var ce *driver.ConflictError
	if !errors.As(err, &ce) || ce.Current == nil {
		t.Fatalf("Put(stale) = %v, want *ConflictError with Current", err)
	}
	copy(ce.Current.Value, "XXXXXX")
	wantRecord(t, s, "k", []byte("second"), 2)

	err = s.Delete(ctx, "k", 1)
	if !errors.As(err, &ce) || ce.Current == nil {
		t.Fatalf("Delete(stale) = %v, want *ConflictError with Current", err)
	}
	copy(ce.Current.Value, "XXXXXX")
	wantRecord(t, s, "k", []byte("second"), 2)
}

// oddKeys are keys an implementation might mangle: they must all be
// distinct, independent records.
var oddKeys = []string{
	"tokens/https://mcp.example.com/mcp",
	"client/https://auth.example.com",
	"with space",
	`quote"and\backslash`,
	"new\nline\ttab",
	"ключ/🔑",
	"../../etc/passwd",
	"k.lock",
	"K",
	"k",
	strings.Repeat("long", 256),
}

func testKeys(t *testing.T, open func(t *testing.T) driver.Store) {
	s := open(t)
	for i, k := range oddKeys {
		mustPut(t, s, k, fmt.Appendf(nil, "value %d", i), 0, 1)
	}
	for i, k := range oddKeys {
		wantRecord(t, s, k, fmt.Appendf(nil, "value %d", i), 1)
	}
}

func testInvalidKeys(t *testing.T, open func(t *testing.T) driver.Store) {
	ctx := context.Background()
	s := open(t)
	for _, k := range []string{"", "bad\xffutf8", "nul\x00byte"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, driver.ErrInvalidKey) {
			t.Errorf("Get(%q) error = %v, want ErrInvalidKey", k, err)
		}
		if _, err := s.Put(ctx, k, []byte("v"), 0); !errors.Is(err, driver.ErrInvalidKey) {
			t.Errorf("Put(%q) error = %v, want ErrInvalidKey", k, err)
		}
		if err := s.Delete(ctx, k, 0); !errors.Is(err, driver.ErrInvalidKey) {
			t.Errorf("Delete(%q) error = %v, want ErrInvalidKey", k, err)
		}
		if l, ok := s.(driver.Locker); ok {
			if unlock, err := l.Lock(ctx, k); !errors.Is(err, driver.ErrInvalidKey) {
				if unlock != nil {
					unlock()
				}
				t.Errorf("Lock(%q) error = %v, want ErrInvalidKey", k, err)
			}
		}
	}
}

func testValues(t *testing.T, open func(t *testing.T) driver.Store) {
	s := open(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16)
	values := map[string][]byte{
		"nil":    nil,
		"empty":  {},
		"binary": all,
		"json":   []byte(`{"access_token":"x","n":1}`),
		"big":    big,
	}
	for k, v := range values {
		mustPut(t, s, k, v, 0, 1)
	}
	for k, v := range values {
		got := mustGet(t, s, k)
		if !bytes.Equal(got.Value, v) || got.Version != 1 {
			t.Errorf("Get(%q) = %d bytes at version %d, want %d bytes at version 1", k, len(got.Value), got.Version, len(v))
		}
	}
}

func testCanceledContext(t *testing.T, open func(t *testing.T) driver.Store) {
	s := open(t)
	mustPut(t, s, "k", []byte("v"), 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get(canceled) error = %v, want context.Canceled", err)
	}
	if _, err := s.Put(ctx, "k", []byte("new"), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Put(canceled) error = %v, want context.Canceled", err)
	}
	if _, err := s.Put(ctx, "new", []byte("new"), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Put(canceled, new key) error = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, "k", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete(canceled) error = %v, want context.Canceled", err)
	}
	wantRecord(t, s, "k", []byte("v"), 1)
	wantMissing(t, s, "new")
}

func testNoSecretsInErrors(t *testing.T, open func(t *testing.T) driver.Store) {
	ctx := context.Background()
	s := open(t)
	const secret = "rt-SECRET-9f8e7d6c"
	mustPut(t, s, "k", []byte(secret), 0, 1)
	_, perr := s.Put(ctx, "k", []byte(secret+"-new"), 0)
	derr := s.Delete(ctx, "k", 7)
	for _, err := range []error{perr, derr} {
		var ce *driver.ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v, want *ConflictError", err)
		}
		for _, out := range []string{
			err.Error(),
			fmt.Sprintf("%v|%+v|%#v", err, err, err),
			fmt.Sprintf("%v|%+v|%#v", *ce, *ce, *ce),
			fmt.Sprintf("%v|%+v|%#v|%s", ce.Current, ce.Current, ce.Current, ce.Current),
			fmt.Sprintf("%v|%+v|%#v", *ce.Current, *ce.Current, *ce.Current),
		} {
			if strings.Contains(out, secret) {
				t.Errorf("formatted error reveals the stored value: %s", out)
			}
		}
	}
	r := mustGet(t, s, "k")
	if out := fmt.Sprintf("%v|%+v|%#v|%s", r, r, r, r); strings.Contains(out, secret) {
		t.Errorf("formatted record reveals its value: %s", out)
	}
}
