package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/internal/keyedmutex"
)

// Defaults for Config.
const (
	DefaultLeaseTTL  = 15 * time.Second
	DefaultLeasePoll = time.Second
	DefaultOpTimeout = 10 * time.Second
)

// Config configures a Store beyond its DSN.
type Config struct {
	// Schema holds the store's tables; it is created when missing. Empty:
	// the connection's current schema (the first schema of search_path
	// that exists, usually public).
	Schema string
	// LeaseTTL is how long a lease outlives the last heartbeat of its
	// holder: the longest the fleet waits for a replica that died holding
	// it. The holder renews it every LeaseTTL/3. Default DefaultLeaseTTL;
	// at least one second.
	LeaseTTL time.Duration
	// LeasePoll bounds how long a replica waiting for a lease goes without
	// looking at it when no release notification arrives. Default
	// DefaultLeasePoll.
	LeasePoll time.Duration
	// OpTimeout bounds every statement, so that a database that stops
	// answering fails operations with *UnavailableError instead of hanging
	// them. Default DefaultOpTimeout.
	OpTimeout time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.LeaseTTL < time.Second {
		return c, fmt.Errorf("pgstore: LeaseTTL %v is below one second", c.LeaseTTL)
	}
	if c.LeasePoll <= 0 {
		c.LeasePoll = DefaultLeasePoll
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	return c, nil
}

// Store is a driver.Store, driver.Locker and driver.Watcher on PostgreSQL,
// shared by every process that opens the same database and schema. It is
// safe for concurrent use. Make one with Open or OpenConfig and Close it
// when done: Close gives back the leases it holds.
type Store struct {
	pool *pgxpool.Pool
	cfg  Config
	n    names
	sql  statements

	schema  string
	channel string
	holder  string // "<host>:<pid>:": the prefix of this store's lease holder ids

	local  keyedmutex.Mutex // one contender per key and process reaches the database
	closed atomic.Bool
	ctx    context.Context // background work: listener, watches, heartbeats
	cancel context.CancelFunc
	bg     sync.WaitGroup // listener and watch goroutines, heartbeats
	rel    sync.WaitGroup // lease releases in flight

	mu        sync.Mutex
	closing   bool // Close has begun: nothing is added to bg
	relDone   bool // Close is waiting for rel: nothing is added to it
	listening bool
	watches   map[string]map[*watch]struct{}
	waiters   map[string]map[chan struct{}]struct{}
	held      map[*lease]struct{}
}

var (
	_ driver.Store   = (*Store)(nil)
	_ driver.Locker  = (*Store)(nil)
	_ driver.Watcher = (*Store)(nil)
)

// statements are the SQL texts, with the schema's names in them.
type statements struct {
	get, insert, update, deleteIf, deleteAny, keys  string
	leaseTake, leaseLeft, leaseExtend, leaseRelease string
}

func newStatements(n names) statements {
	return statements{
		get:       `SELECT value, version FROM ` + n.records + ` WHERE key = $1`,
		insert:    `INSERT INTO ` + n.records + ` (key, value, version, updated_at) VALUES ($1, $2, 1, now()) ON CONFLICT (key) DO NOTHING RETURNING version`,
		update:    `UPDATE ` + n.records + ` SET value = $2, version = version + 1, updated_at = now() WHERE key = $1 AND version = $3 RETURNING version`,
		deleteIf:  `DELETE FROM ` + n.records + ` WHERE key = $1 AND version = $2`,
		deleteAny: `DELETE FROM ` + n.records + ` WHERE key = $1`,
		keys:      `SELECT key FROM ` + n.records + ` WHERE left(key, length($1)) = $1 ORDER BY key COLLATE "C"`,
		// The lease is taken when there is none or the one there has
		// expired; the database's clock is the only clock.
		leaseTake: `INSERT INTO ` + n.leases + ` AS l (key, holder, acquired_at, expires_at)
VALUES ($1, $2, clock_timestamp(), clock_timestamp() + $3 * interval '1 millisecond')
ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
WHERE l.expires_at <= clock_timestamp()
RETURNING holder`,
		leaseLeft:    `SELECT greatest(0, ceil(extract(epoch FROM expires_at - clock_timestamp()) * 1000))::bigint FROM ` + n.leases + ` WHERE key = $1`,
		leaseExtend:  `UPDATE ` + n.leases + ` SET expires_at = clock_timestamp() + $3 * interval '1 millisecond' WHERE key = $1 AND holder = $2`,
		leaseRelease: `DELETE FROM ` + n.leases + ` WHERE key = $1 AND holder = $2`,
	}
}

// Open connects to the database named by dsn and creates or upgrades the
// schema, with the default Config. dsn is anything pgx accepts: a URL
// (postgres://user:password@host:5432/db?sslmode=verify-full) or key=value
// pairs (host=/run/postgresql dbname=mcpauth); pool settings such as
// pool_max_conns go in it too. The password is never put in an error.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return OpenConfig(ctx, dsn, Config{})
}

