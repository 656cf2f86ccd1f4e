package trace_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/demo"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/postgres"
	"github.com/kipass/kipass/seal"
	"github.com/kipass/kipass/sqlite"
	"github.com/kipass/kipass/trace"
	"github.com/kipass/kipass/trace/tracetest"
)

// Benchmark sizes: KIPASS_BENCH_VISITS_PER_DAY (default 1000000) visits a day over
// KIPASS_BENCH_DAYS days (default 1) at KIPASS_BENCH_FACILITIES facilities (default
// 10,000). See docs/investigation.md.
func benchSize() (perDay, days, facilities int) {
	perDay, days, facilities = 1_000_000, 1, 10_000
	if n, err := strconv.Atoi(os.Getenv("KIPASS_BENCH_VISITS_PER_DAY")); err == nil && n > 0 {
		perDay = n
	}
	if n, err := strconv.Atoi(os.Getenv("KIPASS_BENCH_DAYS")); err == nil && n > 0 {
		days = n
	}
	if n, err := strconv.Atoi(os.Getenv("KIPASS_BENCH_FACILITIES")); err == nil && n > 0 && n <= 100_000 {
		facilities = n
	}
	return perDay, days, facilities
}

// benchTag names a generated data set by its size, for the cache.
func benchTag() string {
	perDay, days, facilities := benchSize()
	return fmt.Sprintf("%dd_%d_%df", days, perDay, facilities)
}

// benchDays returns the first KST day of the background and of the case's visits.
func benchDays(now time.Time, days int) time.Time {
	kst := now.In(kipass.KST)
	return time.Date(kst.Year(), kst.Month(), kst.Day()-days, 0, 0, 0, 0, kipass.KST)
}

// visitStore is what central needs of a storage backend.
type visitStore interface {
	kipass.VisitService
	kipass.FacilityService
	kipass.AuditService
	kipass.NoticeService
	kiphttp.Checker
}

// sealedPool returns 256 phone numbers sealed to the world's key, the crowd's manual
// entries. A later run's key cannot open them, which costs the trace the same: the
// opening fails at the same step as it succeeds, and the visit counts as unresolved.
func sealedPool(tb testing.TB, w *tracetest.World) [][]byte {
	var pool [][]byte
	for i := range 256 {
		s, err := seal.Seal(w.Bundle.SealingKey, seal.InfoContact, []byte(fmt.Sprintf("010-8%03d-%04d", i, i)))
		if err != nil {
			tb.Fatal(err)
		}
		pool = append(pool, s)
	}
	return pool
}

// The crowd (the background visits) is generated inside the database with SQL, one
// statement per day: days x perDay visits numbered b000000000 up, at random times
// between 09:00 and 22:00 KST at random facilities F00000 up; visit k is a manual
// entry (a sealed phone number from the pool) when k%10 == 0, a safe number when
// k%10 == 1, else a QR pass with random token id, reference and day tag that nobody
// can resolve (the issuer still looks each up). The migrations' indexes on visits are
// dropped before and created again after, with the migrations' definitions; on
// SQLite the visit index (sqlite/index.go) is then built by the store itself.
var visitIndexes = []string{
	`CREATE INDEX visits_dtag_at ON visits (dtag, at) WHERE dtag IS NOT NULL`,
	`CREATE INDEX visits_facility_at ON visits (facility_id, at)`,
	`CREATE INDEX visits_at ON visits (at)`,
}

var sqliteVisitIndexes = []string{`CREATE INDEX visits_at ON visits (at)`}

