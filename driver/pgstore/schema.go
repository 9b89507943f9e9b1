package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Table names, inside the store's schema. They are part of the documented
// schema (docs/scale-out.md): operators read them.
const (
	versionTable = "mcpauth_schema_version"
	recordsTable = "mcpauth_records"
	leasesTable  = "mcpauth_leases"
)

// migration is one step of the schema; steps run in order, each once, in
// one transaction with the version row that records it.
type migration struct {
	version int
	sql     func(n names) string
}

// names are the schema-qualified, quoted identifiers and the notification
// channel the SQL uses.
type names struct {
	schema  string // quoted
	records string
	leases  string
	version string
	notify  string // quoted function name
	channel string // the channel name as a SQL string literal
}

func newNames(schema, channel string) names {
	q := func(t string) string { return pgx.Identifier{schema, t}.Sanitize() }
	return names{
		schema:  pgx.Identifier{schema}.Sanitize(),
		records: q(recordsTable),
		leases:  q(leasesTable),
		version: q(versionTable),
		notify:  q("mcpauth_notify"),
		channel: "'" + strings.ReplaceAll(channel, "'", "''") + "'",
	}
}

// migrations is the schema's history. Append only: never edit a step that
// has shipped.
var migrations = []migration{
	{1, func(n names) string {
		return `
CREATE TABLE IF NOT EXISTS ` + n.records + ` (
	key        text PRIMARY KEY,
	value      bytea NOT NULL,
	version    bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ` + n.leases + ` (
	key         text PRIMARY KEY,
	holder      text NOT NULL,
	acquired_at timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL
);
-- One notification per committed change: 'r<version>:<key>' for a record
-- written (version 0: deleted), 'l:<key>' for a lease released. A key too
-- long for a payload (8000 bytes) is sent empty: listeners then re-read
-- everything they watch.
CREATE OR REPLACE FUNCTION ` + n.notify + `() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
	k text;
	msg text;
BEGIN
	IF TG_OP = 'DELETE' THEN k := OLD.key; ELSE k := NEW.key; END IF;
	IF octet_length(k) > 7000 THEN k := ''; END IF;
	IF TG_TABLE_NAME = '` + leasesTable + `' THEN
		msg := 'l:' || k;
	ELSIF TG_OP = 'DELETE' THEN
		msg := 'r0:' || k;
	ELSE
		msg := 'r' || NEW.version || ':' || k;
	END IF;
	PERFORM pg_notify(` + n.channel + `, msg);
	RETURN NULL;
END
$f$;
DROP TRIGGER IF EXISTS mcpauth_records_notify ON ` + n.records + `;
CREATE TRIGGER mcpauth_records_notify AFTER INSERT OR UPDATE OR DELETE ON ` + n.records + `
	FOR EACH ROW EXECUTE FUNCTION ` + n.notify + `();
DROP TRIGGER IF EXISTS mcpauth_leases_notify ON ` + n.leases + `;
CREATE TRIGGER mcpauth_leases_notify AFTER DELETE ON ` + n.leases + `
	FOR EACH ROW EXECUTE FUNCTION ` + n.notify + `();
`
	}},
}

// SchemaVersion is the schema version this package creates and reads.
var SchemaVersion = migrations[len(migrations)-1].version

// migrate brings the schema to SchemaVersion. Concurrent first uses (a
// fleet starting at once) serialize on a transaction-scoped advisory lock
// named after the schema, so no two run the same step; a schema already at
// SchemaVersion is checked without the lock. A schema newer than this
// package knows is refused, unchanged.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string, create bool, n names) error {
	if v, err := currentVersion(ctx, pool, n); err == nil && v == SchemaVersion {
		return nil
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockID(schema)); err != nil {
		return err
	}
	if create {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+n.schema); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+n.version+` (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return err
	}
	var cur int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+n.version).Scan(&cur); err != nil {
		return err
	}
	if cur > SchemaVersion {
		return &SchemaError{Schema: schema, Have: cur, Want: SchemaVersion}
	}
	for _, m := range migrations {
		if m.version <= cur {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql(n)); err != nil {
			return fmt.Errorf("migration %d: %w", m.version, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+n.version+` (version) VALUES ($1)`, m.version); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// currentVersion reads the schema version without taking any lock.
func currentVersion(ctx context.Context, pool *pgxpool.Pool, n names) (int, error) {
	var v int
	err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+n.version).Scan(&v)
	return v, err
}

// migrationLockID is the advisory lock key for migrating schema.
func migrationLockID(schema string) int64 {
	h := sha256.Sum256([]byte("mcpauth migrate " + schema))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

// channelName is the LISTEN/NOTIFY channel of the store in schema.
// Channel names are identifiers (at most 63 bytes): a long schema name is
// replaced by its hash.
func channelName(schema string) string {
	c := "mcpauth:" + schema
	if len(c) > 63 {
		h := sha256.Sum256([]byte(schema))
		c = "mcpauth:" + hex.EncodeToString(h[:16])
	}
	return c
}

// SchemaError reports a schema written by a newer mcpauth.
type SchemaError struct {
	Schema     string
	Have, Want int
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("pgstore: schema %q is at version %d, newer than this mcpauth knows (%d): upgrade mcpauth", e.Schema, e.Have, e.Want)
}
