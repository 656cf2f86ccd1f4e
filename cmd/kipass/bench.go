package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/postgres"
	"github.com/kipass/kipass/seal"
	"github.com/kipass/kipass/sqlite"
	"github.com/kipass/kipass/trust"
)

func init() {
	register("bench", command{
		Summary: "benchmarks: `kipass bench ingest` measures durable visit ingest over HTTP",
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) == 0 || args[0] != "ingest" {
				return usageErrorf("usage: kipass bench ingest [flags]")
			}
			b := &ingestBench{env: env}
			if err := b.ParseFlags(args[1:]); err != nil {
				return err
			}
			return b.Run(ctx)
		},
	})
}

// ingestBench is `kipass bench ingest`: a central server in this process on loopback,
// many device clients posting batches, and the raw insert ceiling of the same
// database in the same run.
type ingestBench struct {
	env         *Env
	PostgresDSN string
	Dir         string
	Devices     int
	Batch       int
	Duration    time.Duration
	Warmup      time.Duration
	RawVisits   int
	QueueSize   int
	CPUProfile  string
	Rate        float64
	Preload     int
}

// ParseFlags reads the benchmark's flags.
func (b *ingestBench) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	fs.SetOutput(b.env.Stderr)
	fs.StringVar(&b.PostgresDSN, "postgres", envOr(b.env, "KIPASS_POSTGRES", ""), "PostgreSQL server to benchmark (a scratch database is created and dropped); default SQLite")
	fs.StringVar(&b.Dir, "dir", "", "directory for the SQLite files (default: a temporary directory, removed after)")
	fs.IntVar(&b.Devices, "devices", 64, "concurrent device clients")
	fs.IntVar(&b.Batch, "batch", 100, "visits per upload")
	fs.DurationVar(&b.Duration, "duration", 20*time.Second, "measured run time")
	fs.DurationVar(&b.Warmup, "warmup", 3*time.Second, "unmeasured run time before")
	fs.IntVar(&b.RawVisits, "raw-visits", 300_000, "visits inserted for the raw ceiling")
	fs.IntVar(&b.QueueSize, "queue-size", 10_000, "the store's ingest queue, in visits")
	fs.Float64Var(&b.Rate, "rate", 0, "visits/s offered in the paced phase (default: 50000, or 80% of the saturation rate if that is lower)")
	fs.StringVar(&b.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured HTTP run to this file")
	fs.IntVar(&b.Preload, "preload", 0, "visits stored (raw inserts, then indexed) over the 27 days before each HTTP phase, so that it runs on a full ledger")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErrorf("%v", err)
	}
	if b.Devices <= 0 || b.Batch <= 0 || b.Batch > kiphttp.MaxBatchSize || b.Duration <= 0 || b.Preload < 0 {
		return usageErrorf("--devices, --batch (1-1000) and --duration must be positive")
	}
	return nil
}

// benchStore is what the benchmark needs of a database.
type benchStore interface {
	centralStore
	rawInsert(ctx context.Context, visits []*kipass.Visit, batch int) error
}

type sqliteBench struct{ *sqlite.DB }

func (s sqliteBench) rawInsert(ctx context.Context, vs []*kipass.Visit, batch int) error {
	return sqlite.RawInsert(ctx, s.DB, vs, batch)
}

type postgresBench struct{ *postgres.DB }

func (s postgresBench) rawInsert(ctx context.Context, vs []*kipass.Visit, batch int) error {
	return postgres.RawInsert(ctx, s.DB, vs, batch)
}

// openStore opens a fresh database named name: a file in dir, or a new PostgreSQL
// database dropped by the returned cleanup.
func (b *ingestBench) openStore(ctx context.Context, dir, name string) (benchStore, func(), error) {
	if b.PostgresDSN == "" {
		db, err := sqlite.OpenOptions(filepath.Join(dir, name+".db"), sqlite.Options{QueueSize: b.QueueSize})
		if err != nil {
			return nil, nil, err
		}
		return sqliteBench{db}, func() { db.Close() }, nil
	}
	dsn, drop, err := createScratchDatabase(ctx, b.PostgresDSN, "kipass_bench_"+name)
	if err != nil {
		return nil, nil, err
	}
	db, err := postgres.OpenOptions(ctx, dsn, postgres.Options{QueueSize: b.QueueSize})
	if err != nil {
		drop()
		return nil, nil, err
	}
	return postgresBench{db}, func() { db.Close(); drop() }, nil
}

