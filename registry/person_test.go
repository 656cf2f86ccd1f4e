package registry_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/demo"
	"github.com/kipass/kipass/registry"
)

var now = time.Date(2022, 1, 27, 12, 0, 0, 0, kipass.KST)

func day(s string) kipass.Date   { return kipass.MustParseDate(s) }
func dayp(s string) *kipass.Date { d := day(s); return &d }
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func validPerson() *registry.Person {
	return &registry.Person{
		PersonID:   "R-0001",
		BirthDate:  day("1984-03-02"),
		Doses:      []kipass.Dose{{Date: day("2021-06-10"), Product: "pfizer"}, {Date: day("2021-07-22"), Product: "pfizer"}},
		Tests:      []kipass.Test{{Kind: "pcr", Result: "negative", At: at("2022-01-26T15:00:00+09:00")}},
		Recoveries: []kipass.Date{day("2021-03-01")},
		Exemptions: []registry.Exemption{{Kind: "medical", From: dayp("2021-12-01")}},
	}
}

func TestPersonValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *registry.Person)
		field  string // "" for a valid record
	}{
		{"Valid", func(p *registry.Person) {}, ""},
		{"ValidMinimal", func(p *registry.Person) { *p = registry.Person{PersonID: "x", BirthDate: day("2000-01-01")} }, ""},
		{"ErrMissingID", func(p *registry.Person) { p.PersonID = "" }, "person_id"},
		{"ErrIDWithSlash", func(p *registry.Person) { p.PersonID = "R/1" }, "person_id"},
		{"ErrIDStartsWithDash", func(p *registry.Person) { p.PersonID = "-R1" }, "person_id"},
		{"ErrIDTooLong", func(p *registry.Person) { p.PersonID = strings.Repeat("a", 65) }, "person_id"},
		{"ErrBirthFuture", func(p *registry.Person) { p.BirthDate = day("2022-01-28") }, "birth_date"},
		{"ErrBirthTooOld", func(p *registry.Person) { p.BirthDate = day("1899-12-31") }, "birth_date"},
		{"ErrUnknownProduct", func(p *registry.Person) { p.Doses[1].Product = "sputnik" }, "doses[1].product"},
		{"ErrMissingProduct", func(p *registry.Person) { p.Doses[0].Product = "" }, "doses[0].product"},
		{"ErrDoseBeforeBirth", func(p *registry.Person) { p.BirthDate = day("2021-07-01") }, "doses[0].date"},
		{"ErrDoseBefore2020", func(p *registry.Person) { p.Doses[0].Date = day("2019-12-31") }, "doses[0].date"},
		{"ErrDoseFuture", func(p *registry.Person) { p.Doses[1].Date = day("2022-01-28") }, "doses[1].date"},
		{"ErrTwoDosesOneDay", func(p *registry.Person) { p.Doses[1].Date = p.Doses[0].Date }, "doses[1].date"},
		{"ErrTooManyDoses", func(p *registry.Person) {
			for i := range 11 {
				p.Doses = append(p.Doses, kipass.Dose{Date: day("2021-08-01") + kipass.Date(i), Product: "pfizer"})
			}
		}, "doses"},
		{"ErrUnknownTestKind", func(p *registry.Person) { p.Tests[0].Kind = "antibody" }, "tests[0].kind"},
		{"ErrUnknownResult", func(p *registry.Person) { p.Tests[0].Result = "inconclusive" }, "tests[0].result"},
		{"ErrTestMissingTime", func(p *registry.Person) { p.Tests[0].At = time.Time{} }, "tests[0].at"},
		{"ErrTestFuture", func(p *registry.Person) { p.Tests[0].At = now.Add(time.Second) }, "tests[0].at"},
		{"ErrTestTwice", func(p *registry.Person) { p.Tests = append(p.Tests, p.Tests[0]) }, "tests[1]"},
		{"ErrTestTwiceSubSecond", func(p *registry.Person) {
			p.Tests = append(p.Tests, kipass.Test{Kind: "pcr", Result: "positive", At: p.Tests[0].At.Add(300 * time.Millisecond)})
		}, "tests[1]"},
		{"ErrRecoveryFuture", func(p *registry.Person) { p.Recoveries[0] = day("2022-02-01") }, "recoveries[0]"},
		{"ErrRecoveryTwice", func(p *registry.Person) { p.Recoveries = append(p.Recoveries, p.Recoveries[0]) }, "recoveries[1]"},
		{"ErrUnknownExemption", func(p *registry.Person) { p.Exemptions[0].Kind = "religious" }, "exemptions[0].kind"},
		{"ErrExemptionFuture", func(p *registry.Person) { p.Exemptions[0].From = dayp("2022-02-01") }, "exemptions[0].from"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := validPerson()
			tc.change(p)
			err := p.Validate(now)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if kipass.ErrorCode(err) != kipass.EINVALID || kipass.ErrorField(err) != tc.field {
				t.Fatalf("Validate = %v, want EINVALID naming %q", err, tc.field)
			}
		})
	}
}

