// Package loadgen simulates many venue scanners against central: each decides passes
// offline with the real scanner code, keeps its visits in its own durable outbox and
// uploads them with the real outbox.Syncer (batches, backoff with jitter, Retry-After,
// fail-over across central URLs). At the end it checks the database and reports what
// was decided, acknowledged and stored.
package loadgen

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/demo"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/outbox"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/scanner"
	"github.com/kipass/kipass/trust"
)

// Profiles of the visit rate over a run.
const (
	Steady = "steady" // the base rate throughout
	Lunch  = "lunch"  // a ramp to Peak times the base rate, a plateau and a ramp down
)

// Config is one load run.
type Config struct {
	Centrals   []string // base URLs; each scanner starts at a different one and fails over
	AdminToken string   // to create the facilities and enrolment codes
	Scanners   int
	Rate       float64 // base visits per second over all scanners
	Profile    string  // Steady or Lunch
	Peak       float64 // Lunch: the peak rate is Peak times Rate
	Duration   time.Duration
	Dir        string // where the outbox files go

	Bundle    *trust.Bundle      // the trust bundle the scanners verify with
	IssuerKey ed25519.PrivateKey // signs the simulated visitors' passes

	Batch        int           // visits per upload (default 100)
	SyncIdle     time.Duration // how often a scanner looks at its outbox (default 1 s)
	NotifyEvery  bool          // upload after each scan, as the kiosk does, instead of on SyncIdle
	HTTPTimeout  time.Duration // per upload request (default 10 s)
	DrainTimeout time.Duration // how long to wait for the outboxes to empty (default 2 min)
	// WaitThreshold is the decision time (verify and rules) above which a decision
	// counts as having waited; no CPU step comes near it and every network timeout is
	// far above it (default 1 s). The durable outbox write that follows is local disk,
	// not network: it is reported (RecordP99) but not counted, because on a loaded
	// machine with hundreds of outboxes an fsync alone can take a second.
	WaitThreshold time.Duration

	Checker  Checker   // reads what the database stored; nil skips the check
	Progress io.Writer // progress bar; nil for none
}

