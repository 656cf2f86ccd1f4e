package issuer_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/authority"
	"github.com/kipass/kipass/demo"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/registry"
	regsqlite "github.com/kipass/kipass/registry/sqlite"
	"github.com/kipass/kipass/scanner"
	"github.com/kipass/kipass/trust"
)

// Tokens of the test services.
const (
	registryAdmin = "registry-admin-token"
	registryToken = "issuer-token-at-registry"
	investigator  = "investigator-token"
	auditorToken  = "auditor-token"
)

// testClock runs at real speed from the demo's start and can be moved forward.
type testClock struct {
	mu     sync.Mutex
	start  time.Time
	t0     time.Time
	offset time.Duration
}

func newClock() *testClock { return &testClock{start: demo.Start, t0: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.start.Add(time.Since(c.t0) + c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// testRegistry is the real immunization registry (registry.Server over registry/sqlite)
// on 127.0.0.1, holding the demo people.
type testRegistry struct {
	URL   string
	srv   *registry.Server
	store *regsqlite.Store
	done  chan error
}

// startRegistry starts a registry holding the demo people.
func startRegistry(tb testing.TB, clock func() time.Time) *testRegistry {
	tb.Helper()
	store, err := regsqlite.OpenOptions(filepath.Join(tb.TempDir(), regsqlite.FileName), regsqlite.Options{Now: clock})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &testRegistry{URL: "http://" + ln.Addr().String(), store: store, done: make(chan error, 1)}
	r.srv = registry.NewServer(store, registry.Config{
		AdminTokens: []string{registryAdmin}, IssuerTokens: map[string]string{"test issuer": registryToken},
		Now: clock, Logger: slog.New(slog.DiscardHandler),
	})
	go func() { r.done <- r.srv.Serve(ln) }()
	tb.Cleanup(r.Stop)
	admin := registry.NewClient(r.URL, registryAdmin, nil)
	for _, p := range demo.People() {
		if _, err := admin.PutPerson(context.Background(), registryPerson(p)); err != nil {
			tb.Fatalf("registry: put %s: %v", p.PersonID, err)
		}
	}
	return r
}

func registryPerson(p demo.Person) *registry.Person {
	rp := &registry.Person{PersonID: p.PersonID, BirthDate: *p.Holder.BirthDate, Doses: p.Holder.Doses, Tests: p.Holder.Tests}
	if p.Holder.RecoveredOn != nil {
		rp.Recoveries = []kipass.Date{*p.Holder.RecoveredOn}
	}
	if p.Holder.Exemption != "" {
		rp.Exemptions = []registry.Exemption{{Kind: p.Holder.Exemption}}
	}
	return rp
}

// Stop stops the registry: its port refuses connections from then on.
func (r *testRegistry) Stop() {
	if r.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.srv.Shutdown(ctx)
	<-r.done
	r.store.Close()
	r.srv = nil
}

// Facts is the issuer's fact source: the registry through its client.
func (r *testRegistry) Facts() issuer.FactSource {
	return issuer.RegistryFacts(registry.NewClient(r.URL, registryToken, nil))
}

// harness is an issuer on 127.0.0.1 with a real registry, an authority that trusts its
// key, and the one-time codes its console verifier made.
type harness struct {
	t      *testing.T
	clock  *testClock
	reg    *testRegistry
	cfg    issuer.Config
	svc    *issuer.Service
	srv    *httptest.Server
	URL    string
	bundle *trust.Bundle
	logs   *syncBuffer

	mu    sync.Mutex
	codes map[string]string // enrolment id -> one-time code
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newHarness starts a registry and an issuer; opts change the issuer's Config.
func newHarness(t *testing.T, opts ...func(*issuer.Config)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(), codes: map[string]string{}, logs: &syncBuffer{}}
	h.reg = startRegistry(t, h.clock.Now)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.cfg = issuer.Config{
		DataDir: t.TempDir(), SigningKey: key, Facts: h.reg.Facts(),
		Verifier: &issuer.ConsoleVerifier{Logger: logger, Now: h.clock.Now, OnCode: func(id, code string) {
			h.mu.Lock()
			h.codes[id] = code
			h.mu.Unlock()
		}},
		InvestigatorTokens: map[string]string{"epi-1": investigator}, AuditorToken: auditorToken,
		Now: h.clock.Now, Logger: logger, RegistryCooldown: -1,
	}
	for _, o := range opts {
		o(&h.cfg)
	}
	h.open()
	t.Cleanup(h.close)

	a, err := authority.Init(filepath.Join(t.TempDir(), "authority"))
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2021, 1, 1, 0, 0, 0, 0, kipass.KST)
	if _, _, err := a.AddIssuer("test issuer", key.Public().(ed25519.PublicKey), from, from.AddDate(10, 0, 0), ""); err != nil {
		t.Fatal(err)
	}
	if _, h.bundle, err = a.SignBundle(nil, from); err != nil {
		t.Fatal(err)
	}
	return h
}

// open opens the issuer on h.cfg and serves it.
func (h *harness) open() {
	h.t.Helper()
	svc, err := issuer.Open(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.svc = svc
	h.srv = httptest.NewServer(svc.Handler())
	h.URL = h.srv.URL
}

// close stops the issuer; reopen with open.
func (h *harness) close() {
	if h.srv != nil {
		h.srv.Close()
		h.svc.Close()
		h.srv = nil
	}
}

func (h *harness) code(enrolmentID string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.codes[enrolmentID]
}

// call makes one request and returns the status and body.
func (h *harness) call(method, path, token string, body any) (int, []byte) {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.URL+path, r)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, data
}

// mustCall is call that expects the status and decodes the answer into out.
func (h *harness) mustCall(method, path, token string, body any, want int, out any) {
	h.t.Helper()
	status, data := h.call(method, path, token, body)
	if status != want {
		h.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, status, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
}

// errorOf decodes an error answer.
func errorOf(t *testing.T, data []byte) issuer.ErrorBody {
	t.Helper()
	var e issuer.ErrorResponse
	if err := json.Unmarshal(data, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not an error answer: %s", data)
	}
	return e.Error
}

// enrol enrols a demo person directly and returns their wallet token.
func (h *harness) enrol(p demo.Person) string {
	h.t.Helper()
	tok, err := h.svc.EnrolDirect(context.Background(), issuer.Enrolment{
		Name: p.Name, Phone: p.Phone, BirthDate: *p.Holder.BirthDate, PersonID: p.PersonID})
	if err != nil {
		h.t.Fatalf("enrol %s: %v", p.PersonID, err)
	}
	return tok
}

// pass mints an online pass for the wallet token.
func (h *harness) pass(token string) *issuer.PassResponse {
	h.t.Helper()
	var p issuer.PassResponse
	h.mustCall("GET", "/v1/pass", token, nil, http.StatusOK, &p)
	return &p
}

// scanner returns a fresh scanner of the harness's bundle (fresh: no replay memory).
func (h *harness) scanner() *scanner.Scanner {
	h.t.Helper()
	s, err := scanner.New(h.bundle)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// gym is a facility where the pass is required at demo.Start.
var gym = kipass.Place{Category: "gym", Region: "seoul"}

func mustParse(t *testing.T, text string) *pass.Claims {
	t.Helper()
	p, err := pass.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return &p.Claims
}