func TestPersonFacts(t *testing.T) {
	base := registry.Person{PersonID: "R-1", BirthDate: day("1984-03-02")}
	tests := []struct {
		name   string
		person func(p *registry.Person)
		want   kipass.Holder
	}{
		{"BirthDateOnly", func(p *registry.Person) {}, kipass.Holder{}},
		{"DosesUpToToday", func(p *registry.Person) {
			p.Doses = []kipass.Dose{{Date: day("2021-06-10"), Product: "pfizer"}, {Date: day("2022-01-27"), Product: "moderna"}}
		}, kipass.Holder{Doses: []kipass.Dose{{Date: day("2021-06-10"), Product: "pfizer"}, {Date: day("2022-01-27"), Product: "moderna"}}}},
		{"LatestRecoveryOnOrBeforeToday", func(p *registry.Person) {
			p.Recoveries = []kipass.Date{day("2020-05-01"), day("2021-12-20"), day("2021-03-01")}
		}, kipass.Holder{RecoveredOn: dayp("2021-12-20")}},
		{"LatestTestPerKind", func(p *registry.Person) {
			p.Tests = []kipass.Test{
				{Kind: "pcr", Result: "negative", At: at("2022-01-25T09:00:00+09:00")},
				{Kind: "pcr", Result: "negative", At: at("2022-01-26T09:00:00+09:00")},
				{Kind: "rat", Result: "negative", At: at("2022-01-27T08:00:00+09:00")},
				{Kind: "self", Result: "negative", At: at("2022-01-27T07:00:00+09:00")},
			}
		}, kipass.Holder{Tests: []kipass.Test{
			{Kind: "pcr", Result: "negative", At: at("2022-01-26T09:00:00+09:00")},
			{Kind: "self", Result: "negative", At: at("2022-01-27T07:00:00+09:00")},
			{Kind: "rat", Result: "negative", At: at("2022-01-27T08:00:00+09:00")},
		}}},
		{"LaterPositiveHidesNegative", func(p *registry.Person) {
			p.Tests = []kipass.Test{
				{Kind: "pcr", Result: "negative", At: at("2022-01-26T09:00:00+09:00")},
				{Kind: "pcr", Result: "positive", At: at("2022-01-27T09:00:00+09:00")},
			}
		}, kipass.Holder{Tests: []kipass.Test{{Kind: "pcr", Result: "positive", At: at("2022-01-27T09:00:00+09:00")}}}},
		{"TestsOlderThanAWeekDropped", func(p *registry.Person) {
			p.Tests = []kipass.Test{{Kind: "pcr", Result: "negative", At: now.Add(-registry.TestLookback)}}
		}, kipass.Holder{}},
		{"ExemptionInForce", func(p *registry.Person) {
			p.Exemptions = []registry.Exemption{{Kind: "medical", From: dayp("2022-01-27")}}
		}, kipass.Holder{Exemption: "medical"}},
		{"ExemptionWithoutStart", func(p *registry.Person) {
			p.Exemptions = []registry.Exemption{{Kind: "medical"}}
		}, kipass.Holder{Exemption: "medical"}},
		{"ExemptionNotYet", func(p *registry.Person) {
			p.Exemptions = []registry.Exemption{{Kind: "medical", From: dayp("2022-01-28")}}
		}, kipass.Holder{}},
		{"FutureFactsHidden", func(p *registry.Person) {
			p.Doses = []kipass.Dose{{Date: day("2022-01-28"), Product: "pfizer"}}
			p.Recoveries = []kipass.Date{day("2022-01-28")}
			p.Tests = []kipass.Test{{Kind: "pcr", Result: "negative", At: now.Add(time.Second)}}
		}, kipass.Holder{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := base
			tc.person(&p)
			got := p.Facts(now)
			tc.want.BirthDate = dayp("1984-03-02")
			if !reflect.DeepEqual(normalizeHolder(got), normalizeHolder(tc.want)) {
				t.Fatalf("Facts =\n%+v\nwant\n%+v", got, tc.want)
			}
			if err := got.Validate(now); err != nil {
				t.Fatalf("the facts do not validate: %v", err)
			}
		})
	}
}

