// Package tracetest builds a synthetic investigation world for tests: a real issuer and
// a real central (SQLite in a temporary directory) on a settable clock in early 2022, a
// population enrolled at the issuer, facilities with enrolled scanners, and weeks of
// visits recorded the way they happen (passes minted and decided by the scanner, phone
// check-ins through the signed gateway webhook, handwritten safe numbers and sealed
// phone numbers) together with the ground truth of who was where.
package tracetest

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/authority"
	"github.com/kipass/kipass/demo"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/sqlite"
	"github.com/kipass/kipass/trust"
)

// Tokens of the world's services.
const (
	AdminToken        = "tracetest-admin"
	InvestigatorToken = "tracetest-investigator"
	AuditorToken      = "tracetest-auditor"
	IssuerInvToken    = "tracetest-issuer-investigator"
	IssuerAuditToken  = "tracetest-issuer-auditor"
	Investigator      = "epi-1" // the audit actor of both investigator tokens
)

// PhoneSecret is the HMAC key of the world's telco gateway.
var PhoneSecret = []byte("tracetest-phone-gateway-secret")

// Clock is a settable clock shared by the world's services.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set sets the clock.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// World is a running issuer and central with their data.
type World struct {
	TB    testing.TB
	Clock *Clock
	Dir   string

	Authority   *authority.Dir
	SealKey     []byte // the authority's private sealing key
	SealKeyFile string
	Bundle      *trust.Bundle

	Issuer      *issuer.Service
	IssuerURL   string
	IssuerKeyID string
	issuerSrv   *httptest.Server

	Central       *kiphttp.Server
	CentralDB     *sqlite.DB
	CentralDBPath string
	CentralURL    string

	People     []*Person
	Facilities []*kipass.Facility
	Visits     []*Visit // the ground truth, in time order

	devices map[string]string          // facility id -> device token
	pending map[string][]*kipass.Visit // facility id -> visits not yet uploaded
	holder  kipass.Holder
	signed  []byte // the signed trust bundle central serves
}

// Person is one enrolled visitor.
type Person struct {
	PersonID, Name, Phone string
	Wallet                string // issuer wallet token
	SafeNumber            string // set once the person has used one
}

// Visit is one visit of the ground truth.
type Visit struct {
	Person     *Person
	FacilityID string
	At         time.Time
	Method     string
}

// CentralClient returns a client of central with token.
func (w *World) CentralClient(token string) *kiphttp.Client {
	return kiphttp.NewClient(w.CentralURL, token)
}

// IssuerClient returns a client of the issuer with token.
func (w *World) IssuerClient(token string) *kiphttp.Client {
	return kiphttp.NewClient(w.IssuerURL, token)
}

// New starts an empty world at now: an authority with one issuer, the issuer and
// central. Add people, facilities and visits with Populate.
func New(tb testing.TB, now time.Time) *World {
	tb.Helper()
	w := &World{TB: tb, Clock: &Clock{now: now}, Dir: tb.TempDir(), devices: map[string]string{}}
	w.holder = demo.People()[0].Holder
	a, err := authority.Init(filepath.Join(w.Dir, "authority"))
	if err != nil {
		tb.Fatal(err)
	}
	w.Authority = a
	if w.SealKey, err = a.SealPrivateKey(); err != nil {
		tb.Fatal(err)
	}
	w.SealKeyFile = filepath.Join(a.Path, authority.SealKeyFile)
	from := time.Date(2021, 1, 1, 0, 0, 0, 0, kipass.KST)
	keyFile := filepath.Join(w.Dir, "issuer.key")
	if w.IssuerKeyID, _, err = a.AddIssuer("tracetest issuer", nil, from, from.AddDate(10, 0, 0), keyFile); err != nil {
		tb.Fatal(err)
	}
	key, err := trust.ReadPrivateKey(keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	signed, bundle, err := a.SignBundle(nil, from)
	if err != nil {
		tb.Fatal(err)
	}
	w.Bundle = bundle
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	facts := issuer.FactSourceFunc(func(ctx context.Context, personID string) (*issuer.Facts, error) {
		return &issuer.Facts{PersonID: personID, Holder: w.holder, UpdatedAt: w.Clock.Now()}, nil
	})
	svc, err := issuer.Open(issuer.Config{
		DataDir: filepath.Join(w.Dir, "issuer"), SigningKey: ed25519.PrivateKey(key), Facts: facts,
		InvestigatorTokens: map[string]string{Investigator: IssuerInvToken}, AuditorToken: IssuerAuditToken,
		Now: w.Clock.Now, Logger: quiet, RegistryCooldown: -1,
	})
	if err != nil {
		tb.Fatal(err)
	}
	w.Issuer = svc
	w.issuerSrv = httptest.NewServer(svc.Handler())
	w.IssuerURL = w.issuerSrv.URL
	tb.Cleanup(func() {
		w.issuerSrv.Close()
		svc.Close()
	})

	w.signed = signed
	w.CentralDBPath = filepath.Join(w.Dir, "central.db")
	w.StartCentral()
	tb.Cleanup(w.StopCentral)
	return w
}

// StartCentral opens central's database and serves central on a new port.
func (w *World) StartCentral() {
	tb := w.TB
	tb.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqlite.OpenOptions(w.CentralDBPath, sqlite.Options{Now: w.Clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	s := kiphttp.NewServer()
	s.VisitService, s.FacilityService, s.AuditService, s.NoticeService = db, db, db, db
	s.DB = db
	s.IngestStats = db.IngestStats
	s.Auth = kiphttp.Auth{
		AdminTokens: []string{AdminToken}, AuditorTokens: []string{AuditorToken},
		InvestigatorTokens: map[string]string{Investigator: InvestigatorToken}, PhoneSecret: PhoneSecret,
	}
	s.Logger = quiet
	s.Now = w.Clock.Now
	s.Config.DeviceRate, s.Config.DeviceBurst = 1000, 1000
	s.SetBundle(w.signed, w.Bundle)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Open(ln); err != nil {
		tb.Fatal(err)
	}
	w.Central, w.CentralDB, w.CentralURL = s, db, "http://"+ln.Addr().String()
}

// StopCentral stops central and closes its database, so that a test can change the
// file underneath; it is safe to call twice.
func (w *World) StopCentral() {
	if w.Central == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w.Central.Close(ctx)
	w.CentralDB.Close()
	w.Central, w.CentralDB = nil, nil
}

// SignedBundle returns the signed trust bundle central serves.
func (w *World) SignedBundle() []byte { return w.signed }
