package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/states"
)

func TestDiagramIsTheTable(t *testing.T) {
	te := newTestEnv(t)
	r := mustRun(t, te, "diagram")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if lines[0] != "stateDiagram-v2" || strings.TrimSpace(lines[1]) != "[*] --> "+string(states.Initial) {
		t.Fatalf("not a state diagram:\n%s", r.stdout)
	}
	edge := regexp.MustCompile(`^    (\w+) --> (\w+): (\w+)$`)
	pairs := 0
	for _, e := range states.Table {
		pairs += len(e.Src)
	}
	for _, l := range lines[2:] {
		m := edge.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q is not a transition", l)
		}
		if to, err := states.Next(states.State(m[1]), states.Trigger(m[3])); err != nil || string(to) != m[2] {
			t.Errorf("%q is not in the table", l)
		}
	}
	if got := len(lines) - 2; got != pairs {
		t.Errorf("%d transitions drawn, the table has %d", got, pairs)
	}
	md := mustRun(t, te, "diagram", "--markdown")
	if md.stdout != states.Diagram() {
		t.Errorf("--markdown is not states.Diagram()")
	}
}

func TestStatusWithNothingStored(t *testing.T) {
	te := newTestEnv(t)
	r := mustRun(t, te, "status")
	if !strings.Contains(r.stdout, "No sign-ins stored") || !strings.Contains(r.stdout, "mcpauth login <mcp-url>") {
		t.Errorf("status:\n%s", r.transcript)
	}
}

func TestLogoutKeepsEverythingWhenRevocationFails(t *testing.T) {
	w := loginWorld(t)
	te := newTestEnv(t)
	mustRun(t, te, "login", w.MCPURL())
	before := readStore(t, te.storePath())

	w.SetFault(testworld.Fault{Delay: time.Second})
	r := te.run(t, "logout", "--timeout", "200ms", w.MCPURL())
	if r.code != 1 || !strings.Contains(r.stderr, "nothing was deleted") || !strings.Contains(r.stderr, "--no-revoke") {
		t.Fatalf("logout with an unanswering server:\n%s", r.transcript)
	}
	if after := readStore(t, te.storePath()); len(after) != len(before) {
		t.Errorf("logout deleted records although revocation failed")
	}

	w.SetFault(testworld.Fault{})
	revocations := w.Stats().Revocations
	r = mustRun(t, te, "logout", "--no-revoke", w.MCPURL())
	if w.Stats().Revocations != revocations {
		t.Errorf("--no-revoke revoked")
	}
	if !strings.Contains(r.stdout, "not revoked (--no-revoke)") {
		t.Errorf("logout --no-revoke does not say the tokens stay valid:\n%s", r.transcript)
	}
	if after := readStore(t, te.storePath()); len(after) != 0 {
		t.Errorf("the store still holds %v", keysOf(after))
	}
}

func TestLogoutKeepsARegistrationAnotherSignInUses(t *testing.T) {
	w := loginWorld(t)
	te := newTestEnv(t)
	mustRun(t, te, "login", w.MCPURL())
	// Another stored sign-in at the same authorization server.
	other := "https://other.example/mcp"
	store, err := driver.OpenFileStore(te.storePath())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := putRecord(ctx, store, discoveryKey(other), effects.Discovery{Server: other, Authorization: effects.ServerMetadata{Issuer: w.Issuer()}}); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, te, "logout", w.MCPURL())
	if !strings.Contains(r.stdout, "kept the client registration at "+w.Issuer()) {
		t.Errorf("logout:\n%s", r.transcript)
	}
	recs := readStore(t, te.storePath())
	if _, ok := recs[clientKey(w.Issuer())]; !ok {
		t.Errorf("the shared registration was deleted")
	}
	if _, ok := recs[discoveryKey(other)]; !ok {
		t.Errorf("the other sign-in's record was deleted")
	}
	if _, ok := recs[tokensKey(w.MCPURL())]; ok {
		t.Errorf("the tokens were kept")
	}
}