func (c *Config) defaults() error {
	if len(c.Centrals) == 0 {
		return errors.New("loadgen: no central URL")
	}
	if c.Scanners <= 0 || c.Rate <= 0 || c.Duration <= 0 {
		return errors.New("loadgen: scanners, rate and duration must be positive")
	}
	if c.Bundle == nil || c.IssuerKey == nil {
		return errors.New("loadgen: a trust bundle and an issuer key are needed")
	}
	if c.Profile == "" {
		c.Profile = Steady
	}
	if c.Profile != Steady && c.Profile != Lunch {
		return fmt.Errorf("loadgen: unknown profile %q", c.Profile)
	}
	if c.Peak < 1 {
		c.Peak = 5
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.SyncIdle <= 0 {
		c.SyncIdle = time.Second
	}
	if c.HTTPTimeout <= 0 {
		c.HTTPTimeout = 10 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 2 * time.Minute
	}
	if c.WaitThreshold <= 0 {
		c.WaitThreshold = time.Second
	}
	return nil
}

// RateAt is the profile's visit rate at elapsed time t of the run.
func (c *Config) RateAt(t time.Duration) float64 {
	if c.Profile != Lunch {
		return c.Rate
	}
	f := float64(t) / float64(c.Duration)
	m := 1.0
	switch {
	case f < 0.4:
		m = 1 + (c.Peak-1)*f/0.4
	case f < 0.6:
		m = c.Peak
	case f < 1:
		m = c.Peak - (c.Peak-1)*(f-0.6)/0.4
	}
	return c.Rate * m
}

// sim is one simulated scanner.
type sim struct {
	index    int
	facility kiphttp.EnrolledAtPlace
	deviceID string
	box      *outbox.Outbox
	syncer   *outbox.Syncer
	sc       *scanner.Scanner
	depth    atomic.Int64 // visits added and not yet acknowledged or rejected
	admitted []string     // ids of the visits put in the outbox
}

// Run sets up the scanners, runs the load for Duration, waits for the outboxes to
// drain and returns the report. The scan loop never touches the network: it mints a
// pass (the visitor's phone), decides it and appends the visit to the outbox.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	stats := newHTTPStats()
	hc := &http.Client{Timeout: cfg.HTTPTimeout, Transport: &statsTransport{next: &http.Transport{
		MaxIdleConns: cfg.Scanners * 2, MaxIdleConnsPerHost: cfg.Scanners, IdleConnTimeout: 30 * time.Second,
	}, stats: stats}}
	sims, err := setup(ctx, &cfg, hc)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range sims {
			s.box.Close()
		}
	}()

	rep := &Report{Scanners: cfg.Scanners, Profile: cfg.Profile, Duration: cfg.Duration, Checked: cfg.Checker != nil}
	var decided, admitted, acked, rejected, waited atomic.Int64
	lat := newLatencies()
	var firstErr error
	var errMu sync.Mutex

	syncCtx, stopSync := context.WithCancel(context.Background())
	defer stopSync()
	var syncWG sync.WaitGroup
	for _, s := range sims {
		s.syncer.OnResult = func(r outbox.SyncResult) {
			acked.Add(int64(r.Acked))
			rejected.Add(int64(r.Rejected))
			s.depth.Add(-int64(r.Acked + r.Rejected))
		}
		syncWG.Add(1)
		go func() { defer syncWG.Done(); s.syncer.Run(syncCtx) }()
	}

	start := time.Now()
	loadCtx, stopLoad := context.WithTimeout(ctx, cfg.Duration)
	defer stopLoad()
	var scanWG sync.WaitGroup
	kid := pass.KeyID(cfg.IssuerKey.Public().(ed25519.PublicKey))
	people := demo.People()
	for _, s := range sims {
		scanWG.Add(1)
		go func() {
			defer scanWG.Done()
			rng := mrand.New(mrand.NewPCG(uint64(s.index), uint64(time.Now().UnixNano())))
			place := kipass.Place{Category: s.facility.Category, Region: s.facility.Region}
			for {
				r := cfg.RateAt(time.Since(start)) / float64(cfg.Scanners)
				wait := time.Duration(rng.ExpFloat64() / r * float64(time.Second))
				t := time.NewTimer(wait)
				select {
				case <-loadCtx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				// The visitor's phone shows a fresh pass: not the scanner's work.
				now := time.Now()
				p := people[rng.IntN(len(people))]
				text, err := pass.Sign(&pass.Claims{KeyID: kid, IssuedAt: now, Expiry: now.Add(pass.DefaultTTL),
					TokenID: pass.NewTokenID(), SRef: randomBytes(pass.SRefSize), DTag: randomBytes(pass.DTagSize), Holder: p.Holder}, cfg.IssuerKey)
				if err != nil {
					errMu.Lock()
					firstErr = errors.Join(firstErr, err)
					errMu.Unlock()
					return
				}
				// The decision: verify, rules, and the durable local write. No network.
				t0 := time.Now()
				res := s.sc.Decide(text, place, 1, now)
				tDecide := time.Since(t0)
				if res.Admitted() {
					id := kipass.NewVisitID(now)
					if err := s.box.Add(context.Background(), res.Visit(id, s.facility.ID, s.deviceID, now)); err != nil {
						errMu.Lock()
						firstErr = errors.Join(firstErr, fmt.Errorf("outbox: %w", err))
						errMu.Unlock()
						return
					}
					s.admitted = append(s.admitted, id)
					s.depth.Add(1)
					admitted.Add(1)
					if cfg.NotifyEvery {
						s.syncer.Notify()
					}
				}
				total := time.Since(t0)
				decided.Add(1)
				lat.add(tDecide, total)
				if tDecide > cfg.WaitThreshold {
					waited.Add(1)
				}
			}
		}()
	}

	depth := func() (total, most int64) {
		for _, s := range sims {
			d := s.depth.Load()
			total += d
			most = max(most, d)
		}
		return
	}
	bar := &progress{w: cfg.Progress, start: start, total: cfg.Duration}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	scanDone := make(chan struct{})
	go func() { scanWG.Wait(); close(scanDone) }()
	sample := func(phase string) {
		d, m := depth()
		rep.MaxOutbox = max(rep.MaxOutbox, d)
		rep.MaxOutboxScanner = max(rep.MaxOutboxScanner, m)
		bar.draw(phase, decided.Load(), acked.Load(), d, stats.count429())
	}
loop:
	for {
		select {
		case <-scanDone:
			break loop
		case <-tick.C:
			sample("load")
		}
	}
	rep.Elapsed = time.Since(start)

	// Drain: ask every scanner to upload now, then wait for empty outboxes.
	drainStart := time.Now()
	for _, s := range sims {
		s.syncer.Notify()
	}
	drainDeadline := time.After(cfg.DrainTimeout)
drain:
	for {
		if d, _ := depth(); d <= 0 {
			rep.Drained = true
			break
		}
		select {
		case <-ctx.Done():
			break drain
		case <-drainDeadline:
			break drain
		case <-tick.C:
			sample("drain")
		}
	}
	rep.Drain = time.Since(drainStart)
	stopSync()
	syncWG.Wait()
	sample("done")
	bar.finish()

	rep.Decided, rep.Admitted, rep.Acked, rep.Rejected = decided.Load(), admitted.Load(), acked.Load(), rejected.Load()
	rep.WaitedForNetwork = waited.Load()
	rep.DecideP50, rep.DecideP99, rep.DecideMax, rep.RecordP99 = lat.summary()
	rep.HTTP = stats.summary()
	for _, s := range sims {
		n, err := s.box.Len(context.Background())
		if err != nil {
			return nil, err
		}
		rep.LeftInOutboxes += int64(n)
	}
	if firstErr != nil {
		return rep, firstErr
	}
	if cfg.Checker != nil {
		var devices, ids []string
		for _, s := range sims {
			devices = append(devices, s.deviceID)
			ids = append(ids, s.admitted...)
		}
		if err := rep.check(ctx, cfg.Checker, devices, ids); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// setup creates a facility and an enrolled device per scanner, and opens its outbox.
func setup(ctx context.Context, cfg *Config, hc *http.Client) ([]*sim, error) {
	base := 10_000_000 + mrand.IntN(80_000_000)
	sims := make([]*sim, cfg.Scanners)
	errs := make(chan error, cfg.Scanners)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range sims {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := newSim(ctx, cfg, hc, i, businessNumber(base+i))
			if err != nil {
				errs <- fmt.Errorf("scanner %d: %w", i, err)
				return
			}
			sims[i] = s
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		for _, s := range sims {
			if s != nil {
				s.box.Close()
			}
		}
		return nil, err
	}
	return sims, nil
}

func newSim(ctx context.Context, cfg *Config, hc *http.Client, i int, bn string) (*sim, error) {
	regions := []string{"seoul", "busan", "daegu", "gyeonggi"}
	var enrol *kiphttp.EnrollResponse
	err := withFailover(ctx, cfg.Centrals, i, func(url string) error {
		admin := kiphttp.NewClient(url, cfg.AdminToken)
		admin.HTTPClient = hc
		f, err := admin.CreateFacility(ctx, &kiphttp.CreateFacilityRequest{Name: fmt.Sprintf("부하 식당 %d", i),
			BusinessNumber: bn, Category: "restaurant", Region: regions[i%len(regions)]})
		if err != nil && kipass.ErrorCode(err) != kipass.ECONFLICT {
			return err
		}
		if err != nil {
			return fmt.Errorf("facility %s exists: %w", bn, err)
		}
		code, err := admin.CreateEnrollmentCode(ctx, f.ID)
		if err != nil {
			return err
		}
		dev := kiphttp.NewClient(url, "")
		dev.HTTPClient = hc
		enrol, err = dev.Enroll(ctx, code.Code, fmt.Sprintf("loadgen-%d", i))
		return err
	})
	if err != nil {
		return nil, err
	}
	sc, err := scanner.New(cfg.Bundle)
	if err != nil {
		return nil, err
	}
	box, err := outbox.Open(filepath.Join(cfg.Dir, fmt.Sprintf("scanner-%04d.db", i)))
	if err != nil {
		return nil, err
	}
	s := &sim{index: i, facility: enrol.Facility, deviceID: enrol.Device.ID, box: box, sc: sc}
	s.syncer = &outbox.Syncer{Outbox: box, Batch: cfg.Batch, Idle: cfg.SyncIdle, MaxBackoff: 5 * time.Second}
	for k := range cfg.Centrals {
		c := kiphttp.NewClient(cfg.Centrals[(i+k)%len(cfg.Centrals)], enrol.Token)
		c.HTTPClient = hc
		s.syncer.Uploaders = append(s.syncer.Uploaders, c)
	}
	return s, nil
}

// withFailover calls f with each central URL in turn, starting at the i-th, until one
// answers; a few rounds ride out a node restart during setup.
func withFailover(ctx context.Context, urls []string, i int, f func(url string) error) error {
	var err error
	for round := 0; round < 5; round++ {
		for k := range urls {
			if err = f(urls[(i+k)%len(urls)]); err == nil {
				return nil
			}
			if c := kipass.ErrorCode(err); c != kipass.EINTERNAL && c != kipass.EUNAVAILABLE {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(round+1) * 300 * time.Millisecond):
		}
	}
	return err
}

// businessNumber returns a Korean business registration number with a valid check digit.
func businessNumber(n int) string {
	d := fmt.Sprintf("%09d", 100000000+n%900000000)
	sum := 0
	for k, w := range []int{1, 3, 7, 1, 3, 7, 1, 3, 5} {
		sum += int(d[k]-'0') * w
	}
	sum += int(d[8]-'0') * 5 / 10
	return d + fmt.Sprint((10-sum%10)%10)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// progress draws a one-line progress bar.
type progress struct {
	w     io.Writer
	start time.Time
	total time.Duration
	drawn bool
}

func (p *progress) draw(phase string, decided, acked, depth, shed int64) {
	if p.w == nil {
		return
	}
	el := time.Since(p.start)
	f := math.Min(1, float64(el)/float64(p.total))
	const width = 30
	n := int(f * width)
	bar := ""
	for i := 0; i < width; i++ {
		if i < n {
			bar += "#"
		} else {
			bar += "."
		}
	}
	fmt.Fprintf(p.w, "\r[%s] %5.1fs %-5s decided %d  acked %d  in outboxes %d  429s %d   ",
		bar, el.Seconds(), phase, decided, acked, depth, shed)
	p.drawn = true
}

func (p *progress) finish() {
	if p.w != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}
