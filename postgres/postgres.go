// Package postgres stores the central service's data in PostgreSQL: the production
// backend of kipass. It implements kipass.VisitService, FacilityService, AuditService
// and NoticeService with jackc/pgx/v5.
//
// Several stateless kipass nodes may share one database: migrations take an advisory
// lock, the audit chain serializes on one, and visit ingest is idempotent across
// nodes. A multi-host DSN with target_session_attrs=read-write follows the primary
// through a failover. Visits are partitioned by KST day (partition.go).
package postgres

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kipass/kipass"
	"github.com/kipass/kipass/internal/groupcommit"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Compile-time checks that DB implements the services.
var (
	_ kipass.VisitService    = (*DB)(nil)
	_ kipass.FacilityService = (*DB)(nil)
	_ kipass.AuditService    = (*DB)(nil)
	_ kipass.NoticeService   = (*DB)(nil)
)

// Advisory lock keys, one per thing that must happen one at a time across nodes.
const (
	lockMigrate   int64 = 0x6b69706173730001 // "kipass" 1
	lockAudit     int64 = 0x6b69706173730002
	lockPartition int64 = 0x6b69706173730003
)

// Options tunes a DB. The zero value of each field selects its default.
type Options struct {
	// QueueSize is how many visits may wait for the group committer before StoreVisits
	// sheds load with an ETOOMANY error (default 10000).
	QueueSize int
	// MaxCommitVisits caps the visits committed in one transaction (default 5000).
	MaxCommitVisits int
	// CommitTimeout bounds one group commit (default 30 s).
	CommitTimeout time.Duration
	// MaxConns is the size of the connection pool (default 10); pool_max_conns in
	// the DSN wins over it.
	MaxConns int32
	// Now is the clock for received_at, defaulted creation times and the partitions
	// made ahead at open (default time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = 10000
	}
	if o.MaxCommitVisits <= 0 {
		o.MaxCommitVisits = 5000
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 30 * time.Second
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// DB is an open kipass central database on a PostgreSQL server.
type DB struct {
	pool   *pgxpool.Pool
	opts   Options
	ingest *groupcommit.Committer

	partMu     sync.Mutex
	partitions map[kipass.Date]bool // days known to have a partition

	closeOnce sync.Once
}

// Open connects to the database named by dsn (a URL or keyword/value string, possibly
// multi-host) with default Options and applies pending migrations.
func Open(ctx context.Context, dsn string) (*DB, error) {
	return OpenOptions(ctx, dsn, Options{})
}

// OpenOptions is Open with Options.
func OpenOptions(ctx context.Context, dsn string, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("postgres: invalid connection string") // the DSN may hold a password
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	db := &DB{pool: pool, opts: opts, partitions: make(map[kipass.Date]bool)}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	today := kipass.DateOf(opts.Now())
	if err := db.ensurePartitions(ctx, []kipass.Date{today - 1, today, today + 1}); err != nil {
		pool.Close()
		return nil, err
	}
	db.ingest = groupcommit.New(db.commitVisits, opts.QueueSize, opts.MaxCommitVisits, opts.CommitTimeout)
	return db, nil
}

// Close commits and acknowledges every visit batch already queued, then closes the
// pool. It is safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.ingest.Close()
		db.pool.Close()
	})
	return nil
}

// Ping reports whether the server answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return kipass.Errorf(kipass.EUNAVAILABLE, "database unreachable")
	}
	return nil
}

// Ready reports whether the database is reachable, its migrations are current and
// visit ingest is running: what /readyz asks.
func (db *DB) Ready(ctx context.Context) error {
	if db.ingest.Closed() {
		return kipass.Errorf(kipass.EUNAVAILABLE, "database closed")
	}
	want, err := migrationNames()
	if err != nil {
		return err
	}
	var have int
	if err := db.pool.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&have); err != nil {
		return kipass.Errorf(kipass.EUNAVAILABLE, "database unreachable")
	}
	if have != len(want) {
		return kipass.Errorf(kipass.EUNAVAILABLE, "database schema at version %d, want %d", have, len(want))
	}
	return nil
}

// IngestStats returns the group committer's statistics.
func (db *DB) IngestStats() kipass.IngestStats { return db.ingest.Stats() }

// migrationNames returns the embedded migration files in the order they apply.
func migrationNames() ([]string, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// migrate applies the embedded migrations not yet recorded, each in its own
// transaction, holding a session advisory lock so that nodes starting together
// apply each migration once.
func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockMigrate); err != nil {
		return fmt.Errorf("postgres: migration lock: %w", err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, lockMigrate)

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: create migrations table: %w", err)
	}
	names, err := migrationNames()
	if err != nil {
		return err
	}
	for i, name := range names {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, i+1).Scan(&n); err != nil || n > 0 {
				return err
			}
			body, err := fs.ReadFile(migrationFS, name)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, i+1, name)
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %s: %w", name, err)
		}
	}
	return nil
}

// now returns the DB's clock.
func (db *DB) now() time.Time { return db.opts.Now() }

// newID returns a random identifier for records created without one.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// utc returns t in UTC, truncated to the microsecond PostgreSQL keeps.
func utc(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

// nullString stores an empty optional string as NULL.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// nullBytes stores an empty byte field as NULL.
func nullBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// utcPtr returns *t in UTC, or nil.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Error codes of PostgreSQL that the domain cares about.
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
	pgNoPartition         = "23514" // check_violation: also "no partition of relation found for row"
)

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// constraintErr translates a constraint violation into a domain error: unique
// violations to ECONFLICT with the message given for the constraint, foreign keys to
// ENOTFOUND. Other errors are returned wrapped, for the log only.
func constraintErr(err error, op string, conflicts map[string]string) error {
	var e *pgconn.PgError
	if !errors.As(err, &e) {
		return fmt.Errorf("%s: %w", op, err)
	}
	switch e.Code {
	case pgUniqueViolation:
		if msg, ok := conflicts[e.ConstraintName]; ok {
			return kipass.Errorf(kipass.ECONFLICT, "%s", msg)
		}
		return kipass.Errorf(kipass.ECONFLICT, "already exists")
	case pgForeignKeyViolation:
		return kipass.Errorf(kipass.ENOTFOUND, "facility not found")
	}
	return fmt.Errorf("%s: %w", op, err)
}
