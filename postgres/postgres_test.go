package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kipass/kipass"
	"github.com/kipass/kipass/postgres"
	"github.com/kipass/kipass/storetest"
)

// defaultDSN is the development and CI server: PostgreSQL 15, trust authentication.
const defaultDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// serverDSN returns the DSN of the server the tests create their databases on.
func serverDSN() string {
	if dsn := os.Getenv("KIPASS_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return defaultDSN
}

// withDatabase returns dsn naming database name instead.
func withDatabase(t testing.TB, dsn, name string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("KIPASS_TEST_POSTGRES: %v", err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name
}

// createDatabase creates a database with a random name, dropped when the test ends,
// and returns its DSN. The tests never skip: no server is a failure.
func createDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, serverDSN())
	if err != nil {
		t.Fatalf("PostgreSQL test server unreachable (set KIPASS_TEST_POSTGRES): %v", err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 8)
	rand.Read(b)
	name := "kipass_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(ctx, serverDSN())
		if err != nil {
			t.Errorf("drop database: %v", err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, `DROP DATABASE `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	return withDatabase(t, serverDSN(), name)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openTestStore(t) })
}

// testStore is a DB with the suite's test hooks, which use their own connections.
type testStore struct {
	*postgres.DB
	dsn string
}

// openTestStore opens a DB on a new database with a small ingest queue.
func openTestStore(t *testing.T) *testStore {
	t.Helper()
	dsn := createDatabase(t)
	db, err := postgres.OpenOptions(context.Background(), dsn, postgres.Options{QueueSize: 1000, MaxConns: 4})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return &testStore{DB: db, dsn: dsn}
}

// rawExec runs statements on a connection of its own, past the store.
func (s *testStore) rawExec(ctx context.Context, queries ...string) error {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, q := range queries {
		if _, err := conn.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// TamperAudit rewrites an entry's reason, past the append-only trigger, as someone
// with the database's owner role could.
func (s *testStore) TamperAudit(ctx context.Context, seq int64, reason string) error {
	return s.rawExec(ctx, `ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change`,
		`UPDATE audit_log SET reason = '`+strings.ReplaceAll(reason, "'", "''")+`' WHERE seq = `+itoa(seq))
}

// DeleteAudit removes an entry, past the append-only trigger.
func (s *testStore) DeleteAudit(ctx context.Context, seq int64) error {
	return s.rawExec(ctx, `ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change`,
		`DELETE FROM audit_log WHERE seq = `+itoa(seq))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// BlockWrites holds a lock on visit_ids that ingest's INSERT waits for.
func (s *testStore) BlockWrites(t *testing.T) func() {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE visit_ids IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			if err := tx.Rollback(ctx); err != nil {
				t.Errorf("release lock: %v", err)
			}
			conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
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
		{"Truncate", `TRUNCATE audit_log`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.rawExec(ctx, tt.query); err == nil {
				t.Fatalf("%s of the audit log succeeded", tt.name)
			}
		})
	}
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := createDatabase(t)
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			db, err := postgres.Open(context.Background(), dsn)
			if err == nil {
				err = db.Ready(context.Background())
				db.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
}

func TestPurgeDropsPartitions(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	day := func(d int) time.Time { return time.Date(2022, 1, d, 12, 0, 0, 0, kipass.KST) }
	var vs []*kipass.Visit
	for d := 1; d <= 4; d++ {
		vs = append(vs, &kipass.Visit{ID: "v" + itoa(int64(d)), FacilityID: "f", At: day(d), Method: kipass.MethodQR})
	}
	if _, err := s.StoreVisits(ctx, vs); err != nil {
		t.Fatal(err)
	}
	partitions := func() []string {
		conn, err := pgx.Connect(ctx, s.dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		rows, _ := conn.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'visits'::regclass AND c.relname LIKE 'visits_p202201%' ORDER BY 1`)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	if got := strings.Join(partitions(), ","); got != "visits_p20220101,visits_p20220102,visits_p20220103,visits_p20220104" {
		t.Fatalf("partitions before purge: %s", got)
	}
	n, err := s.PurgeVisits(ctx, time.Date(2022, 1, 3, 0, 0, 0, 0, kipass.KST))
	if err != nil || n != 2 {
		t.Fatalf("PurgeVisits: %d, %v; want 2", n, err)
	}
	if got := strings.Join(partitions(), ","); got != "visits_p20220103,visits_p20220104" {
		t.Fatalf("partitions after purge: %s", got)
	}
}

func TestCommitFailureIsUnavailable(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if err := s.rawExec(ctx, `ALTER TABLE visit_ids RENAME TO visit_ids_away`); err != nil {
		t.Fatal(err)
	}
	vs := []*kipass.Visit{{ID: "v1", FacilityID: "f", At: time.Now(), Method: kipass.MethodQR}}
	_, err := s.StoreVisits(ctx, vs)
	if kipass.ErrorCode(err) != kipass.EUNAVAILABLE || strings.Contains(kipass.ErrorMessage(err), "visit_ids") {
		t.Fatalf("StoreVisits with a broken schema: code %q, message %q", kipass.ErrorCode(err), kipass.ErrorMessage(err))
	}
	if s.IngestStats().Failed != 1 {
		t.Fatalf("IngestStats.Failed = %d, want 1", s.IngestStats().Failed)
	}
	if err := s.rawExec(ctx, `ALTER TABLE visit_ids_away RENAME TO visit_ids`); err != nil {
		t.Fatal(err)
	}
	st, err := s.StoreVisits(ctx, vs)
	if err != nil || st[0].Status != kipass.VisitStored {
		t.Fatalf("StoreVisits after repair: %+v, %v", st, err)
	}
}
