// Package sqlite stores the immunization registry in one SQLite file (registry.db under
// the data directory) with modernc.org/sqlite: pure Go, no cgo. It implements
// registry.Store.
//
// The file runs in WAL mode with synchronous=FULL, so a committed record survives a
// power loss. One connection writes (transactions begin IMMEDIATE, so a bulk import in
// another process and the server take turns); a small pool reads, and WAL lets it read
// while a write is under way.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/registry"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// FileName is the name of the registry's database file in a data directory.
const FileName = "registry.db"

var _ registry.Store = (*Store)(nil)

// Options tunes a Store. The zero value of each field selects its default.
type Options struct {
	// BusyTimeout is how long a statement waits for a lock held by another connection
	// or process, such as an import running beside the server (default 10 s).
	BusyTimeout time.Duration
	// ReadConns is the size of the read pool (default 4).
	ReadConns int
	// Now is the clock of updated_at (default time.Now).
	Now func() time.Time
}

// Store is an open registry database.
type Store struct {
	opts   Options
	writer *sql.DB // one connection
	reader *sql.DB
	stmts  *statements
	read   *sql.Stmt // selectPersonSQL on the read pool

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database file at path with default Options and
// applies pending migrations.
func Open(path string) (*Store, error) { return OpenOptions(path, Options{}) }

// OpenOptions is Open with Options.
func OpenOptions(path string, opts Options) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("registry sqlite: invalid database path %q", path)
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	busy := strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)
	writerDSN := path + "?_busy_timeout=" + busy + "&_txlock=immediate&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1" +
		"&_pragma=cache_size(-32768)&_pragma=temp_store(MEMORY)"
	readerDSN := path + "?_busy_timeout=" + busy + "&_query_only=1&_pragma=cache_size(-16384)"

	s := &Store{opts: opts}
	var err error
	if s.writer, err = sql.Open("sqlite", writerDSN); err != nil {
		return nil, fmt.Errorf("registry sqlite: open: %w", err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)
	if err := s.migrate(context.Background()); err != nil {
		s.writer.Close()
		return nil, err
	}
	if s.stmts, err = prepare(s.writer); err != nil {
		s.writer.Close()
		return nil, fmt.Errorf("registry sqlite: prepare: %w", err)
	}
	if s.reader, err = sql.Open("sqlite", readerDSN); err != nil {
		s.stmts.close()
		s.writer.Close()
		return nil, fmt.Errorf("registry sqlite: open: %w", err)
	}
	s.reader.SetMaxOpenConns(opts.ReadConns)
	s.reader.SetMaxIdleConns(opts.ReadConns)
	s.reader.SetConnMaxIdleTime(0)
	if s.read, err = s.reader.Prepare(selectPersonSQL); err != nil {
		s.stmts.close()
		s.writer.Close()
		s.reader.Close()
		return nil, fmt.Errorf("registry sqlite: prepare: %w", err)
	}
	return s, nil
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stmts.close()
		s.read.Close()
		s.closeErr = errors.Join(s.reader.Close(), s.writer.Close())
	})
	return s.closeErr
}

// Ping reports whether the database can be read.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.reader.PingContext(ctx); err != nil {
		return kipass.Errorf(kipass.EUNAVAILABLE, "database unreachable")
	}
	return nil
}

// Ready reports whether the database is reachable and every migration is applied:
// what /readyz asks.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	want, err := migrationNames()
	if err != nil {
		return err
	}
	var have int
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&have); err != nil {
		return kipass.Errorf(kipass.EUNAVAILABLE, "database schema unreadable")
	}
	if have != len(want) {
		return kipass.Errorf(kipass.EUNAVAILABLE, "database schema at version %d, want %d", have, len(want))
	}
	return nil
}

// migrationNames returns the embedded migration files in the order they apply.
func migrationNames() ([]string, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("registry sqlite: migrations: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// migrate applies the embedded migrations not yet recorded in schema_migrations, each
// in its own IMMEDIATE transaction, so that two processes opening one file at once
// apply each exactly once.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("registry sqlite: create migrations table: %w", err)
	}
	names, err := migrationNames()
	if err != nil {
		return err
	}
	for i, name := range names {
		if err := s.migrateOne(ctx, i+1, name); err != nil {
			return fmt.Errorf("registry sqlite: migration %s: %w", name, err)
		}
	}
	return nil
}

func (s *Store) migrateOne(ctx context.Context, version int, name string) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
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
		version, name, s.opts.Now().UnixMicro()); err != nil {
		return err
	}
	return tx.Commit()
}
