package httpdriver_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
)

// TestWarmStart: a second transport over the same store (a restarted
// program) uses the stored credential at once: no discovery, no
// registration, no authorization, no token request, no 401.
func TestWarmStart(t *testing.T) {
	stores := []struct {
		name string
		open func(t *testing.T) (first, second driver.Store)
	}{
		{"memory", func(t *testing.T) (driver.Store, driver.Store) {
			s := driver.NewMemoryStore()
			return s, s
		}},
		{"file", func(t *testing.T) (driver.Store, driver.Store) {
			path := filepath.Join(t.TempDir(), "mcpauth.json")
			a, err := driver.OpenFileStore(path)
			if err != nil {
				t.Fatalf("OpenFileStore: %v", err)
			}
			// A second handle on the same file, as a restarted program has.
			b, err := driver.OpenFileStore(path)
			if err != nil {
				t.Fatalf("OpenFileStore: %v", err)
			}
			return a, b
		}},
	}
	worlds := []struct {
		name string
		opts testworld.Options
	}{
		{"PRMHeader/DCR", testworld.Options{DCR: true}},
		{"PRMNone/MetadataNone/DCR", testworld.Options{PRM: testworld.PRMNone, Metadata: testworld.MetadataNone, DCR: true}},
		{"CIMD", testworld.Options{CIMD: true}},
	}
	for _, st := range stores {
		for _, wc := range worlds {
			t.Run(st.name+"/"+wc.name, func(t *testing.T) {
				w := startWorld(t, wc.opts)
				cfg := worldConfig(w)
				if wc.opts.CIMD {
					cfg.ClientMetadataURL = "https://client.example/mcpauth.json"
				}
				first, second := st.open(t)

				tr1 := newTransport(t, cfg, httpdriver.Options{Store: first})
				listAndEcho(t, connectSDK(t, w, tr1))
				tr1.Close()
				before := w.Stats()
				if before.Authorizations != 1 {
					t.Fatalf("first run: %d authorizations, want 1", before.Authorizations)
				}

				tr2 := newTransport(t, cfg, httpdriver.Options{Store: second, UserAgent: failingAgent{t}})
				listAndEcho(t, connectSDK(t, w, tr2))
				after := w.Stats()
				if d := after.PRMRequests - before.PRMRequests; d != 0 {
					t.Errorf("warm start made %d PRM requests", d)
				}
				if d := after.MetadataRequests - before.MetadataRequests; d != 0 {
					t.Errorf("warm start made %d metadata requests", d)
				}
				if d := after.Registrations - before.Registrations; d != 0 {
					t.Errorf("warm start made %d registrations", d)
				}
				if d := after.Authorizations - before.Authorizations; d != 0 {
					t.Errorf("warm start made %d authorizations", d)
				}
				for grant, n := range after.TokenRequests {
					if d := n - before.TokenRequests[grant]; d != 0 {
						t.Errorf("warm start made %d %q token requests", d, grant)
					}
				}
				if d := after.Unauthorized - before.Unauthorized; d != 0 {
					t.Errorf("warm start got %d 401 answers", d)
				}
				if after.Authorized <= before.Authorized {
					t.Errorf("warm start made no authorized request")
				}
				if got, want := tr2.Session().Snapshot().Credential.AccessToken, tr1.Session().Snapshot().Credential.AccessToken; got != want {
					t.Errorf("warm start does not use the stored credential")
				}
			})
		}
	}
}

// failingAgent fails the test if an authorization is attempted.
type failingAgent struct{ t *testing.T }

func (a failingAgent) Authorize(_ context.Context, _, _ string) (string, error) {
	a.t.Errorf("unexpected authorization")
	return "", errors.New("test: no authorization expected")
}