func dropVisitIndexes(ctx context.Context, exec func(context.Context, string) error, names ...string) error {
	for _, name := range names {
		if err := exec(ctx, "DROP INDEX "+name); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkTraceSQLite times one full trace (issuer day tags, central case visits and
// co-visits, issuer resolve, local opening, contact list) on SQLite holding
// KIPASS_BENCH_DAYS days at KIPASS_BENCH_VISITS_PER_DAY. Only with -bench. With
// KIPASS_BENCH_CACHE set to a directory, the generated database is kept there
// (kipass_bench_<size>.db) and used again by later runs of the same size.
func BenchmarkTraceSQLite(b *testing.B) {
	ctx := context.Background()
	w := tracetest.New(b, demo.Start)
	perDay, days, facilities := benchSize()
	dir := os.Getenv("KIPASS_BENCH_CACHE")
	if dir == "" {
		dir = b.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "kipass_bench_"+benchTag()+".db")
	if _, err := os.Stat(path + ".done"); err != nil {
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			os.Remove(p)
		}
		db, err := sqlite.OpenOptions(path, sqlite.Options{Now: w.Clock.Now})
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
		t0 := time.Now()
		if err := generateSQLite(ctx, path, w, perDay, days, facilities); err != nil {
			b.Fatal(err)
		}
		fi, _ := os.Stat(path)
		b.Logf("generated %d visits (%d days at %d a day, %d facilities) in %s: %d MB",
			perDay*days, days, perDay, facilities, time.Since(t0).Round(time.Second), fi.Size()>>20)
		if err := os.WriteFile(path+".done", []byte(time.Since(t0).String()+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	db, err := sqlite.OpenOptions(path, sqlite.Options{Now: w.Clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	clearCase := func(ctx context.Context) error {
		c, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.ExecContext(ctx, `DELETE FROM visits WHERE id >= 'case-' AND id < 'case.'`)
		return err
	}
	benchTrace(b, w, db, clearCase, func(ctx context.Context, vs []*kipass.Visit) error { return sqlite.RawInsert(ctx, db, vs, 5000) })
}

func generateSQLite(ctx context.Context, path string, w *tracetest.World, perDay, days, facilities int) error {
	c, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetMaxOpenConns(1)
	exec := func(ctx context.Context, q string, args ...any) error {
		_, err := c.ExecContext(ctx, q, args...)
		return err
	}
	for _, q := range []string{`PRAGMA journal_mode=DELETE`, `PRAGMA journal_mode=OFF`, `PRAGMA synchronous=OFF`,
		`PRAGMA cache_size=-2000000`, `PRAGMA temp_store=MEMORY`,
		`CREATE TEMP TABLE bench_pool (k INTEGER PRIMARY KEY, c BLOB NOT NULL)`} {
		if err := exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	for i, s := range sealedPool(w.TB, w) {
		if err := exec(ctx, `INSERT INTO bench_pool VALUES (?, ?)`, i, s); err != nil {
			return err
		}
	}
	if err := dropVisitIndexes(ctx, func(ctx context.Context, q string) error { return exec(ctx, q) }, "visits_at"); err != nil {
		return err
	}
	day0 := benchDays(w.Clock.Now(), days)
	receivedAt := w.Clock.Now().UnixMicro()
	const q = `INSERT INTO visits (id, facility_id, device_id, at, method, issuer_key_id, token_id, sref, dtag,
		decision, basis, contact, safe_number, received_at)
	WITH RECURSIVE n(k) AS (SELECT ?1 UNION ALL SELECT k+1 FROM n WHERE k+1 < ?2)
	SELECT printf('b%09d', k), printf('F%05d', abs(random()) % ?3), '', ?4 + abs(random()) % 46800000000,
		CASE k % 10 WHEN 0 THEN 'manual' WHEN 1 THEN 'safe_number' ELSE 'qr' END,
		CASE WHEN k % 10 > 1 THEN ?5 ELSE '' END,
		CASE WHEN k % 10 > 1 THEN randomblob(16) END,
		CASE WHEN k % 10 > 1 THEN randomblob(44) END,
		CASE WHEN k % 10 > 1 THEN randomblob(16) END,
		CASE WHEN k % 10 > 1 THEN 'PASS' ELSE '' END,
		CASE WHEN k % 10 > 1 THEN 'booster' ELSE '' END,
		CASE WHEN k % 10 = 0 THEN (SELECT c FROM bench_pool WHERE bench_pool.k = (n.k / 10) % 256) END,
		CASE WHEN k % 10 = 1 THEN printf('%04d가나', abs(random()) % 10000) ELSE '' END,
		?6
	FROM n`
	for d := range days {
		start := day0.AddDate(0, 0, d).Add(9 * time.Hour)
		t := time.Now()
		if err := exec(ctx, q, d*perDay, (d+1)*perDay, facilities, start.UnixMicro(), w.IssuerKeyID, receivedAt); err != nil {
			return fmt.Errorf("day %d: %w", d, err)
		}
		fmt.Fprintf(os.Stderr, "sqlite: day %d/%d in %s\n", d+1, days, time.Since(t).Round(time.Millisecond))
	}
	for _, q := range sqliteVisitIndexes {
		t := time.Now()
		if err := exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		fmt.Fprintf(os.Stderr, "sqlite: %s in %s\n", q, time.Since(t).Round(time.Millisecond))
	}
	if err := exec(ctx, `PRAGMA journal_mode=WAL`); err != nil {
		return err
	}
	db, err := sqlite.OpenOptions(path, sqlite.Options{Now: w.Clock.Now})
	if err != nil {
		return err
	}
	t := time.Now()
	if err := db.IndexVisits(ctx); err != nil {
		db.Close()
		return err
	}
	fmt.Fprintf(os.Stderr, "sqlite: visit index built in %s\n", time.Since(t).Round(time.Millisecond))
	return db.Close()
}

// BenchmarkTracePostgres is BenchmarkTraceSQLite on PostgreSQL (KIPASS_POSTGRES, default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) in a scratch database
// that is dropped afterwards, or, with KIPASS_BENCH_CACHE set, in the database
// kipass_bench_<size>, kept and used again by later runs of the same size.
func BenchmarkTracePostgres(b *testing.B) {
	dsn := os.Getenv("KIPASS_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx := context.Background()
	perDay, days, facilities := benchSize()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatalf("PostgreSQL: %v", err)
	}
	defer admin.Close(ctx)
	name := "kipass_bench_" + benchTag()
	keep := os.Getenv("KIPASS_BENCH_CACHE") != ""
	var done bool
	if keep {
		err := admin.QueryRow(ctx, `SELECT COALESCE(shobj_description(oid, 'pg_database'), '') = 'kipass bench done'
			FROM pg_database WHERE datname = $1`, name).Scan(&done)
		if err != nil && err != pgx.ErrNoRows {
			b.Fatal(err)
		}
	} else {
		name += fmt.Sprintf("_%d", os.Getpid())
		defer admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	w := tracetest.New(b, demo.Start)
	if !done {
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			b.Fatal(err)
		}
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			b.Fatal(err)
		}
		db, err := postgres.OpenOptions(ctx, u.String(), postgres.Options{Now: w.Clock.Now})
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
		t0 := time.Now()
		if err := generatePostgres(ctx, u.String(), w, perDay, days, facilities); err != nil {
			b.Fatal(err)
		}
		var size int64
		if err := admin.QueryRow(ctx, `SELECT pg_database_size($1)`, name).Scan(&size); err != nil {
			b.Fatal(err)
		}
		b.Logf("generated %d visits (%d days at %d a day, %d facilities) in %s: %d MB",
			perDay*days, days, perDay, facilities, time.Since(t0).Round(time.Second), size>>20)
		if _, err := admin.Exec(ctx, "COMMENT ON DATABASE "+name+" IS 'kipass bench done'"); err != nil {
			b.Fatal(err)
		}
	}
	db, err := postgres.OpenOptions(ctx, u.String(), postgres.Options{Now: w.Clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	clearCase := func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, u.String())
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DELETE FROM visits WHERE id LIKE 'case-%'`); err != nil {
			return err
		}
		_, err = c.Exec(ctx, `DELETE FROM visit_ids WHERE id LIKE 'case-%'`)
		return err
	}
	benchTrace(b, w, db, clearCase, func(ctx context.Context, vs []*kipass.Visit) error { return postgres.RawInsert(ctx, db, vs, 5000) })
}

// generatePostgres fills the day partitions (created as the store creates them) with
// the crowd. visit_ids is left without the crowd's ids: no trace reads it.
func generatePostgres(ctx context.Context, dsn string, w *tracetest.World, perDay, days, facilities int) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	exec := func(ctx context.Context, q string) error {
		_, err := c.Exec(ctx, q)
		return err
	}
	for _, q := range []string{`SET synchronous_commit = off`, `SET maintenance_work_mem = '1GB'`, `SET max_parallel_maintenance_workers = 1`} {
		if err := exec(ctx, q); err != nil {
			return err
		}
	}
	if err := dropVisitIndexes(ctx, exec, "visits_dtag_at", "visits_facility_at", "visits_at"); err != nil {
		return err
	}
	day0 := benchDays(w.Clock.Now(), days)
	pool := sealedPool(w.TB, w)
	const q = `INSERT INTO visits (id, facility_id, device_id, at, method, issuer_key_id, token_id, sref, dtag,
		decision, basis, contact, safe_number, received_at)
	SELECT 'b' || lpad(k::text, 9, '0'), 'F' || lpad(floor(random() * $3)::int::text, 5, '0'), '',
		$4::timestamptz + random() * interval '13 hours',
		CASE k % 10 WHEN 0 THEN 'manual' WHEN 1 THEN 'safe_number' ELSE 'qr' END,
		CASE WHEN k % 10 > 1 THEN $5 ELSE '' END,
		CASE WHEN k % 10 > 1 THEN uuid_send(gen_random_uuid()) END,
		CASE WHEN k % 10 > 1 THEN uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()) || substr(uuid_send(gen_random_uuid()), 1, 12) END,
		CASE WHEN k % 10 > 1 THEN uuid_send(gen_random_uuid()) END,
		CASE WHEN k % 10 > 1 THEN 'PASS' ELSE '' END,
		CASE WHEN k % 10 > 1 THEN 'booster' ELSE '' END,
		CASE WHEN k % 10 = 0 THEN ($6::bytea[])[1 + (k / 10) % 256] END,
		CASE WHEN k % 10 = 1 THEN lpad(floor(random() * 10000)::int::text, 4, '0') || '가나' ELSE '' END,
		$7::timestamptz
	FROM generate_series($1::bigint, $2::bigint - 1) AS k`
	for d := range days {
		start := day0.AddDate(0, 0, d).Add(9 * time.Hour)
		day := kipass.DateOf(start)
		t := time.Now()
		// As the store's ensurePartitions creates a day's partition.
		part := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF visits FOR VALUES FROM ('%s') TO ('%s')`,
			pgx.Identifier{"visits_p" + strings.ReplaceAll(day.String(), "-", "")}.Sanitize(),
			day.Start().Format(time.RFC3339), day.End().Format(time.RFC3339))
		if err := exec(ctx, part); err != nil {
			return err
		}
		if _, err := c.Exec(ctx, q, d*perDay, (d+1)*perDay, facilities, start, w.IssuerKeyID, pool, w.Clock.Now()); err != nil {
			return fmt.Errorf("day %d: %w", d, err)
		}
		fmt.Fprintf(os.Stderr, "postgres: day %d/%d in %s\n", d+1, days, time.Since(t).Round(time.Millisecond))
	}
	// What autovacuum does to a table after inserts (partitions are vacuumed and
	// analyzed on their own; the partitioned parent never is, so it is analyzed here).
	for _, q := range append(visitIndexes, `VACUUM ANALYZE visits`) {
		t := time.Now()
		if err := exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		fmt.Fprintf(os.Stderr, "postgres: %s in %s\n", q, time.Since(t).Round(time.Millisecond))
	}
	return nil
}

func benchTrace(b *testing.B, w *tracetest.World, store visitStore, clearCase func(context.Context) error, insert func(context.Context, []*kipass.Visit) error) {
	ctx := context.Background()
	perDay, days, facilities := benchSize()
	n := perDay * days
	now := w.Clock.Now()
	rng := mrand.New(mrand.NewPCG(1, 2))

	// The case: an enrolled visitor with two real passes a day (so real day tags).
	tok, err := w.Issuer.EnrolDirect(ctx, issuer.Enrolment{Name: "확진자", Phone: "010-7777-0001", BirthDate: *demo.People()[0].Holder.BirthDate, PersonID: "B-1"})
	if err != nil {
		b.Fatal(err)
	}
	day0 := benchDays(now, days)
	var caseVisits []*kipass.Visit
	for d := range days {
		start := day0.AddDate(0, 0, d).Add(9 * time.Hour)
		for k := range 2 {
			at := start.Add(time.Duration(2+k*6) * time.Hour)
			w.Clock.Set(at)
			var pr issuer.PassResponse
			if err := w.IssuerClient(tok).Do(ctx, "GET", "/v1/pass?qr=none", nil, &pr); err != nil {
				b.Fatal(err)
			}
			p := mustClaims(b, pr.Pass)
			caseVisits = append(caseVisits, &kipass.Visit{ID: fmt.Sprintf("case-%d-%d", d, k), FacilityID: fmt.Sprintf("F%05d", rng.IntN(facilities)),
				At: at, Method: kipass.MethodQR, IssuerKeyID: p.KeyID, TokenID: p.TokenID, SRef: p.SRef, DTag: p.DTag, Outcome: kipass.PASS, Basis: "booster"})
		}
	}
	w.Clock.Set(now)
	// A kept database holds the case visits of an earlier run, with that run's passes.
	if err := clearCase(ctx); err != nil {
		b.Fatal(err)
	}
	if err := insert(ctx, caseVisits); err != nil {
		b.Fatal(err)
	}
	// The trace runs at 23:00 KST on the last day of data, after every visit: its 28
	// days back, that day included, are the days of data, and the server's retention
	// job, which runs as it starts, finds nothing past the 28 days to destroy.
	now = day0.AddDate(0, 0, days-1).Add(23 * time.Hour)
	w.Clock.Set(now)

	s := kiphttp.NewServer()
	s.VisitService, s.FacilityService, s.AuditService, s.NoticeService, s.DB = store, store, store, store, store
	s.Auth = kiphttp.Auth{InvestigatorTokens: map[string]string{tracetest.Investigator: tracetest.InvestigatorToken}}
	s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s.Now = w.Clock.Now
	s.SetBundle(w.SignedBundle(), w.Bundle)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Open(ln); err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	cfg := trace.Config{Central: kiphttp.NewClient("http://"+ln.Addr().String(), tracetest.InvestigatorToken),
		Issuer: w.IssuerClient(tracetest.IssuerInvToken), SealKey: w.SealKey}
	// AllDays traces every day of data; LastDay only the last day's case visits, on the
	// same table: the same matches as a one-day table, however many days it holds.
	for _, sub := range []struct {
		name  string
		days  int
		cases int
	}{{"AllDays", days, len(caseVisits)}, {"LastDay", 1, 2}} {
		b.Run(sub.name, func(b *testing.B) {
			var res *trace.Result
			for i := 0; b.Loop(); i++ {
				res, err = trace.Run(ctx, cfg, trace.Case{ID: fmt.Sprintf("BENCH-%s-%d", sub.name, i), Reason: "benchmark", Phone: "010-7777-0001", Days: sub.days, Now: now})
				if err != nil {
					b.Fatal(err)
				}
			}
			if len(res.CaseVisits) != sub.cases {
				b.Fatalf("case visits %d, want %d", len(res.CaseVisits), sub.cases)
			}
			b.ReportMetric(float64(n), "rows")
			b.ReportMetric(float64(len(res.CaseVisits)), "case-visits")
			b.ReportMetric(float64(res.CoVisits), "co-visits")
		})
	}
}

func mustClaims(tb testing.TB, text string) *pass.Claims {
	tb.Helper()
	p, err := pass.Parse(text)
	if err != nil {
		tb.Fatal(err)
	}
	return &p.Claims
}