// Run runs the benchmark and prints its report.
func (b *ingestBench) Run(ctx context.Context) error {
	dir := b.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "kipass-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	backend := "sqlite"
	if b.PostgresDSN != "" {
		backend = "postgres"
	}
	w := b.env.Stdout
	fmt.Fprintf(w, "kipass bench ingest: %s, %d devices, batches of %d, %v per phase after %v warm-up, GOMAXPROCS=%d\n",
		backend, b.Devices, b.Batch, b.Duration, b.Warmup, runtime.GOMAXPROCS(0))

	// Each phase starts on a fresh, empty database, as the raw ceiling does: SQLite's
	// inserts slow down as its indexes outgrow the page cache.
	h, err := b.startHTTP(ctx, dir, "saturation")
	if err != nil {
		return err
	}
	sat, err := h.measure(ctx, b, 0)
	h.close()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nHTTP ingest at saturation (POST /v1/visits, durable, group commit; %d devices posting back to back):\n", b.Devices)
	sat.print(w)
	rate := b.Rate
	if rate == 0 {
		rate = min(50_000, 0.8*sat.rate)
	}
	if h, err = b.startHTTP(ctx, dir, "paced"); err != nil {
		return err
	}
	paced, err := h.measure(ctx, b, rate)
	h.close()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nHTTP ingest at an offered %.0f visits/s (each device paced):\n", rate)
	paced.print(w)

	fmt.Fprintf(w, "\nRaw insert ceiling (%s.RawInsert: plain multi-row INSERTs of the same rows, one transaction per batch, no HTTP):\n", backend)
	for _, batch := range []int{b.Batch, 5000} {
		raw, err := b.runRaw(ctx, dir, batch)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  batch %-5d  %.0f visits/s   (HTTP ingest at saturation is %.0f%% of it)\n", batch, raw, 100*sat.rate/raw)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// httpResult is what one measured phase saw.
type httpResult struct {
	visits, requests, shed int64
	rate                   float64
	p50, p99, max          time.Duration
	commits                int64
	perCommit              float64
	peakRSS                int64
	cores                  float64 // CPU time of the whole process over the phase's wall time
}

func (r *httpResult) print(w io.Writer) {
	fmt.Fprintf(w, "  acknowledged visits/s    %.0f  (%d visits in %d requests)\n", r.rate, r.visits, r.requests)
	fmt.Fprintf(w, "  latency p50 / p99 / max  %.1f / %.1f / %.1f ms\n", ms(r.p50), ms(r.p99), ms(r.max))
	fmt.Fprintf(w, "  shed (429)               %d requests\n", r.shed)
	fmt.Fprintf(w, "  commits                  %d (%.0f visits per commit)\n", r.commits, r.perCommit)
	fmt.Fprintf(w, "  peak RSS (VmHWM)         %.0f MB\n", float64(r.peakRSS)/(1<<20))
	fmt.Fprintf(w, "  CPU (whole process)      %.2f of %d cores\n", r.cores, runtime.NumCPU())
}

// benchDevice is one enrolled device of the benchmark.
type benchDevice struct {
	facility, token string
}

// httpBench is the server under load, its store and its devices.
type httpBench struct {
	st      benchStore
	server  *kiphttp.Server
	hc      *http.Client
	url     string
	devices []benchDevice
	cleanup []func()
}

func (h *httpBench) close() {
	for i := len(h.cleanup) - 1; i >= 0; i-- {
		h.cleanup[i]()
	}
	h.cleanup = nil
}

// startHTTP opens a fresh store, serves it on loopback and enrols the devices.
func (b *ingestBench) startHTTP(ctx context.Context, dir, name string) (*httpBench, error) {
	h := &httpBench{}
	st, cleanup, err := b.openStore(ctx, dir, name)
	if err != nil {
		return nil, err
	}
	h.st, h.cleanup = st, append(h.cleanup, cleanup)
	if err := b.preload(ctx, st); err != nil {
		h.close()
		return nil, fmt.Errorf("preload: %w", err)
	}
	signed, bundle, err := benchBundle()
	if err != nil {
		h.close()
		return nil, err
	}
	const admin = "bench-admin"
	s := kiphttp.NewServer()
	s.VisitService, s.FacilityService, s.AuditService, s.NoticeService = st, st, st, st
	s.DB, s.IngestStats = st, st.IngestStats
	s.Auth.AdminTokens = []string{admin}
	s.Config.DeviceRate, s.Config.DeviceBurst = 1e6, 1e6 // measure the server, not the limiter
	s.Logger = slog.New(slog.NewTextHandler(b.env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s.SetBundle(signed, bundle)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.close()
		return nil, err
	}
	if err := s.Open(ln); err != nil {
		h.close()
		return nil, err
	}
	h.server, h.url = s, s.URL()
	h.cleanup = append(h.cleanup, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(cctx)
	})

	h.hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: b.Devices, MaxConnsPerHost: b.Devices, DisableCompression: true}}
	adminClient := &kiphttp.Client{URL: h.url, Token: admin, HTTPClient: h.hc}
	h.devices = make([]benchDevice, b.Devices)
	var facility *kipass.Facility
	for i := range h.devices {
		if i%devicesPerFacility == 0 {
			facility, err = adminClient.CreateFacility(ctx, &kiphttp.CreateFacilityRequest{
				Name: "bench " + strconv.Itoa(i), BusinessNumber: benchBusinessNumber(i), Category: "restaurant", Region: "seoul"})
			if err != nil {
				h.close()
				return nil, fmt.Errorf("create facility: %w", err)
			}
		}
		code, err := adminClient.CreateEnrollmentCode(ctx, facility.ID)
		if err != nil {
			h.close()
			return nil, err
		}
		e, err := (&kiphttp.Client{URL: h.url, HTTPClient: h.hc}).Enroll(ctx, code.Code, "bench")
		if err != nil {
			h.close()
			return nil, err
		}
		h.devices[i] = benchDevice{facility.ID, e.Token}
	}
	return h, nil
}

