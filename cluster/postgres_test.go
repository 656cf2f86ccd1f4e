package cluster

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// MustPostgres starts a primary and a synchronous standby for the test.
func MustPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	dir, err := os.MkdirTemp("", "kipass-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	p, err := NewPostgres(dir)
	if err != nil {
		tb.Fatal(err)
	}
	p.Logf = tb.Logf
	tb.Cleanup(p.Close)
	if err := p.Init(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return p
}

func queryInt(tb testing.TB, dsn, sql string) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, sql).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestFailover: a row committed on the primary is on the standby the moment the commit
// returns (synchronous replication), and survives kill -9 of the primary and promotion.
func TestFailover(t *testing.T) {
	p := MustPostgres(t)
	ctx := context.Background()
	if err := p.exec(ctx, 0, Database, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000)`); err != nil {
		t.Fatal(err)
	}
	p.Kill(0)
	if err := p.Promote(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, p.DSN(), `SELECT count(*) FROM t`); n != 1000 {
		t.Fatalf("after failover: %d rows, want 1000", n)
	}
	if err := p.exec(ctx, 1, Database, `INSERT INTO t VALUES (1001)`); err != nil {
		t.Fatalf("new primary does not accept writes: %v", err)
	}
}

// TestStandbyDown: with the standby gone, commits block on the synchronous standby
// until the supervisor drops to asynchronous, then go on; when the standby is back,
// replication is synchronous again.
func TestStandbyDown(t *testing.T) {
	p := MustPostgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Supervise(ctx, func() int { return 0 }, time.Second, 200*time.Millisecond)
	if err := p.exec(ctx, 0, Database, `CREATE TABLE t (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	p.Kill(1)
	start := time.Now()
	if err := p.exec(ctx, 0, Database, `INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	blocked := time.Since(start)
	t.Logf("commit with the standby down took %v", blocked)
	if blocked < 500*time.Millisecond || blocked > 20*time.Second {
		t.Fatalf("commit took %v: want it held until the supervisor gave up on the standby", blocked)
	}
	// The reload that releases the commit lands just before the supervisor records
	// it: give the record a moment.
	for deadline := time.Now().Add(5 * time.Second); p.Synchronous() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if p.Synchronous() {
		t.Fatal("still synchronous")
	}
	if err := p.Start(1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !p.Synchronous() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !p.Synchronous() {
		t.Fatal("not synchronous again after the standby came back")
	}
	if n := queryInt(t, p.ServerDSN(1, Database), `SELECT count(*) FROM t`); n != 1 {
		t.Fatalf("standby has %d rows, want 1", n)
	}
}
