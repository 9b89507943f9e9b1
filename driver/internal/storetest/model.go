package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"pgregory.net/rapid"

	"github.com/mcpauth/mcpauth/driver"
)

// modelKeys is the small key space the model test draws from, so that
// operations collide often.
var modelKeys = []string{"a", "b", "tokens/https://mcp.example.com/", "ключ"}

type modelRecord struct {
	value   []byte
	version uint64
}

// testModel runs random Put/Get/Delete sequences against the store and a
// map, and requires identical answers.
func testModel(t *testing.T, open func(t *testing.T) driver.Store) {
	rapid.Check(t, func(rt *rapid.T) {
		s := open(t)
		ctx := context.Background()
		model := make(map[string]modelRecord)

		// version draws the ifVersion for key: usually the right one,
		// otherwise 0 or a near miss.
		version := func(rt *rapid.T, key string) uint64 {
			cur := model[key].version
			return rapid.OneOf(
				rapid.Just(cur),
				rapid.Just(uint64(0)),
				rapid.Uint64Range(0, cur+2),
			).Draw(rt, "ifVersion")
		}
		wantConflict := func(rt *rapid.T, op string, err error, key string, want uint64) {
			var ce *driver.ConflictError
			if !errors.As(err, &ce) {
				rt.Fatalf("%s(%q, %d) = %v, want *ConflictError", op, key, want, err)
			}
			m, ok := model[key]
			if ce.Key != key || ce.Want != want || ce.Have != m.version {
				rt.Fatalf("%s: ConflictError{Key %q, Want %d, Have %d}, want {%q, %d, %d}", op, ce.Key, ce.Want, ce.Have, key, want, m.version)
			}
			switch {
			case !ok && ce.Current != nil:
				rt.Fatalf("%s: ConflictError.Current = %v, want nil", op, ce.Current)
			case ok && (ce.Current == nil || ce.Current.Key != key || ce.Current.Version != m.version || !bytes.Equal(ce.Current.Value, m.value)):
				rt.Fatalf("%s: ConflictError.Current = %v, want version %d with the stored value", op, ce.Current, m.version)
			}
		}

		rt.Repeat(map[string]func(*rapid.T){
			"put": func(rt *rapid.T) {
				key := rapid.SampledFrom(modelKeys).Draw(rt, "key")
				value := rapid.SliceOfN(rapid.Byte(), 0, 16).Draw(rt, "value")
				ifv := version(rt, key)
				got, err := s.Put(ctx, key, value, ifv)
				if m := model[key]; m.version != ifv {
					wantConflict(rt, "Put", err, key, ifv)
					return
				}
				if err != nil || got != ifv+1 {
					rt.Fatalf("Put(%q, %d) = %d, %v; want %d, nil", key, ifv, got, err, ifv+1)
				}
				model[key] = modelRecord{value: bytes.Clone(value), version: got}
			},
			"delete": func(rt *rapid.T) {
				key := rapid.SampledFrom(modelKeys).Draw(rt, "key")
				ifv := version(rt, key)
				err := s.Delete(ctx, key, ifv)
				if m, ok := model[key]; ifv != 0 && (!ok || m.version != ifv) {
					wantConflict(rt, "Delete", err, key, ifv)
					return
				}
				if err != nil {
					rt.Fatalf("Delete(%q, %d) = %v, want nil", key, ifv, err)
				}
				delete(model, key)
			},
			"get": func(rt *rapid.T) {
				key := rapid.SampledFrom(modelKeys).Draw(rt, "key")
				checkKey(rt, ctx, s, model, key)
			},
			"": func(rt *rapid.T) {
				for _, key := range modelKeys {
					checkKey(rt, ctx, s, model, key)
				}
			},
		})
	})
}

func checkKey(rt *rapid.T, ctx context.Context, s driver.Store, model map[string]modelRecord, key string) {
	r, err := s.Get(ctx, key)
	m, ok := model[key]
	switch {
	case !ok:
		if !errors.Is(err, driver.ErrNotFound) {
			rt.Fatalf("Get(%q) = %v, %v; want ErrNotFound", key, r, err)
		}
	case err != nil:
		rt.Fatalf("Get(%q): %v; want version %d", key, err, m.version)
	case r.Key != key || r.Version != m.version || !bytes.Equal(r.Value, m.value):
		rt.Fatalf("Get(%q) = %v with value %q; want version %d with value %q", key, r, r.Value, m.version, m.value)
	}
}
