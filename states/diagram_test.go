package states

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite docs/state-machine.md from Table")

// TestDiagramIsCurrent fails when docs/state-machine.md no longer matches
// Table; `make docs` (go test ./states -run TestDiagramIsCurrent -update)
// rewrites it.
func TestDiagramIsCurrent(t *testing.T) {
	path := filepath.Join("..", "docs", "state-machine.md")
	want := Diagram()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v (run make docs)", path, err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("%s is stale; run make docs (-want +got):\n%s", path, diff)
	}
}
