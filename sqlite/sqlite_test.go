package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/sqlite"
	"github.com/kipass/kipass/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openTestStore(t) })
}

// testStore is a DB with the suite's test hooks, which work on the file directly.
type testStore struct {
	*sqlite.DB
	path string
}

// openTestStore opens a DB in a temporary file with a small ingest queue.
func openTestStore(t *testing.T) *testStore {
	t.Helper()
	path := filepath.Join(t.TempDir(), "central.db")
	db, err := sqlite.OpenOptions(path, sqlite.Options{QueueSize: 1000, BusyTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testStore{DB: db, path: path}
}

// raw opens a plain connection to the store's file, past the store.
func (s *testStore) raw(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", s.path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// TamperAudit rewrites an entry's reason, dropping the append-only trigger first as
// an attacker with the file would.
func (s *testStore) TamperAudit(ctx context.Context, seq int64, reason string) error {
	return s.rawExec(ctx, `DROP TRIGGER IF EXISTS audit_log_no_update`, `UPDATE audit_log SET reason = ? WHERE seq = ?`, reason, seq)
}

// DeleteAudit removes an entry, past the append-only trigger.
func (s *testStore) DeleteAudit(ctx context.Context, seq int64) error {
	return s.rawExec(ctx, `DROP TRIGGER IF EXISTS audit_log_no_delete`, `DELETE FROM audit_log WHERE seq = ?`, seq)
}

func (s *testStore) rawExec(ctx context.Context, prep, query string, args ...any) error {
	db, err := sql.Open("sqlite", s.path+"?_busy_timeout=10000")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, prep); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, query, args...)
	return err
}

// BlockWrites holds the file's write lock with BEGIN IMMEDIATE on another connection.
func (s *testStore) BlockWrites(t *testing.T) func() {
	t.Helper()
	ctx := context.Background()
	conn, err := s.raw(t).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
			t.Errorf("release write lock: %v", err)
		}
		conn.Close()
	}
}

func TestAuditLogIsAppendOnly(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if err := s.AppendAudit(ctx, &kipass.AuditEntry{Actor: "a", Action: "b", CaseID: "c", Reason: "d", Query: "{}"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		query string
	}{
		{"Update", `UPDATE audit_log SET reason = 'x'`},
		{"Delete", `DELETE FROM audit_log`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.raw(t).ExecContext(ctx, tt.query); err == nil {
				t.Fatalf("%s of the audit log succeeded", tt.name)
			}
		})
	}
}

func TestOpenTwiceMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "central.db")
	errs := make(chan error, 4)
	dbs := make(chan *sqlite.DB, 4)
	for range 4 {
		go func() {
			db, err := sqlite.Open(path)
			errs <- err
			dbs <- db
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("Open: %v", err)
		}
		db := <-dbs
		if err := db.Ready(context.Background()); err != nil {
			t.Fatalf("Ready: %v", err)
		}
		defer db.Close()
	}
}

func TestOpenRefusesBadPath(t *testing.T) {
	for _, p := range []string{"", "a?b.db", "x#y"} {
		if db, err := sqlite.Open(p); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func TestCommitFailureIsUnavailable(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.raw(t).ExecContext(ctx, `ALTER TABLE visits RENAME TO visits_away`); err != nil {
		t.Fatal(err)
	}
	vs := []*kipass.Visit{{ID: "v1", FacilityID: "f", At: time.Now(), Method: kipass.MethodQR}}
	_, err := s.StoreVisits(ctx, vs)
	if kipass.ErrorCode(err) != kipass.EUNAVAILABLE || strings.Contains(kipass.ErrorMessage(err), "visits") {
		t.Fatalf("StoreVisits with a broken schema: code %q, message %q", kipass.ErrorCode(err), kipass.ErrorMessage(err))
	}
	if _, err := s.raw(t).ExecContext(ctx, `ALTER TABLE visits_away RENAME TO visits`); err != nil {
		t.Fatal(err)
	}
	st, err := s.StoreVisits(ctx, vs)
	if err != nil || st[0].Status != kipass.VisitStored {
		t.Fatalf("StoreVisits after repair: %+v, %v", st, err)
	}
}