// measure runs every device for the warm-up and the measured duration. With rate 0
// each device posts its next batch as soon as the last is answered (saturation);
// otherwise the devices together offer rate visits per second, each on its own pace.
func (h *httpBench) measure(ctx context.Context, b *ingestBench, rate float64) (*httpResult, error) {
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		visits    atomic.Int64
		requests  atomic.Int64
		shed      atomic.Int64
		failures  atomic.Int64
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(len(h.devices)*b.Batch) / rate * float64(time.Second))
	}
	url := h.url + "/v1/visits"
	for _, d := range h.devices {
		wg.Go(func() {
			gen := newBatchGen(d.facility, b.Batch)
			var local []time.Duration
			// Spread the paced devices over one interval so they do not post in step.
			next := time.Now().Add(time.Duration(mrand.Int64N(int64(max(interval, 1)))))
			for !stop.Load() {
				if interval > 0 {
					if wait := time.Until(next); wait > 0 {
						time.Sleep(wait)
					}
					next = next.Add(interval)
					if late := time.Since(next); late > interval {
						next = time.Now() // never burst to catch up
					}
				}
				body := gen.next(time.Now())
				start := time.Now()
				req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+d.token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := h.hc.Do(req)
				if err != nil {
					failures.Add(1)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				answer, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat := time.Since(start)
				switch resp.StatusCode {
				case http.StatusOK:
					if measuring.Load() {
						visits.Add(int64(bytes.Count(answer, []byte(`"status":"stored"`))))
						requests.Add(1)
						local = append(local, lat)
					}
				case http.StatusTooManyRequests:
					if measuring.Load() {
						shed.Add(1)
					}
					secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
					time.Sleep(time.Duration(max(secs, 1))*time.Second/4 + time.Duration(mrand.IntN(100))*time.Millisecond)
				default:
					failures.Add(1)
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		})
	}
	time.Sleep(b.Warmup)
	resetPeakRSS()
	if b.CPUProfile != "" && rate == 0 {
		f, err := os.Create(b.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
	}
	before := h.st.IngestStats()
	cpu0 := processCPU()
	measuring.Store(true)
	start := time.Now()
	time.Sleep(b.Duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	if b.CPUProfile != "" && rate == 0 {
		pprof.StopCPUProfile()
	}
	after := h.st.IngestStats()
	cpu := processCPU() - cpu0
	peak := peakRSS()
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		return nil, fmt.Errorf("%d uploads failed", n)
	}
	slices.Sort(latencies)
	r := &httpResult{
		visits: visits.Load(), requests: requests.Load(), shed: shed.Load(),
		rate:    float64(visits.Load()) / elapsed.Seconds(),
		commits: after.Commits - before.Commits, peakRSS: peak, cores: cpu.Seconds() / elapsed.Seconds(),
	}
	if len(latencies) > 0 {
		r.p50, r.p99, r.max = latencies[len(latencies)/2], latencies[len(latencies)*99/100], latencies[len(latencies)-1]
	}
	if r.commits > 0 {
		r.perCommit = float64(after.Visits-before.Visits) / float64(r.commits)
	}
	return r, nil
}

// runRaw inserts RawVisits fresh visits with the backend's RawInsert into a fresh
// database and returns visits per second.
func (b *ingestBench) runRaw(ctx context.Context, dir string, batch int) (float64, error) {
	st, cleanup, err := b.openStore(ctx, dir, "raw"+strconv.Itoa(batch))
	if err != nil {
		return 0, err
	}
	defer cleanup()
	// The rows HTTP ingest stores: the same facilities and devices, and ids made as
	// scanners make them, a visit every 20 µs (50 000 visits/s) up to now.
	gens := make([]*batchGen, b.Devices)
	for i := range gens {
		gens[i] = newBatchGen("f-raw-"+strconv.Itoa(i/devicesPerFacility), 1)
	}
	vs := make([]*kipass.Visit, b.RawVisits)
	now := time.Now()
	for i := range vs {
		at := now.Add(-time.Duration(len(vs)-i) * 20 * time.Microsecond)
		vs[i] = gens[i%len(gens)].visit(at)
		vs[i].DeviceID = "d-raw-" + strconv.Itoa(i%len(gens))
	}
	start := time.Now()
	if err := st.rawInsert(ctx, vs, batch); err != nil {
		return 0, err
	}
	return float64(len(vs)) / time.Since(start).Seconds(), nil
}

// preload stores b.Preload visits spread over the 27 days before now, with ids made
// as scanners make them at those times, in raw transactions of 5000, and on SQLite
// brings the visit index up to date, printing progress.
func (b *ingestBench) preload(ctx context.Context, st benchStore) error {
	if b.Preload == 0 {
		return nil
	}
	start := time.Now()
	span := 27 * 24 * time.Hour
	gens := make([]*batchGen, b.Devices)
	for i := range gens {
		gens[i] = newBatchGen("f-pre-"+strconv.Itoa(i/devicesPerFacility), 1)
	}
	const chunk = 100_000
	for done := 0; done < b.Preload; done += chunk {
		n := min(chunk, b.Preload-done)
		vs := make([]*kipass.Visit, n)
		for i := range vs {
			k := done + i
			at := start.Add(-span + time.Duration(float64(span)*float64(k)/float64(b.Preload)))
			vs[i] = gens[k%len(gens)].visit(at)
			vs[i].DeviceID = "d-pre-" + strconv.Itoa(k%len(gens))
		}
		if err := st.rawInsert(ctx, vs, 5000); err != nil {
			return err
		}
		fmt.Fprintf(b.env.Stderr, "\rpreloading: %d of %d visits", done+n, b.Preload)
	}
	if s, ok := st.(sqliteBench); ok {
		fmt.Fprintf(b.env.Stderr, ", indexing")
		if err := s.IndexVisits(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(b.env.Stderr, " (%s)\n", time.Since(start).Round(time.Second))
	return nil
}

// devicesPerFacility is how many of the benchmark's devices share a facility.
const devicesPerFacility = 4

// batchGen writes upload bodies of fresh QR visits straight into a reused buffer, so
// that the clients spend as little of the machine as they can.
type batchGen struct {
	facility string
	n        int
	rng      *mrand.ChaCha8
	buf      []byte
	raw      [visitRandSize]byte
}

// visitRandSize is the random bytes of a QR visit: token id, day tag and sealed
// subject reference.
const visitRandSize = kiphttp.TokenIDSize + kiphttp.DayTagSize + kiphttp.SRefSize

func newBatchGen(facility string, n int) *batchGen {
	var seed [32]byte
	rand.Read(seed[:])
	return &batchGen{facility: facility, n: n, rng: mrand.NewChaCha8(seed)}
}

// visit returns one fresh visit.
func (g *batchGen) visit(at time.Time) *kipass.Visit {
	g.rng.Read(g.raw[:])
	b := slices.Clone(g.raw[:])
	return &kipass.Visit{
		ID: kipass.NewVisitID(at), FacilityID: g.facility, At: at.UTC().Truncate(time.Microsecond), Method: kipass.MethodQR,
		IssuerKeyID: "bench-key", TokenID: b[:kiphttp.TokenIDSize], DTag: b[kiphttp.TokenIDSize : kiphttp.TokenIDSize+kiphttp.DayTagSize],
		SRef: b[kiphttp.TokenIDSize+kiphttp.DayTagSize:], Outcome: kipass.PASS, Basis: kipass.BasisBooster,
	}
}

// next returns the body of the next batch; it is valid until the next call.
func (g *batchGen) next(now time.Time) []byte {
	at := now.UTC().Add(-time.Second).Format(time.RFC3339Nano)
	b := append(g.buf[:0], `{"visits":[`...)
	for i := 0; i < g.n; i++ {
		g.rng.Read(g.raw[:])
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = append(b, kipass.NewVisitID(now)...) // as scanners make them
		b = append(b, `","facility_id":"`...)
		b = append(b, g.facility...)
		b = append(b, `","at":"`...)
		b = append(b, at...)
		b = append(b, `","method":"qr","issuer_key_id":"bench-key","token_id":"`...)
		b = base64.StdEncoding.AppendEncode(b, g.raw[:kiphttp.TokenIDSize])
		b = append(b, `","dtag":"`...)
		b = base64.StdEncoding.AppendEncode(b, g.raw[kiphttp.TokenIDSize:kiphttp.TokenIDSize+kiphttp.DayTagSize])
		b = append(b, `","sref":"`...)
		b = base64.StdEncoding.AppendEncode(b, g.raw[kiphttp.TokenIDSize+kiphttp.DayTagSize:])
		b = append(b, `","decision":"PASS","basis":"booster"}`...)
	}
	b = append(b, "]}"...)
	g.buf = b
	return b
}

// benchBundle makes a throwaway signed trust bundle.
func benchBundle() ([]byte, *trust.Bundle, error) {
	sealPub, _, err := seal.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	_, root, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, nil, err
	}
	b := &trust.Bundle{Version: 1, MadeAt: time.Now().UTC(), Rules: json.RawMessage(`{}`),
		Categories: []string{"restaurant"}, Regions: []string{"seoul"}, SealingKey: sealPub}
	signed, err := trust.Sign(b, root)
	return signed, b, err
}

// benchBusinessNumber returns the i-th valid business registration number.
func benchBusinessNumber(i int) string {
	d := strconv.Itoa(200000000 + i)
	sum := 0
	for k, w := range []int{1, 3, 7, 1, 3, 7, 1, 3, 5} {
		sum += int(d[k]-'0') * w
	}
	sum += int(d[8]-'0') * 5 / 10
	return d + strconv.Itoa((10-sum%10)%10)
}

// processCPU returns the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// resetPeakRSS starts VmHWM afresh (Linux: writing 5 to clear_refs), so that the
// figure is that of the measured run, not of the setup.
func resetPeakRSS() {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// createScratchDatabase creates a new, empty PostgreSQL database named name (plus a
// random suffix) on the server of dsn and returns its connection string and the
// function that drops it.
func createScratchDatabase(ctx context.Context, dsn, name string) (string, func(), error) {
	name = fmt.Sprintf("%s_%d", name, mrand.Uint32())
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("postgres: create database: %w", err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, dsn); err == nil {
			c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			c.Close(ctx)
		}
	}
	return withDatabase(dsn, name), drop, nil
}

// withDatabase returns dsn (a URL or key=value string) naming database name instead.
func withDatabase(dsn, name string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name
}
