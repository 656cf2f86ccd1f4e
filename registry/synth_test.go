package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/policy"
	"github.com/kipass/kipass/registry"
	"github.com/kipass/kipass/registry/sqlite"
)

// mixStats measures a population the way KDCA's daily figures count it.
type mixStats struct {
	n                                int
	minors                           int // under 18 on the day
	first, complete, booster         int
	adults, adultComplete            int
	over60, over60Booster            int
	firstProduct                     map[string]int
	recovered                        int
	decisions                        map[string]int // "PASS booster", "FAIL expired", ...
	seriesDay13, seriesDay14, day180 int
	born20021231, born20030101       int
	pcrAtBoundary, ratAtBoundary     int
	exempt, selfTests, positive      int
}

func measure(t *testing.T, people []*registry.Person, at time.Time) *mixStats {
	t.Helper()
	day := kipass.DateOf(at)
	s := &mixStats{n: len(people), firstProduct: map[string]int{}, decisions: map[string]int{}}
	rules := policy.Default()
	for _, p := range people {
		age := kipass.YearsBetween(p.BirthDate, day)
		if age < 18 {
			s.minors++
		} else {
			s.adults++
		}
		if age >= 60 {
			s.over60++
		}
		var done kipass.Date
		complete, boosted := false, false
		for i, d := range p.Doses {
			switch {
			case !complete && (d.Product == kipass.ProductJanssen || i >= 1):
				complete, done = true, d.Date
			case complete && d.Date > done:
				boosted = true
			}
		}
		if len(p.Doses) > 0 {
			s.first++
			s.firstProduct[p.Doses[0].Product]++
		}
		if complete {
			s.complete++
			if age >= 18 {
				s.adultComplete++
			}
			switch day - done {
			case 13:
				s.seriesDay13++
			case 14:
				s.seriesDay14++
			case 180:
				s.day180++
			}
		}
		if boosted {
			s.booster++
			if age >= 60 {
				s.over60Booster++
			}
		}
		if len(p.Recoveries) > 0 {
			s.recovered++
		}
		switch p.BirthDate {
		case kipass.MustParseDate("2002-12-31"):
			s.born20021231++
		case kipass.MustParseDate("2003-01-01"):
			s.born20030101++
		}
		for _, x := range p.Tests {
			switch {
			case x.Kind == kipass.TestPCR && (x.At.Equal((day - 2).Start()) || x.At.Equal((day - 2).Start().Add(-time.Second))):
				s.pcrAtBoundary++
			case x.Kind == kipass.TestRAT && x.At.Equal((day - 1).Start()):
				s.ratAtBoundary++
			case x.Kind == kipass.TestSelf:
				s.selfTests++
			}
			if x.Result == kipass.ResultPositive {
				s.positive++
			}
		}
		if len(p.Exemptions) > 0 {
			s.exempt++
		}
		dec, err := rules.Evaluate(policy.Case{At: at, Place: kipass.Place{Category: "gym", Region: "seoul"}, PartySize: 1, Holder: p.Facts(at)})
		if err != nil {
			t.Fatalf("%s: evaluate: %v", p.PersonID, err)
		}
		s.decisions[string(dec.Outcome)+" "+dec.Basis]++
	}
	return s
}

func share(k, n int) float64 { return float64(k) / float64(n) }

func synthPeople(n int, seed uint64) []*registry.Person {
	var out []*registry.Person
	for p := range registry.Synth(registry.SynthOptions{People: n, Seed: seed}) {
		out = append(out, p)
	}
	return out
}

// TestSynthMix checks the population against the targets of docs/registry.md.
func TestSynthMix(t *testing.T) {
	people := synthPeople(200_000, 1)
	s := measure(t, people, registry.SynthAt)
	pf := func(k int) float64 { return share(k, s.first) }
	targets := []struct {
		name      string
		got, want float64
		tol       float64
	}{
		{"UnderEighteen", share(s.minors, s.n), 0.14, 0.01},
		{"FirstDose", share(s.first, s.n), 0.869, 0.015},
		{"PrimarySeries", share(s.complete, s.n), 0.854, 0.015},
		{"Booster", share(s.booster, s.n), 0.505, 0.02},
		{"AdultsPrimarySeries", share(s.adultComplete, s.adults), 0.953, 0.015},
		{"Over60Booster", share(s.over60Booster, s.over60), 0.847, 0.03},
		{"Pfizer", pf(s.firstProduct[kipass.ProductPfizer]), 0.57, 0.03},
		{"AstraZeneca", pf(s.firstProduct[kipass.ProductAstraZeneca]), 0.25, 0.03},
		{"Moderna", pf(s.firstProduct[kipass.ProductModerna]), 0.15, 0.03},
		{"Janssen", pf(s.firstProduct[kipass.ProductJanssen]), 0.033, 0.01},
		{"Recovered", share(s.recovered, s.n), 0.017, 0.005},
	}
	for _, tc := range targets {
		t.Run(tc.name, func(t *testing.T) {
			t.Logf("%.4f (target %.3f ± %.3f)", tc.got, tc.want, tc.tol)
			if math.Abs(tc.got-tc.want) > tc.tol {
				t.Errorf("%s = %.4f, want %.3f ± %.3f", tc.name, tc.got, tc.want, tc.tol)
			}
		})
	}
	for k, v := range s.decisions {
		t.Logf("%-32s %6d %.4f", k, v, share(v, s.n))
	}
}

