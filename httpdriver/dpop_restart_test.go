package httpdriver_test

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
)

// TestDPoPKeySurvivesRestart: the default signer keeps the DPoP key beside
// the tokens (RFC 9449 §2), so a restarted client proves possession of the
// key its stored token is bound to: no new authorization, no refresh.
func TestDPoPKeySurvivesRestart(t *testing.T) {
	w := startWorld(t, testworld.Options{DPoP: true, DCR: true})
	path := filepath.Join(t.TempDir(), "store.json")
	open := func() *driver.FileStore {
		s, err := driver.OpenFileStore(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := newTransport(t, worldConfig(w), httpdriver.Options{Store: open()})
	mustPost(t, &http.Client{Transport: first}, w.MCPURL(), rpcBody(1))
	first.Close()
	before := w.Stats()

	second := newTransport(t, worldConfig(w), httpdriver.Options{Store: open()})
	mustPost(t, &http.Client{Transport: second}, w.MCPURL(), rpcBody(2))
	after := w.Stats()
	if after.Authorizations != before.Authorizations || len(after.TokenRequests) != len(before.TokenRequests) ||
		after.TokenRequests["refresh_token"] != before.TokenRequests["refresh_token"] {
		t.Errorf("restart made new grants: before %+v after %+v", before, after)
	}
	if after.Unauthorized != before.Unauthorized {
		t.Errorf("the restarted client's proof was refused (%d more 401s)", after.Unauthorized-before.Unauthorized)
	}
}