// OpenConfig is Open with a Config.
func OpenConfig(ctx context.Context, dsn string, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors redact the password.
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if pcfg.ConnConfig.RuntimeParams["application_name"] == "" {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "mcpauth"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s := &Store{pool: pool, cfg: cfg, holder: holderPrefix()}
	if err := s.init(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// init resolves the schema and migrates it.
func (s *Store) init(ctx context.Context) error {
	octx, cancel := context.WithTimeout(ctx, 3*s.cfg.OpTimeout)
	defer cancel()
	schema, create := s.cfg.Schema, s.cfg.Schema != ""
	if !create {
		var cur *string
		if err := s.pool.QueryRow(octx, `SELECT current_schema()`).Scan(&cur); err != nil {
			return classify(ctx, "open", "", err)
		}
		if cur == nil {
			return errors.New("pgstore: no schema of search_path exists: set Config.Schema")
		}
		schema = *cur
	}
	s.schema, s.channel = schema, channelName(schema)
	s.n = newNames(schema, s.channel)
	s.sql = newStatements(s.n)
	if err := migrate(octx, s.pool, schema, create, s.n); err != nil {
		var se *SchemaError
		if errors.As(err, &se) {
			return se
		}
		return classify(ctx, "open", "", err)
	}
	return nil
}

// Schema is the schema holding the store's tables.
func (s *Store) Schema() string { return s.schema }

// Close gives back the leases this store holds, stops watching (closing
// every Watch channel) and closes the connections. It waits for lease
// releases in flight, each bounded by Config.OpTimeout.
func (s *Store) Close() {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true // no background work starts from now on
	s.closed.Store(true)
	held := make([]*lease, 0, len(s.held))
	for l := range s.held {
		held = append(held, l)
	}
	s.mu.Unlock()
	for _, l := range held {
		l.unlock()
	}
	s.mu.Lock()
	s.relDone = true // later unlocks do not wait on s.rel
	s.mu.Unlock()
	s.rel.Wait()
	s.cancel()
	s.bg.Wait()
	s.pool.Close()
}

// begin checks what every operation checks first and returns the
// statement context, bounded by OpTimeout.
func (s *Store) begin(ctx context.Context, key string) (context.Context, context.CancelFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := driver.CheckStoreKey(key); err != nil {
		return nil, nil, err
	}
	if s.closed.Load() {
		return nil, nil, ErrClosed
	}
	octx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	return octx, cancel, nil
}

// Get implements driver.Store.
func (s *Store) Get(ctx context.Context, key string) (driver.Record, error) {
	octx, cancel, err := s.begin(ctx, key)
	if err != nil {
		return driver.Record{}, err
	}
	defer cancel()
	r, found, err := s.get(octx, key)
	if err != nil {
		return driver.Record{}, classify(ctx, "get", key, err)
	}
	if !found {
		return driver.Record{}, fmt.Errorf("pgstore: %q: %w", key, driver.ErrNotFound)
	}
	return r, nil
}

func (s *Store) get(ctx context.Context, key string) (driver.Record, bool, error) {
	var (
		value   []byte
		version int64
	)
	err := s.pool.QueryRow(ctx, s.sql.get, key).Scan(&value, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return driver.Record{}, false, nil
	}
	if err != nil {
		return driver.Record{}, false, err
	}
	return driver.Record{Key: key, Value: value, Version: uint64(version)}, true, nil
}

// Put implements driver.Store: UPDATE … WHERE version = ifVersion, or
// INSERT … ON CONFLICT DO NOTHING for ifVersion 0; when no row changes,
// the current record is read for the *driver.ConflictError.
func (s *Store) Put(ctx context.Context, key string, value []byte, ifVersion uint64) (uint64, error) {
	octx, cancel, err := s.begin(ctx, key)
	if err != nil {
		return 0, err
	}
	defer cancel()
	if value == nil {
		value = []byte{} // bytea NOT NULL; Get returns it as empty
	}
	for {
		var v int64
		switch {
		case ifVersion == 0:
			err = s.pool.QueryRow(octx, s.sql.insert, key, value).Scan(&v)
		case ifVersion <= math.MaxInt64:
			err = s.pool.QueryRow(octx, s.sql.update, key, value, int64(ifVersion)).Scan(&v)
		default:
			err = pgx.ErrNoRows // no version that large is ever stored
		}
		if err == nil {
			return uint64(v), nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, classify(ctx, "put", key, err)
		}
		ce, retry, err := s.conflict(octx, key, ifVersion, true)
		if err != nil {
			return 0, classify(ctx, "put", key, err)
		}
		if !retry {
			return 0, ce
		}
	}
}

// Delete implements driver.Store.
func (s *Store) Delete(ctx context.Context, key string, ifVersion uint64) error {
	octx, cancel, err := s.begin(ctx, key)
	if err != nil {
		return err
	}
	defer cancel()
	if ifVersion == 0 {
		if _, err := s.pool.Exec(octx, s.sql.deleteAny, key); err != nil {
			return classify(ctx, "delete", key, err)
		}
		return nil
	}
	for {
		if ifVersion <= math.MaxInt64 {
			tag, err := s.pool.Exec(octx, s.sql.deleteIf, key, int64(ifVersion))
			if err != nil {
				return classify(ctx, "delete", key, err)
			}
			if tag.RowsAffected() == 1 {
				return nil
			}
		}
		ce, retry, err := s.conflict(octx, key, ifVersion, false)
		if err != nil {
			return classify(ctx, "delete", key, err)
		}
		if !retry {
			return ce
		}
	}
}

// Keys lists the keys that start with prefix ("" for all), in byte order.
// driver.Store has no listing; the mcpauth command needs one to show and
// remove sign-ins.
func (s *Store) Keys(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	octx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	rows, err := s.pool.Query(octx, s.sql.keys, prefix)
	if err != nil {
		return nil, classify(ctx, "keys", prefix, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, classify(ctx, "keys", prefix, err)
	}
	return keys, nil
}

// conflict reads the record after a compare-and-swap changed nothing. When
// the record now matches ifVersion (it changed between the two
// statements) the operation is retried; otherwise the conflict is
// reported with the record as read.
func (s *Store) conflict(ctx context.Context, key string, ifVersion uint64, put bool) (*driver.ConflictError, bool, error) {
	r, found, err := s.get(ctx, key)
	if err != nil {
		return nil, false, err
	}
	if !found {
		if put && ifVersion == 0 {
			return nil, true, nil
		}
		return &driver.ConflictError{Key: key, Want: ifVersion}, false, nil
	}
	if r.Version == ifVersion {
		return nil, true, nil
	}
	return &driver.ConflictError{Key: key, Want: ifVersion, Have: r.Version, Current: &r}, false, nil
}
