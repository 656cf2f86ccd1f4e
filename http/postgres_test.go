package http_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kipass/kipass/postgres"
)

// The HTTP suite runs against PostgreSQL too: the server of KIPASS_TEST_POSTGRES (by
// default the development and CI server), in a database of its own per test. It never
// skips: an unreachable server fails the tests.
func init() {
	backends = append(backends, backend{name: "postgres", open: openPostgres})
}

const defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

func postgresServerDSN() string {
	if dsn := os.Getenv("KIPASS_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return defaultPostgresDSN
}

type postgresStore struct {
	*postgres.DB
	dsn string
}

func openPostgres(tb testing.TB, o storeOptions) testStore {
	tb.Helper()
	ctx := context.Background()
	server := postgresServerDSN()
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatalf("PostgreSQL test server unreachable (set KIPASS_TEST_POSTGRES): %v", err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "kipass_http_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	dsn := server + " dbname=" + name
	if u, err := url.Parse(server); err == nil && strings.HasPrefix(u.Scheme, "postgres") {
		u.Path = "/" + name
		dsn = u.String()
	}
	db, err := postgres.OpenOptions(ctx, dsn, postgres.Options{QueueSize: o.QueueSize, Now: o.Now, MaxConns: 8})
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	// Cleanups run last-in first-out: close the store, then drop its database.
	tb.Cleanup(func() {
		admin, err := pgx.Connect(ctx, server)
		if err != nil {
			tb.Errorf("drop database: %v", err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, `DROP DATABASE `+name+` WITH (FORCE)`); err != nil {
			tb.Errorf("drop database: %v", err)
		}
	})
	tb.Cleanup(func() { db.Close() })
	return &postgresStore{DB: db, dsn: dsn}
}

func (s *postgresStore) TamperAudit(ctx context.Context, seq int64, reason string) error {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change`); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `UPDATE audit_log SET reason = $1 WHERE seq = $2`, reason, seq)
	return err
}

func (s *postgresStore) BlockWrites(tb testing.TB) func() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE visit_ids IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			tx.Rollback(ctx)
			conn.Close(ctx)
		})
	}
	tb.Cleanup(release)
	return release
}

func (s *postgresStore) CountVisit(ctx context.Context, id string) (int, error) {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT COUNT(*) FROM visits WHERE id = $1`, id).Scan(&n)
	return n, err
}