// TestSynthEdges checks that every edge of the rules is present in a sample, and that
// the rules decide each way they can.
func TestSynthEdges(t *testing.T) {
	people := synthPeople(100_000, 7)
	s := measure(t, people, registry.SynthAt)
	min := 100 // 0.1% of the sample
	counts := []struct {
		name string
		got  int
	}{
		{"SeriesD13", s.seriesDay13},
		{"SeriesD14", s.seriesDay14},
		{"SeriesD180", s.day180},
		{"Born20021231", s.born20021231},
		{"Born20030101", s.born20030101},
		{"PCRAtBoundary", s.pcrAtBoundary},
		{"RATAtBoundary", s.ratAtBoundary},
		{"SelfTests", s.selfTests},
		{"PositiveTests", s.positive},
		{"Exemptions", s.exempt},
		{"Novavax", s.firstProduct[kipass.ProductNovavax]},
	}
	for _, c := range counts {
		t.Run(c.name, func(t *testing.T) {
			if c.got < min {
				t.Errorf("%d people, want at least %d", c.got, min)
			}
		})
	}
	decisions := []string{
		"PASS booster", "PASS vaccinated", "PASS recovered", "PASS negative_pcr", "PASS negative_rat",
		"PASS minor", "PASS medical_exemption",
		"FAIL expired", "FAIL too_early", "FAIL series_incomplete", "FAIL recovery_expired",
		"FAIL not_vaccinated", "FAIL no_valid_test",
	}
	for _, dec := range decisions {
		t.Run(dec, func(t *testing.T) {
			if s.decisions[dec] < min/2 {
				t.Errorf("%d people decided %q, want at least %d", s.decisions[dec], dec, min/2)
			}
		})
	}
}

func TestSynthDeterministic(t *testing.T) {
	gen := func(n int, seed uint64, format string) []byte {
		var b bytes.Buffer
		if _, err := registry.WriteSynth(&b, format, registry.SynthOptions{People: n, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	for _, format := range []string{registry.FormatJSONL, registry.FormatCSV} {
		t.Run(format, func(t *testing.T) {
			a, b := gen(5000, 42, format), gen(5000, 42, format)
			if !bytes.Equal(a, b) {
				t.Fatal("the same seed gave two populations")
			}
			if c := gen(5000, 43, format); bytes.Equal(a, c) {
				t.Fatal("another seed gave the same population")
			}
			// The first people do not depend on how many are made.
			short := gen(1000, 42, format)
			if !bytes.HasPrefix(a, short) {
				t.Fatal("the first 1000 of 5000 differ from a population of 1000")
			}
			t.Logf("sha256 %x", sha256.Sum256(a))
		})
	}
}

// TestSynthImports writes a population in each format, imports it into a real
// database and expects every row stored.
func TestSynthImports(t *testing.T) {
	for _, format := range []string{registry.FormatJSONL, registry.FormatCSV} {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			n, err := registry.WriteSynth(&b, format, registry.SynthOptions{People: 20_000, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			st := mustOpenStore(t)
			rep, err := registry.Import(context.Background(), &b, st, registry.ImportOptions{Name: "people." + format, Now: registry.SynthAt})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Rejected != 0 || rep.Stored != n || rep.Rows != n {
				t.Fatalf("rows %d, stored %d, rejected %d (%v), want %d stored", rep.Rows, rep.Stored, rep.Rejected, rep.Rejections, n)
			}
			if got, err := st.Count(context.Background()); err != nil || got != n {
				t.Fatalf("count = %d, %v; want %d", got, err, n)
			}
		})
	}
}

func mustOpenStore(tb testing.TB) *sqlite.Store {
	tb.Helper()
	st, err := sqlite.Open(filepath.Join(tb.TempDir(), sqlite.FileName))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func BenchmarkSynth(b *testing.B) {
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if _, err := registry.WriteSynth(&buf, registry.FormatJSONL, registry.SynthOptions{People: 10_000, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(10_000*b.N)/b.Elapsed().Seconds(), "people/s")
}
