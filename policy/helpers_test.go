package policy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/policy"
)

// at reads a KST time written as "2022-01-12" (noon), "2022-01-12 23:59",
// "2022-01-12 23:59:59", or RFC 3339 with any offset.
func at(tb testing.TB, s string) time.Time {
	tb.Helper()
	var layout string
	switch len(s) {
	case len("2006-01-02"):
		s, layout = s+" 12:00", "2006-01-02 15:04"
	case len("2006-01-02 15:04"):
		layout = "2006-01-02 15:04"
	case len("2006-01-02 15:04:05"):
		layout = time.DateTime
	default:
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			tb.Fatalf("bad time %q: %v", s, err)
		}
		return t
	}
	t, err := time.ParseInLocation(layout, s, kipass.KST)
	if err != nil {
		tb.Fatalf("bad time %q: %v", s, err)
	}
	return t
}

// fact adds one fact to a holder.
type fact func(tb testing.TB, h *kipass.Holder)

func holder(tb testing.TB, facts ...fact) kipass.Holder {
	tb.Helper()
	var h kipass.Holder
	for _, f := range facts {
		f(tb, &h)
	}
	return h
}

func born(s string) fact {
	return func(tb testing.TB, h *kipass.Holder) { d := kipass.MustParseDate(s); h.BirthDate = &d }
}

func dose(date, product string) fact {
	return func(tb testing.TB, h *kipass.Holder) {
		h.Doses = append(h.Doses, kipass.Dose{Date: kipass.MustParseDate(date), Product: product})
	}
}

// series is two doses of Pfizer, the second on day d.
func series(first, d string) fact {
	return func(tb testing.TB, h *kipass.Holder) {
		dose(first, kipass.ProductPfizer)(tb, h)
		dose(d, kipass.ProductPfizer)(tb, h)
	}
}

func test(kind, result, when string) fact {
	return func(tb testing.TB, h *kipass.Holder) {
		h.Tests = append(h.Tests, kipass.Test{Kind: kind, Result: result, At: at(tb, when)})
	}
}

func pcr(when string) fact { return test(kipass.TestPCR, kipass.ResultNegative, when) }
func rat(when string) fact { return test(kipass.TestRAT, kipass.ResultNegative, when) }

func recovered(s string) fact {
	return func(tb testing.TB, h *kipass.Holder) { d := kipass.MustParseDate(s); h.RecoveredOn = &d }
}

func exempt(kind string) fact {
	return func(tb testing.TB, h *kipass.Holder) { h.Exemption = kind }
}

// evalCase is one row of a table test: a case and the decision it must get.
type evalCase struct {
	name   string
	at     string // see at()
	cat    string // default "gym"
	region string // default "seoul"
	party  int    // default 1
	holder []fact

	want  string // "OUTCOME basis", e.g. "PASS negative_pcr"
	until string // ValidUntil in RFC 3339, "" for nil
	grace bool
}

func (c evalCase) build(tb testing.TB) policy.Case {
	tb.Helper()
	pc := policy.Case{
		At:        at(tb, c.at),
		Place:     kipass.Place{Category: c.cat, Region: c.region},
		PartySize: c.party,
		Holder:    holder(tb, c.holder...),
	}
	if pc.Place.Category == "" {
		pc.Place.Category = "gym"
	}
	if pc.Place.Region == "" {
		pc.Place.Region = "seoul"
	}
	if pc.PartySize == 0 {
		pc.PartySize = 1
	}
	return pc
}

func runEvalCases(t *testing.T, r *policy.Rules, cases []evalCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := r.Evaluate(c.build(t))
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			checkDecision(t, d, c.want, c.until, c.grace)
		})
	}
}

func checkDecision(t *testing.T, d kipass.Decision, want, until string, grace bool) {
	t.Helper()
	outcome, basis, _ := strings.Cut(want, " ")
	if string(d.Outcome) != outcome || d.Basis != basis {
		t.Errorf("decision = %s %s (%s), want %s", d.Outcome, d.Basis, d.Reason, want)
	}
	switch {
	case until == "" && d.ValidUntil != nil:
		t.Errorf("valid until = %s, want none", d.ValidUntil.Format(time.RFC3339))
	case until != "" && d.ValidUntil == nil:
		t.Errorf("valid until = none, want %s", until)
	case until != "" && d.ValidUntil.Format(time.RFC3339) != until:
		t.Errorf("valid until = %s, want %s", d.ValidUntil.Format(time.RFC3339), until)
	}
	if d.Grace != grace {
		t.Errorf("grace = %v, want %v", d.Grace, grace)
	}
	if d.Reason == "" || !strings.HasSuffix(d.Reason, ".") || strings.Count(d.Reason, ". ") > 0 {
		t.Errorf("reason %q is not one sentence", d.Reason)
	}
}
