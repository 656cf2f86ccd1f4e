package http_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/seal"
	"github.com/kipass/kipass/sqlite"
	"github.com/kipass/kipass/trust"
)

// Tokens of the test server.
const (
	adminToken        = "admin-secret-token"
	investigatorName  = "kim.epi"
	investigatorToken = "investigator-secret-token"
	auditorToken      = "auditor-secret-token"
	phoneSecret       = "gateway-secret"
)

// testStore is a backend's database with the raw access the tests need.
type testStore interface {
	kipass.VisitService
	kipass.FacilityService
	kipass.AuditService
	kipass.NoticeService
	Ping(ctx context.Context) error
	Ready(ctx context.Context) error
	IngestStats() kipass.IngestStats
	Close() error

	// TamperAudit rewrites the reason of an audit entry behind the store's back.
	TamperAudit(ctx context.Context, seq int64, reason string) error
	// BlockWrites holds the lock visit ingest needs until release is called.
	BlockWrites(tb testing.TB) (release func())
	// CountVisit returns how many rows hold the visit id.
	CountVisit(ctx context.Context, id string) (int, error)
}

// storeOptions tune a test store.
type storeOptions struct {
	QueueSize int
	Now       func() time.Time
}

// backend opens a fresh, empty store; its cleanup is registered on tb.
type backend struct {
	name string
	open func(tb testing.TB, o storeOptions) testStore
}

// backends are the databases the HTTP suite runs against; the PostgreSQL one adds
// itself in postgres_test.go.
var backends = []backend{{name: "sqlite", open: openSQLite}}

// forEachBackend runs fn once per backend as a subtest.
func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

type sqliteStore struct {
	*sqlite.DB
	path string
}

func openSQLite(tb testing.TB, o storeOptions) testStore {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "central.db")
	db, err := sqlite.OpenOptions(path, sqlite.Options{QueueSize: o.QueueSize, Now: o.Now, BusyTimeout: 20 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return &sqliteStore{DB: db, path: path}
}

func (s *sqliteStore) raw(tb testing.TB) *sql.DB {
	db, err := sql.Open("sqlite", s.path+"?_busy_timeout=20000")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func (s *sqliteStore) TamperAudit(ctx context.Context, seq int64, reason string) error {
	db, err := sql.Open("sqlite", s.path+"?_busy_timeout=20000")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `DROP TRIGGER IF EXISTS audit_log_no_update`); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, `UPDATE audit_log SET reason = ? WHERE seq = ?`, reason, seq)
	return err
}

func (s *sqliteStore) BlockWrites(tb testing.TB) func() {
	conn, err := s.raw(tb).Conn(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		tb.Fatal(err)
	}
	return func() {
		conn.ExecContext(context.Background(), `ROLLBACK`)
		conn.Close()
	}
}

func (s *sqliteStore) CountVisit(ctx context.Context, id string) (int, error) {
	db, err := sql.Open("sqlite", s.path+"?_busy_timeout=20000&_query_only=1")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, `SELECT COUNT(*) FROM visits WHERE id = ?`, id).Scan(&n)
	return n, err
}

// testClock is an adjustable clock that starts at the real time.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// testEnv is a running server on a fresh store with its clients and keys.
type testEnv struct {
	tb       testing.TB
	Server   *kiphttp.Server
	Store    testStore
	Clock    *testClock
	URL      string
	Signed   []byte
	Bundle   *trust.Bundle
	SealPriv []byte
	Logs     *syncBuffer

	Admin, Investigator, Auditor, Anonymous *kiphttp.Client
	bizSeq                                  atomic.Int64
}

// envOptions change the server or store before it opens.
type envOptions struct {
	store  storeOptions
	config func(c *kiphttp.Config)
	server func(s *kiphttp.Server)
}

