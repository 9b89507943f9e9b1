package machine

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mcpauth/mcpauth/effects"
	"pgregory.net/rapid"
)

// TestRequestsMatchesMap holds the persistent trie to a plain map over random
// operations, and checks that old versions never change (persistence).
func TestRequestsMatchesMap(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var r Requests
		model := map[effects.RequestID]RequestInfo{}
		var history []Requests
		var models []map[effects.RequestID]RequestInfo
		ids := rapid.SampledFrom([]effects.RequestID{0, 1, 2, 31, 32, 33, 1024, 1 << 40, 1<<40 + 32, ^effects.RequestID(0)})
		for i := rapid.IntRange(0, 60).Draw(t, "ops"); i > 0; i-- {
			id := ids.Draw(t, "id")
			if rapid.Bool().Draw(t, "add") {
				info := RequestInfo{StepUps: rapid.IntRange(0, 3).Draw(t, "stepups"), Parked: rapid.Bool().Draw(t, "parked")}
				r = r.With(id, info)
				model[id] = info
			} else {
				r = r.Without(id)
				delete(model, id)
			}
			snapshot := make(map[effects.RequestID]RequestInfo, len(model))
			for k, v := range model {
				snapshot[k] = v
			}
			history = append(history, r)
			models = append(models, snapshot)
		}
		for i, h := range history {
			if diff := cmp.Diff(models[i], h.Map()); diff != "" {
				t.Fatalf("version %d differs from the model (-want +got):\n%s", i, diff)
			}
			if h.Len() != len(models[i]) {
				t.Fatalf("version %d: Len %d, want %d", i, h.Len(), len(models[i]))
			}
			parked := 0
			for _, info := range models[i] {
				if info.Parked {
					parked++
				}
			}
			if h.Parked() != parked {
				t.Fatalf("version %d: Parked %d, want %d", i, h.Parked(), parked)
			}
			for id, want := range models[i] {
				if got, ok := h.Get(id); !ok || got != want {
					t.Fatalf("version %d: Get(%d) = %v, %v; want %v", i, id, got, ok, want)
				}
			}
		}
	})
}
