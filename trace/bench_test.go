package trace_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
// KIPASS_BENCH_DAYS days (default 1) at 10,000 facilities. See docs/investigation.md.
func benchSize() (perDay, days int) {
	perDay, days = 1_000_000, 1
	if n, err := strconv.Atoi(os.Getenv("KIPASS_BENCH_VISITS_PER_DAY")); err == nil && n > 0 {
		perDay = n
	}
	if n, err := strconv.Atoi(os.Getenv("KIPASS_BENCH_DAYS")); err == nil && n > 0 {
		days = n
	}
	return perDay, days
}

// visitStore is what central needs of a storage backend.
type visitStore interface {
	kipass.VisitService
	kipass.FacilityService
	kipass.AuditService
	kipass.NoticeService
	kiphttp.Checker
}

// BenchmarkTraceSQLite times one full trace (issuer day tags, central case visits and
// co-visits, issuer resolve, local opening, contact list) on SQLite holding
// KIPASS_BENCH_DAYS days at KIPASS_BENCH_VISITS_PER_DAY. Only with -bench.
func BenchmarkTraceSQLite(b *testing.B) {
	w := tracetest.New(b, demo.Start)
	db, err := sqlite.OpenOptions(b.TempDir()+"/bench.db", sqlite.Options{Now: w.Clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	benchTrace(b, w, db, func(ctx context.Context, vs []*kipass.Visit) error { return sqlite.RawInsert(ctx, db, vs, 5000) })
}

// BenchmarkTracePostgres is BenchmarkTraceSQLite on PostgreSQL (KIPASS_POSTGRES, default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) in a scratch database
// that is dropped afterwards.
func BenchmarkTracePostgres(b *testing.B) {
	dsn := os.Getenv("KIPASS_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatalf("PostgreSQL: %v", err)
	}
	defer admin.Close(ctx)
	rb := make([]byte, 6)
	rand.Read(rb)
	name := "kipass_tracebench_" + hex.EncodeToString(rb)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		b.Fatal(err)
	}
	defer admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)")
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	w := tracetest.New(b, demo.Start)
	db, err := postgres.OpenOptions(ctx, u.String(), postgres.Options{Now: w.Clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	benchTrace(b, w, db, func(ctx context.Context, vs []*kipass.Visit) error { return postgres.RawInsert(ctx, db, vs, 5000) })
}

func benchTrace(b *testing.B, w *tracetest.World, store visitStore, insert func(context.Context, []*kipass.Visit) error) {
	ctx := context.Background()
	perDay, days := benchSize()
	const facilities = 10_000
	now := w.Clock.Now()
	rng := mrand.New(mrand.NewPCG(1, 2))

	// The case: an enrolled visitor with two real passes a day (so real day tags).
	tok, err := w.Issuer.EnrolDirect(ctx, issuer.Enrolment{Name: "확진자", Phone: "010-7777-0001", BirthDate: *demo.People()[0].Holder.BirthDate, PersonID: "B-1"})
	if err != nil {
		b.Fatal(err)
	}
	kst := now.In(kipass.KST)
	day0 := time.Date(kst.Year(), kst.Month(), kst.Day()-days, 0, 0, 0, 0, kipass.KST)
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
	if err := insert(ctx, caseVisits); err != nil {
		b.Fatal(err)
	}

	// The crowd: random references nobody can resolve (the issuer still tries each), a
	// tenth sealed phone numbers and a tenth safe numbers.
	var sealedPool [][]byte
	for i := range 256 {
		s, err := seal.Seal(w.Bundle.SealingKey, seal.InfoContact, []byte(fmt.Sprintf("010-8%03d-%04d", i, i)))
		if err != nil {
			b.Fatal(err)
		}
		sealedPool = append(sealedPool, s)
	}
	t0 := time.Now()
	const chunk = 100_000
	buf := make([]*kipass.Visit, 0, chunk)
	n := 0
	for d := range days {
		start := day0.AddDate(0, 0, d).Add(9 * time.Hour)
		for range perDay {
			v := &kipass.Visit{ID: fmt.Sprintf("b%09d", n), FacilityID: fmt.Sprintf("F%05d", rng.IntN(facilities)),
				At: start.Add(time.Duration(rng.Int64N(int64(13 * time.Hour)))).Truncate(time.Microsecond)}
			switch r := rng.IntN(10); {
			case r == 0:
				v.Method, v.Contact = kipass.MethodManual, sealedPool[rng.IntN(len(sealedPool))]
			case r == 1:
				v.Method, v.SafeNumber = kipass.MethodSafeNumber, fmt.Sprintf("%04d가나", rng.IntN(10000))
			default:
				v.Method, v.IssuerKeyID, v.Outcome, v.Basis = kipass.MethodQR, w.IssuerKeyID, kipass.PASS, "booster"
				v.TokenID, v.SRef, v.DTag = randBytes(rng, 16), randBytes(rng, 44), randBytes(rng, 16)
			}
			buf = append(buf, v)
			n++
			if len(buf) == chunk {
				if err := insert(ctx, buf); err != nil {
					b.Fatal(err)
				}
				buf = buf[:0]
			}
		}
	}
	if err := insert(ctx, buf); err != nil {
		b.Fatal(err)
	}
	b.Logf("inserted %d visits (%d days at %d a day) in %s", n, days, perDay, time.Since(t0).Round(time.Second))

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
	}{{"AllDays", days + 1, len(caseVisits)}, {"LastDay", 2, 2}} {
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

func randBytes(rng *mrand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}