// MustOpenEnv starts a server on 127.0.0.1:0 on a fresh store of backend b.
func MustOpenEnv(tb testing.TB, b backend, o envOptions) *testEnv {
	tb.Helper()
	clock := newTestClock()
	if o.store.Now == nil {
		o.store.Now = clock.Now
	}
	st := b.open(tb, o.store)
	sealPub, sealPriv, err := seal.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	rootPub, rootPriv, _ := ed25519.GenerateKey(rand.Reader)
	bundle := &trust.Bundle{
		Version:    1,
		MadeAt:     clock.Now().UTC().Truncate(time.Second),
		Rules:      json.RawMessage(`{}`),
		Categories: []string{"restaurant", "cafe", "gym", "cinema"},
		Regions:    []string{"seoul", "busan", "daegu"},
		SealingKey: sealPub,
	}
	signed, err := trust.Sign(bundle, rootPriv)
	if err != nil {
		tb.Fatal(err)
	}
	verified, err := trust.Verify(signed, rootPub, nil)
	if err != nil {
		tb.Fatal(err)
	}
	logs := &syncBuffer{}
	s := kiphttp.NewServer()
	s.VisitService, s.FacilityService, s.AuditService, s.NoticeService = st, st, st, st
	s.DB = st
	s.IngestStats = st.IngestStats
	s.Auth = kiphttp.Auth{
		AdminTokens:        []string{adminToken},
		InvestigatorTokens: map[string]string{investigatorName: investigatorToken},
		AuditorTokens:      []string{auditorToken},
		PhoneSecret:        []byte(phoneSecret),
	}
	s.Config.DeviceRate, s.Config.DeviceBurst = 1000, 1000
	s.Config.StatusInterval = 50 * time.Millisecond
	s.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s.Now = clock.Now
	s.SetBundle(signed, verified)
	if o.config != nil {
		o.config(&s.Config)
	}
	if o.server != nil {
		o.server(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Open(ln); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// net/http's Shutdown counts a connection that was dialled but never sent a
		// request as busy for its first 5 seconds; a client pool under concurrency
		// leaves such connections behind, so allow more than that.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			tb.Errorf("close server: %v", err)
		}
	})
	url := s.URL()
	return &testEnv{
		tb: tb, Server: s, Store: st, Clock: clock, URL: url, Signed: signed, Bundle: verified, SealPriv: sealPriv, Logs: logs,
		Admin:        kiphttp.NewClient(url, adminToken),
		Investigator: kiphttp.NewClient(url, investigatorToken),
		Auditor:      kiphttp.NewClient(url, auditorToken),
		Anonymous:    kiphttp.NewClient(url, ""),
	}
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// BusinessNumber returns the n-th valid business registration number.
func BusinessNumber(n int64) string {
	d := fmt.Sprintf("%09d", 100000000+n)
	weights := []int{1, 3, 7, 1, 3, 7, 1, 3, 5}
	sum := 0
	for i, w := range weights {
		sum += int(d[i]-'0') * w
	}
	sum += int(d[8]-'0') * 5 / 10
	return d + strconv.Itoa((10-sum%10)%10)
}

// MustCreateFacility registers a facility with the admin token.
func (e *testEnv) MustCreateFacility(name, phone string) *kipass.Facility {
	e.tb.Helper()
	f, err := e.Admin.CreateFacility(context.Background(), &kiphttp.CreateFacilityRequest{
		Name: name, BusinessNumber: BusinessNumber(e.bizSeq.Add(1)), Category: "restaurant", Region: "seoul",
		Address: "서울 중구 세종대로 110", PhoneNumber: phone,
	})
	if err != nil {
		e.tb.Fatalf("create facility: %v", err)
	}
	return f
}

// MustEnroll enrols a new device at the facility and returns its client.
func (e *testEnv) MustEnroll(facilityID string) (*kiphttp.Client, *kiphttp.EnrollResponse) {
	e.tb.Helper()
	code, err := e.Admin.CreateEnrollmentCode(context.Background(), facilityID)
	if err != nil {
		e.tb.Fatalf("enrollment code: %v", err)
	}
	resp, err := e.Anonymous.Enroll(context.Background(), code.Code, "front desk")
	if err != nil {
		e.tb.Fatalf("enroll: %v", err)
	}
	return kiphttp.NewClient(e.URL, resp.Token), resp
}

var visitSeq atomic.Int64

// QRVisit returns a valid qr visit at the facility at time at.
func QRVisit(facilityID string, at time.Time) *kipass.Visit {
	return &kipass.Visit{
		ID:          fmt.Sprintf("v-%d-%d", time.Now().UnixNano(), visitSeq.Add(1)),
		FacilityID:  facilityID,
		At:          at.UTC().Truncate(time.Microsecond),
		Method:      kipass.MethodQR,
		IssuerKeyID: "naver-2022",
		TokenID:     randomBytes(kiphttp.TokenIDSize),
		SRef:        randomBytes(kiphttp.SRefSize),
		DTag:        randomBytes(kiphttp.DayTagSize),
		Outcome:     kipass.PASS,
		Basis:       kipass.BasisBooster,
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// rawResponse is an answer read whole.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// Error decodes an error answer.
func (r *rawResponse) Error() kiphttp.ErrorBody {
	var e kiphttp.ErrorResponse
	json.Unmarshal(r.Body, &e)
	return e.Error
}

// Do sends a raw request with an optional bearer token.
func (e *testEnv) Do(method, path, token string, body []byte, headers ...string) *rawResponse {
	e.tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// DoJSON sends v as JSON.
func (e *testEnv) DoJSON(method, path, token string, v any) *rawResponse {
	e.tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		e.tb.Fatal(err)
	}
	return e.Do(method, path, token, b)
}

// expectError checks an error answer's status, code and field.
func expectError(tb testing.TB, r *rawResponse, status int, code, field string) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	e := r.Error()
	if e.Code != code {
		tb.Fatalf("code %q, want %q: %s", e.Code, code, r.Body)
	}
	if e.Field != field {
		tb.Fatalf("field %q, want %q: %s", e.Field, field, r.Body)
	}
	if e.Message == "" {
		tb.Fatalf("no message: %s", r.Body)
	}
}

// checkNoSecrets fails if the server's log holds any of the strings.
func (e *testEnv) checkNoSecrets(tb testing.TB, secrets ...string) {
	tb.Helper()
	logs := e.Logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			tb.Errorf("the log holds a secret or personal datum %q", s)
		}
	}
}
