package httpdriver_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mcpauth/mcpauth/httpdriver"
)

// TestOpenBrowserFallsBackToPrinting: with no browser opener to start, the
// user is asked to open the URL themselves.
func TestOpenBrowserFallsBackToPrinting(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no xdg-open, open or rundll32 here
	var out bytes.Buffer
	old := httpdriver.Stderr
	httpdriver.Stderr = &out
	t.Cleanup(func() { httpdriver.Stderr = old })
	const u = "https://as.example/authorize?client_id=c1"
	if err := httpdriver.OpenBrowser(u); err != nil {
		t.Fatalf("OpenBrowser: %v", err)
	}
	if !strings.Contains(out.String(), u) {
		t.Errorf("printed %q, want the URL", out.String())
	}
}
