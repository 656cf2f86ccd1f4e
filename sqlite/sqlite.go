// Package sqlite stores the central service's data in one SQLite file: the embedded
// default of kipass. It implements kipass.VisitService, FacilityService, AuditService
// and NoticeService with modernc.org/sqlite (pure Go, no cgo).
//
// The file runs in WAL mode with synchronous=FULL, so a committed transaction survives
// a power loss. One connection writes and a small pool reads; visits reach the writer
// through a group committer (internal/groupcommit) that commits many waiting batches at once.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/internal/groupcommit"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
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

// Options tunes a DB. The zero value of each field selects its default.
type Options struct {
	// QueueSize is how many visits may wait for the group committer before StoreVisits
	// sheds load with an ETOOMANY error (default 10000).
	QueueSize int
	// MaxCommitVisits caps the visits committed in one transaction (default 5000).
	MaxCommitVisits int
	// CommitTimeout bounds one group commit (default 30 s).
	CommitTimeout time.Duration
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection or process (default 5 s).
	BusyTimeout time.Duration
	// ReadConns is the size of the read pool (default 4).
	ReadConns int
	// Now is the clock for received_at and for defaulted creation times (default
	// time.Now).
	Now func() time.Time
	// IndexRunSize is the most visits in one run of the visit index (default 50000),
	// and about the most a lookup scans outside it while the indexer keeps up.
	IndexRunSize int
	// IndexRunInterval is how long visits wait at most before they are indexed when
	// fewer than IndexRunSize arrive (default 1 min).
	IndexRunInterval time.Duration
	// WALLimit is the WAL's size in pages past which the background checkpointer
	// waits for the writer once to start the WAL again (default 16384, 64 MB).
	WALLimit int
	// Logger receives the store's own reports: index runs that fail, purges of the
	// index (default slog.Default()).
	Logger *slog.Logger
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
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.ReadConns <= 0 {
		o.ReadConns = 4
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IndexRunSize <= 0 {
		o.IndexRunSize = 50000
	}
	if o.IndexRunInterval <= 0 {
		o.IndexRunInterval = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.WALLimit <= 0 {
		o.WALLimit = 16384
	}
	return o
}

// DB is an open kipass central database in one SQLite file.
type DB struct {
	path   string
	opts   Options
	writer *sql.DB // one connection; transactions begin IMMEDIATE
	reader *sql.DB

	ingest *groupcommit.Committer
	index  *visitIndex
	ckpt   *checkpointer // the writer's commits never checkpoint themselves

	insertStmts   map[int]*sql.Stmt // multi-row INSERTs by row count
	lastRowidStmt *sql.Stmt         // the largest rowid in visits

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database file at path with default Options and
// applies pending migrations.
func Open(path string) (*DB, error) {
	return OpenOptions(path, Options{})
}

// OpenOptions is Open with Options.
func OpenOptions(path string, opts Options) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: invalid database path %q", path)
	}
	opts = opts.withDefaults()
	busy := strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)

	// Parameters common to every connection; WAL is a property of the file, and
	// synchronous matters only where commits happen.
	writerDSN := path + "?_busy_timeout=" + busy + "&_txlock=immediate&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1" +
		"&_pragma=cache_size(-16384)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(0)"
	readerDSN := path + "?_busy_timeout=" + busy + "&_query_only=1&_pragma=cache_size(-8192)"

	db := &DB{path: path, opts: opts}
	var err error
	if db.writer, err = sql.Open("sqlite", writerDSN); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	db.writer.SetMaxOpenConns(1)
	db.writer.SetMaxIdleConns(1)
	db.writer.SetConnMaxLifetime(0)
	db.writer.SetConnMaxIdleTime(0)
	if err := db.migrate(context.Background()); err != nil {
		db.writer.Close()
		return nil, err
	}
	if err := db.prepareInserts(context.Background()); err != nil {
		db.writer.Close()
		return nil, err
	}
	if db.reader, err = sql.Open("sqlite", readerDSN); err != nil {
		db.writer.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	db.reader.SetMaxOpenConns(opts.ReadConns)
	db.reader.SetMaxIdleConns(opts.ReadConns)
	db.reader.SetConnMaxIdleTime(0)
	if db.ckpt, err = newCheckpointer(path, busy, db.writer, opts.WALLimit, opts.Logger); err != nil {
		db.reader.Close()
		db.writer.Close()
		return nil, err
	}
	if db.index, err = db.openIndex(context.Background(), busy); err != nil {
		db.ckpt.close()
		db.reader.Close()
		db.writer.Close()
		return nil, err
	}
	db.ingest = groupcommit.New(db.commitVisits, opts.QueueSize, opts.MaxCommitVisits, opts.CommitTimeout)
	return db, nil
}

// IndexPath is where the visit index of the database at path lives.
func IndexPath(path string) string { return path + ".index" }

// openIndex opens the visit index next to the database file.
func (db *DB) openIndex(ctx context.Context, busy string) (*visitIndex, error) {
	var ledgerID string
	var seq int64
	if err := db.writer.QueryRowContext(ctx, `SELECT id FROM ledger`).Scan(&ledgerID); err != nil {
		return nil, fmt.Errorf("sqlite: ledger id: %w", err)
	}
	if err := db.writer.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'visits'`).Scan(&seq); err != nil {
		return nil, fmt.Errorf("sqlite: visit sequence: %w", err)
	}
	return openIndex(ctx, IndexPath(db.path), db.reader, ledgerID, seq, busy, db.opts)
}

// IndexVisits brings the visit index up to date with every visit committed so far,
// at once rather than when the indexer's next run is due. Lookups are complete
// without it; they are faster after it.
func (db *DB) IndexVisits(ctx context.Context) error {
	if err := db.index.catchUp(ctx); err != nil {
		return fmt.Errorf("index visits: %w", err)
	}
	return nil
}

// Close commits and acknowledges every visit batch already queued, then closes the
// database. It is safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.ingest.Close()
		indexErr := errors.Join(db.index.close(), db.ckpt.close())
		for _, s := range db.insertStmts {
			s.Close()
		}
		db.lastRowidStmt.Close()
		db.closeErr = errors.Join(indexErr, db.reader.Close(), db.writer.Close())
	})
	return db.closeErr
}

// Ping reports whether the database can be read.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.reader.PingContext(ctx); err != nil {
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
	if err := db.Ping(ctx); err != nil {
		return err
	}
	want, err := migrationNames()
	if err != nil {
		return err
	}
	var have int
	if err := db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&have); err != nil {
		return kipass.Errorf(kipass.EUNAVAILABLE, "database schema unreadable")
	}
	if have != len(want) {
		return kipass.Errorf(kipass.EUNAVAILABLE, "database schema at version %d, want %d", have, len(want))
	}
	return nil
}

// IngestStats returns the group committer's statistics and the visit index's lag.
func (db *DB) IngestStats() kipass.IngestStats {
	s := db.ingest.Stats()
	s.IndexLag = db.index.lag()
	return s
}

// migrationNames returns the embedded migration files in the order they apply.
func migrationNames() ([]string, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrations: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// migrate applies the embedded migrations not yet recorded in schema_migrations,
// each in its own IMMEDIATE transaction, so that two processes opening one file at
// once apply each migration exactly once.
func (db *DB) migrate(ctx context.Context) error {
	names, err := migrationNames()
	if err != nil {
		return err
	}
	for i, name := range names {
		deadline := time.Now().Add(db.opts.BusyTimeout)
		for {
			err := db.migrateOne(ctx, i+1, name)
			if err == nil {
				break
			}
			// Processes opening a new file at once can find it busy without waiting
			// for the lock (turning on WAL, recovering it): try again.
			if !isBusy(err) || time.Now().After(deadline) {
				return fmt.Errorf("sqlite: migration %s: %w", name, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// isBusy reports whether err is SQLite's SQLITE_BUSY or one of its extended codes.
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

func (db *DB) migrateOne(ctx context.Context, version int, name string) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Created inside the IMMEDIATE transaction: a plain statement would not wait for
	// another process's lock when it needs to upgrade its read lock.
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return err
	} else if n > 0 {
		return nil
	}
	body, err := fs.ReadFile(migrationFS, name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		version, name, db.opts.Now().UnixMicro()); err != nil {
		return err
	}
	return tx.Commit()
}

// now returns the DB's clock.
func (db *DB) now() time.Time { return db.opts.Now() }

// newID returns a random identifier for records created without one.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// micro and fromMicro convert times to and from the stored unix microseconds.
func micro(t time.Time) int64 { return t.UnixMicro() }

func fromMicro(us int64) time.Time { return time.UnixMicro(us).UTC() }

// nullMicro stores an optional time; nullTime reads one back.
func nullMicro(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func nullTime(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMicro(n.Int64)
	return &t
}

// nullBytes stores an empty byte field as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// nullString stores an empty optional string as NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// constraintErr translates a constraint violation into a domain error: unique
// violations to ECONFLICT with the message given for the constraint's column, foreign
// keys to ENOTFOUND. Other errors are returned wrapped, for the log only.
func constraintErr(err error, op string, conflicts map[string]string) error {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("%s: %w", op, err)
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		// The message names the columns ("UNIQUE constraint failed: t.col"); it
		// never reaches a client, only picks the safe message.
		for col, msg := range conflicts {
			if strings.Contains(e.Error(), "."+col) {
				return kipass.Errorf(kipass.ECONFLICT, "%s", msg)
			}
		}
		return kipass.Errorf(kipass.ECONFLICT, "already exists")
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return kipass.Errorf(kipass.ENOTFOUND, "facility not found")
	}
	return fmt.Errorf("%s: %w", op, err)
}
