package issuer

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/demo"
	"github.com/kipass/kipass/pass"
)

// benchService opens an issuer whose facts come from the demo data and enrols the
// first demo visitor; the facts are cached before the timer starts.
func benchService(b *testing.B) (*Service, *visitor, *cachedFacts, string) {
	b.Helper()
	people := map[string]demo.Person{}
	for _, p := range demo.People() {
		people[p.PersonID] = p
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	clock := demo.Clock(demo.Start)
	s, err := Open(Config{
		DataDir: b.TempDir(), SigningKey: key, Now: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Benchmarks measure minting, not a registry: facts come from memory.
		Facts: FactSourceFunc(func(ctx context.Context, id string) (*Facts, error) {
			p, ok := people[id]
			if !ok {
				return nil, kipass.Errorf(kipass.ENOTFOUND, "no such person")
			}
			return &Facts{PersonID: id, Holder: p.Holder, UpdatedAt: demo.Start}, nil
		}),
		FactsTTL: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	p := demo.People()[0]
	tok, err := s.EnrolDirect(context.Background(), Enrolment{Name: p.Name, Phone: p.Phone, BirthDate: *p.Holder.BirthDate, PersonID: p.PersonID})
	if err != nil {
		b.Fatal(err)
	}
	v, err := s.db.visitorByToken(context.Background(), hashToken(tok))
	if err != nil {
		b.Fatal(err)
	}
	f, err := s.facts.get(context.Background(), v.PersonID)
	if err != nil {
		b.Fatal(err)
	}
	return s, v, f, tok
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "passes/s")
}

// BenchmarkEd25519Sign is the floor: one raw Ed25519 signature over a message the size
// of a pass's COSE Sig_structure.
func BenchmarkEd25519Sign(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 220)
	rand.Read(msg)
	for b.Loop() {
		ed25519.Sign(key, msg)
	}
	reportRate(b)
}

// BenchmarkMint is one online pass from cached facts: seal the subject reference,
// compute the day tag, encode the claims as CBOR, sign with COSE/Ed25519 and write
// the "KP1:" Base45 text.
func BenchmarkMint(b *testing.B) {
	s, v, f, _ := benchService(b)
	now := s.now().Truncate(time.Second)
	for b.Loop() {
		if _, err := s.mint(v, f, now, now.Add(pass.DefaultTTL)); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkMintQR is BenchmarkMint plus the QR code as SVG, what GET /v1/pass returns.
func BenchmarkMintQR(b *testing.B) {
	s, v, f, _ := benchService(b)
	now := s.now().Truncate(time.Second)
	for b.Loop() {
		text, err := s.mint(v, f, now, now.Add(pass.DefaultTTL))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := QRSVG(text); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkPassHandler is the whole GET /v1/pass handler without the network: wallet
// token (cached), facts (cached), mint, QR, status words and JSON.
func BenchmarkPassHandler(b *testing.B) {
	s, _, _, tok := benchService(b)
	h := s.Handler()
	req := httptest.NewRequest("GET", "/v1/pass", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("HTTP %d: %s", w.Code, w.Body)
		}
	}
	reportRate(b)
}
