package loadgen

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Report is what a load run did, checked against the database.
type Report struct {
	Scanners int
	Profile  string
	Duration time.Duration // asked
	Elapsed  time.Duration // the load phase as run
	Drain    time.Duration // from the end of the load to empty outboxes
	Drained  bool

	Decided  int64 // scan decisions made
	Admitted int64 // of which admitted: visits put in an outbox
	Acked    int64 // visits central acknowledged (stored or already stored)
	Rejected int64 // visits central refused for good

	Checked        bool  // the database was read
	Stored         int64 // rows of this run's devices in the visit ledger
	StoredDistinct int64 // distinct visit ids among them
	Duplicates     int64 // Stored - StoredDistinct
	Missing        int64 // admitted visit ids not in the ledger
	Unknown        int64 // ledger ids of this run that no scanner decided

	MaxOutbox        int64 // most visits waiting in all outboxes at once
	MaxOutboxScanner int64 // most visits waiting in one outbox
	LeftInOutboxes   int64 // visits still in the outboxes at the end

	WaitedForNetwork int64         // decisions that took longer than the wait threshold
	DecideP50        time.Duration // verify and rules, no I/O
	DecideP99        time.Duration
	DecideMax        time.Duration
	RecordP99        time.Duration // decision plus the durable outbox write

	HTTP HTTPSummary
}

// WaitedShare is the share of decisions that waited.
func (r *Report) WaitedShare() float64 {
	if r.Decided == 0 {
		return 0
	}
	return float64(r.WaitedForNetwork) / float64(r.Decided)
}

// Problems lists what breaks the promises: every admitted visit stored exactly once,
// empty outboxes, no decision waiting for the network.
func (r *Report) Problems() []string {
	var p []string
	if !r.Drained || r.LeftInOutboxes != 0 {
		p = append(p, fmt.Sprintf("outboxes not drained: %d visits left", r.LeftInOutboxes))
	}
	if r.Checked {
		if r.StoredDistinct != r.Admitted || r.Missing != 0 || r.Unknown != 0 {
			p = append(p, fmt.Sprintf("stored %d distinct visits, decided-admitted %d (missing %d, unknown %d)", r.StoredDistinct, r.Admitted, r.Missing, r.Unknown))
		}
		if r.Duplicates != 0 {
			p = append(p, fmt.Sprintf("%d duplicate visits stored", r.Duplicates))
		}
	}
	if r.Rejected != 0 {
		p = append(p, fmt.Sprintf("%d visits rejected by central", r.Rejected))
	}
	if r.WaitedForNetwork != 0 {
		p = append(p, fmt.Sprintf("%d decisions waited", r.WaitedForNetwork))
	}
	return p
}

// String renders the report for people.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "loadgen report: %d scanners, profile %s, load %v, drain %v (drained: %v)\n",
		r.Scanners, r.Profile, r.Elapsed.Round(time.Millisecond), r.Drain.Round(time.Millisecond), r.Drained)
	fmt.Fprintf(&b, "  decided %d, admitted %d (%.0f/s), acknowledged %d, rejected %d\n",
		r.Decided, r.Admitted, float64(r.Admitted)/r.Elapsed.Seconds(), r.Acked, r.Rejected)
	if r.Checked {
		fmt.Fprintf(&b, "  stored %d, distinct %d, duplicates %d, missing %d, unknown %d\n",
			r.Stored, r.StoredDistinct, r.Duplicates, r.Missing, r.Unknown)
	} else {
		fmt.Fprintf(&b, "  stored: not checked (give --check-postgres or --check-sqlite)\n")
	}
	fmt.Fprintf(&b, "  outbox depth max %d (one scanner max %d), left %d\n", r.MaxOutbox, r.MaxOutboxScanner, r.LeftInOutboxes)
	fmt.Fprintf(&b, "  decisions that waited for the network: %d (%.4f%%); decide p50 %v p99 %v max %v; with outbox write p99 %v\n",
		r.WaitedForNetwork, 100*r.WaitedShare(), r.DecideP50, r.DecideP99, r.DecideMax, r.RecordP99)
	h := r.HTTP
	fmt.Fprintf(&b, "  uploads: %d requests, %d accepted (p50 %v p99 %v max %v), %d shed with 429, %d 5xx, %d other 4xx, %d transport errors",
		h.Requests, h.Accepted, h.AcceptedP50, h.AcceptedP99, h.AcceptedMax, h.Shed, h.ServerErrors, h.ClientErrors, h.TransportErrors)
	return b.String()
}

