package pgtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpauth/mcpauth/internal/pgtest"
)

// TestStartStopRestart: the cluster answers, stops, and comes back.
func TestStartStopRestart(t *testing.T) {
	c := pgtest.StartCluster(t)
	query := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.DSN())
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		var n int
		return conn.QueryRow(ctx, "SELECT 1").Scan(&n)
	}
	if err := query(); err != nil {
		t.Fatalf("query: %v", err)
	}
	c.Stop()
	if err := query(); err == nil {
		t.Fatal("query succeeded on a stopped cluster")
	}
	c.Restart()
	if err := query(); err != nil {
		t.Fatalf("query after restart: %v", err)
	}
}
