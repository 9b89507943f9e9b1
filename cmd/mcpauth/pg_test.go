package main

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/mcpauth/mcpauth/driver/pgstore"
	"github.com/mcpauth/mcpauth/internal/pgtest"
)

// pgURL turns pgtest's key=value DSN into the postgres:// form --store
// takes: postgres://user@/db?host=<socket folder>&port=…&sslmode=….
func pgURL(t *testing.T, kv string) string {
	t.Helper()
	u := url.URL{Scheme: "postgres", Host: ""}
	q := url.Values{}
	for _, f := range strings.Fields(kv) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("pgtest DSN %q: %q is not key=value", kv, f)
		}
		switch k {
		case "user":
			u.User = url.User(v)
		case "dbname":
			u.Path = "/" + v
		default:
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// TestPostgresStoreRoundTrip: login → status → token → tools → logout with
// --store postgres://…, and no store file anywhere.
func TestPostgresStoreRoundTrip(t *testing.T) {
	dsn := pgURL(t, pgtest.Start(t))
	if !isDSN(dsn) {
		t.Fatalf("%q is not taken for a DSN", dsn)
	}
	w := loginWorld(t)
	te := newTestEnv(t)
	server := w.MCPURL()

	login := mustRun(t, te, "login", "--store", dsn, server)
	if !strings.Contains(login.stdout, "stored in      postgres://postgres@/postgres") {
		t.Errorf("login does not name the database:\n%s", login.transcript)
	}
	if _, err := os.Stat(te.storePath()); err == nil {
		t.Errorf("a store file was written although --store names a database")
	}

	status := mustRun(t, te, "status", "--store", dsn)
	for _, want := range []string{"Sign-ins stored in postgres://postgres@/postgres", server, w.Issuer(), "dynamic registration, public client", "refresh token  held"} {
		if !strings.Contains(status.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, status.transcript)
		}
	}

	// What the database holds, read through the store itself.
	ctx := context.Background()
	pg, err := pgstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	tok := storedTokensIn(t, pg, server)

	w.ExpireAccessTokens()
	token := mustRun(t, te, "token", "--store", dsn, server)
	fresh := storedTokensIn(t, pg, server)
	if fresh.AccessToken == tok.AccessToken || token.stdout != fresh.AccessToken+"\n" {
		t.Errorf("token did not print the refreshed token")
	}
	if n := w.Stats().TokenRequests["refresh_token"]; n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	mustRun(t, te, "tools", "--store", dsn, server)
	assertNoSecret(t, status, tok.AccessToken, tok.RefreshToken)

	before := w.Stats().Revocations
	logout := mustRun(t, te, "logout", "--store", dsn, server)
	if got := w.Stats().Revocations - before; got != 2 {
		t.Errorf("logout made %d revocations, want 2:\n%s", got, logout.transcript)
	}
	if recs := readAll(t, pg); len(recs) != 0 {
		t.Errorf("the database still holds %v after logout", keysOf(recs))
	}
	empty := mustRun(t, te, "status", "--store", dsn)
	if !strings.Contains(empty.stdout, "No sign-ins stored in postgres://postgres@/postgres") {
		t.Errorf("status after logout:\n%s", empty.transcript)
	}
	after := te.run(t, "token", "--store", dsn, server)
	if after.code != 1 || !strings.Contains(after.stderr, "mcpauth login "+server) {
		t.Errorf("token after logout:\n%s", after.transcript)
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@db:5432/mcp?sslmode=verify-full":      "postgres://u@db:5432/mcp?sslmode=verify-full",
		"postgresql://u@db/mcp?password=pw&application_name=x": "postgresql://u@db/mcp?application_name=x",
		"postgres://db/mcp": "postgres://db/mcp",
		"postgres://u:p%40ss@h/d?sslpassword=k&sslmode=verify-full": "postgres://u@h/d?sslmode=verify-full",
	} {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