// JSON renders the report as JSON.
func (r *Report) JSON() string {
	b, _ := json.MarshalIndent(r, "", "  ")
	return string(b)
}

func (r *Report) check(ctx context.Context, c Checker, devices, admitted []string) error {
	ids, err := c.StoredIDs(ctx, devices)
	if err != nil {
		return fmt.Errorf("check database: %w", err)
	}
	r.Stored = int64(len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		seen[id] = true
	}
	r.StoredDistinct = int64(len(seen))
	r.Duplicates = r.Stored - r.StoredDistinct
	want := make(map[string]bool, len(admitted))
	for _, id := range admitted {
		want[id] = true
		if !seen[id] {
			r.Missing++
		}
	}
	for id := range seen {
		if !want[id] {
			r.Unknown++
		}
	}
	return nil
}

// Checker reads the visit ids stored for some devices, one row per ledger row, so that
// a duplicate shows as a repeated id.
type Checker interface {
	StoredIDs(ctx context.Context, deviceIDs []string) ([]string, error)
}

// PostgresChecker reads the ledger of a PostgreSQL central database.
type PostgresChecker struct{ DSN string }

// StoredIDs implements Checker.
func (c PostgresChecker) StoredIDs(ctx context.Context, devices []string) ([]string, error) {
	conn, err := pgx.Connect(ctx, c.DSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT id FROM visits WHERE device_id = ANY($1)`, devices)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// SQLiteChecker reads the ledger of a SQLite central database file.
type SQLiteChecker struct{ Path string }

// StoredIDs implements Checker.
func (c SQLiteChecker) StoredIDs(ctx context.Context, devices []string) ([]string, error) {
	db, err := sql.Open("sqlite", "file:"+c.Path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	list, _ := json.Marshal(devices)
	rows, err := db.QueryContext(ctx, `SELECT id FROM visits WHERE device_id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// latencies keeps every decision's times; a run makes at most a few hundred thousand.
type latencies struct {
	mu             sync.Mutex
	decide, record []time.Duration
}

func newLatencies() *latencies { return &latencies{} }

func (l *latencies) add(decide, record time.Duration) {
	l.mu.Lock()
	l.decide = append(l.decide, decide)
	l.record = append(l.record, record)
	l.mu.Unlock()
}

func (l *latencies) summary() (p50, p99, most, recordP99 time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.decide)
	slices.Sort(l.record)
	return quantile(l.decide, 0.5), quantile(l.decide, 0.99), quantile(l.decide, 1), quantile(l.record, 0.99)
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// HTTPSummary counts the upload requests by outcome.
type HTTPSummary struct {
	Requests        int64
	Accepted        int64 // 2xx
	Shed            int64 // 429
	ServerErrors    int64 // 5xx
	ClientErrors    int64 // other 4xx
	TransportErrors int64 // no answer: refused, reset, timed out
	AcceptedP50     time.Duration
	AcceptedP99     time.Duration
	AcceptedMax     time.Duration
}

type httpStats struct {
	mu       sync.Mutex
	s        HTTPSummary
	accepted []time.Duration
}

func newHTTPStats() *httpStats { return &httpStats{} }

func (h *httpStats) count429() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.s.Shed
}

func (h *httpStats) summary() HTTPSummary {
	h.mu.Lock()
	defer h.mu.Unlock()
	slices.Sort(h.accepted)
	s := h.s
	s.AcceptedP50, s.AcceptedP99, s.AcceptedMax = quantile(h.accepted, 0.5), quantile(h.accepted, 0.99), quantile(h.accepted, 1)
	return s
}

// statsTransport times the upload requests. Only the syncers' uploads count; setup
// calls go through it before the load and are ignored.
type statsTransport struct {
	next  http.RoundTripper
	stats *httpStats
}

func (t *statsTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/v1/visits") {
		return resp, err
	}
	d := time.Since(start)
	h := t.stats
	h.mu.Lock()
	defer h.mu.Unlock()
	h.s.Requests++
	switch {
	case err != nil:
		h.s.TransportErrors++
	case resp.StatusCode < 300:
		h.s.Accepted++
		h.accepted = append(h.accepted, d)
	case resp.StatusCode == http.StatusTooManyRequests:
		h.s.Shed++
	case resp.StatusCode >= 500:
		h.s.ServerErrors++
	default:
		h.s.ClientErrors++
	}
	return resp, err
}