// normalizeHolder makes times comparable with DeepEqual.
func normalizeHolder(h kipass.Holder) kipass.Holder {
	for i := range h.Tests {
		h.Tests[i].At = h.Tests[i].At.UTC()
	}
	return h
}

// TestFromHolder turns each demo visitor into a record whose facts at the demo moment
// are the visitor's holder facts again.
func TestFromHolder(t *testing.T) {
	for _, dp := range demo.People() {
		t.Run(dp.PersonID, func(t *testing.T) {
			p := registry.FromHolder(dp.PersonID, dp.Holder)
			if err := p.Validate(demo.Start); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got := p.Facts(demo.Start)
			if !reflect.DeepEqual(normalizeHolder(got), normalizeHolder(dp.Holder)) {
				t.Fatalf("Facts =\n%+v\nwant\n%+v", got, dp.Holder)
			}
		})
	}
	if err := registry.FromHolder("R-1", kipass.Holder{}).Validate(now); kipass.ErrorField(err) != "birth_date" {
		t.Fatalf("a holder without a birth date: %v, want a birth_date error", err)
	}
}

func TestPersonAdd(t *testing.T) {
	t.Run("DoseAgainUnchanged", func(t *testing.T) {
		p := validPerson()
		changed, err := p.AddDose(p.Doses[0], now)
		if err != nil || changed {
			t.Fatalf("AddDose = %v, %v; want unchanged", changed, err)
		}
	})
	t.Run("DoseSorted", func(t *testing.T) {
		p := validPerson()
		changed, err := p.AddDose(kipass.Dose{Date: day("2021-05-01"), Product: "pfizer"}, now)
		if err != nil || !changed || p.Doses[0].Date != day("2021-05-01") || len(p.Doses) != 3 {
			t.Fatalf("AddDose = %v, %v; doses %v", changed, err, p.Doses)
		}
	})
	t.Run("ErrDoseOtherProductSameDay", func(t *testing.T) {
		p := validPerson()
		_, err := p.AddDose(kipass.Dose{Date: p.Doses[0].Date, Product: "moderna"}, now)
		if kipass.ErrorCode(err) != kipass.ECONFLICT {
			t.Fatalf("AddDose = %v, want ECONFLICT", err)
		}
	})
	t.Run("ErrDoseFieldNamesAlone", func(t *testing.T) {
		p := validPerson()
		_, err := p.AddDose(kipass.Dose{Date: day("2021-09-01"), Product: "sputnik"}, now)
		if kipass.ErrorField(err) != "product" {
			t.Fatalf("AddDose = %v, want field product", err)
		}
	})
	t.Run("TestAgainUnchanged", func(t *testing.T) {
		p := validPerson()
		changed, err := p.AddTest(p.Tests[0], now)
		if err != nil || changed {
			t.Fatalf("AddTest = %v, %v; want unchanged", changed, err)
		}
	})
	t.Run("ErrTestOtherResult", func(t *testing.T) {
		p := validPerson()
		x := p.Tests[0]
		x.Result = "positive"
		if _, err := p.AddTest(x, now); kipass.ErrorCode(err) != kipass.ECONFLICT {
			t.Fatalf("AddTest = %v, want ECONFLICT", err)
		}
	})
	t.Run("ErrTestsFull", func(t *testing.T) {
		p := validPerson()
		p.Tests = nil
		for i := range registry.MaxTests {
			p.Tests = append(p.Tests, kipass.Test{Kind: "pcr", Result: "negative", At: now.Add(-time.Duration(i+1) * time.Hour)})
		}
		_, err := p.AddTest(kipass.Test{Kind: "rat", Result: "negative", At: now}, now)
		if kipass.ErrorCode(err) != kipass.ECONFLICT {
			t.Fatalf("AddTest = %v, want ECONFLICT", err)
		}
	})
	t.Run("RecoveryAgainUnchanged", func(t *testing.T) {
		p := validPerson()
		changed, err := p.AddRecovery(p.Recoveries[0], now)
		if err != nil || changed {
			t.Fatalf("AddRecovery = %v, %v; want unchanged", changed, err)
		}
	})
	t.Run("ErrRecoveryFuture", func(t *testing.T) {
		p := validPerson()
		if _, err := p.AddRecovery(day("2022-01-28"), now); kipass.ErrorField(err) != "date" {
			t.Fatalf("AddRecovery = %v, want field date", err)
		}
	})
}
