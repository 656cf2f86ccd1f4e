package registry

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kipass/kipass"
)

// ValidatePersonID checks a person id: 1 to MaxPersonIDLen bytes of ASCII letters,
// digits, '-', '_' and '.', starting with a letter or a digit, so that it is safe in a
// URL path, a CSV cell and a log line.
func ValidatePersonID(id string) error {
	if id == "" {
		return kipass.FieldErrorf("person_id", "missing")
	}
	if len(id) > MaxPersonIDLen {
		return kipass.FieldErrorf("person_id", "longer than %d characters", MaxPersonIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '-' && c != '_' && c != '.') {
			return kipass.FieldErrorf("person_id", "%q: want letters, digits, '-', '_' and '.', starting with a letter or digit", id)
		}
	}
	return nil
}

// Validate checks the record as given, before Normalize: the id, a birth date, known
// products, test kinds, results and exemption kinds, no event before EarliestEvent,
// before the birth date or after now (a zero now skips that check), no two doses on one
// day, no fact listed twice, and the limits. The error is an EINVALID that names the
// field at fault by its position in the input, e.g. "doses[1].product".
func (p *Person) Validate(now time.Time) error {
	if err := ValidatePersonID(p.PersonID); err != nil {
		return err
	}
	today := dayOf(now)
	if p.BirthDate < EarliestBirth {
		return kipass.FieldErrorf("birth_date", "%s is before %s", p.BirthDate, EarliestBirth)
	}
	if p.BirthDate > today {
		return kipass.FieldErrorf("birth_date", "%s is in the future", p.BirthDate)
	}
	if len(p.Doses) > MaxDoses {
		return kipass.FieldErrorf("doses", "at most %d doses", MaxDoses)
	}
	for i, d := range p.Doses {
		f := indexField("doses", i)
		if err := checkDose(f, d, p.BirthDate, today); err != nil {
			return err
		}
		for _, e := range p.Doses[:i] {
			if e.Date == d.Date {
				return kipass.FieldErrorf(f+".date", "a second dose on %s", d.Date)
			}
		}
	}
	if len(p.Tests) > MaxTests {
		return kipass.FieldErrorf("tests", "at most %d tests", MaxTests)
	}
	for i, t := range p.Tests {
		f := indexField("tests", i)
		if err := checkTest(f, t, p.BirthDate, now); err != nil {
			return err
		}
		for _, e := range p.Tests[:i] {
			if e.Kind == t.Kind && e.At.Unix() == t.At.Unix() {
				return kipass.FieldErrorf(f, "the same %s test is listed twice", t.Kind)
			}
		}
	}
	if len(p.Recoveries) > MaxRecoveries {
		return kipass.FieldErrorf("recoveries", "at most %d releases from isolation", MaxRecoveries)
	}
	for i, r := range p.Recoveries {
		f := indexField("recoveries", i)
		if err := checkDay(f, r, p.BirthDate, today); err != nil {
			return err
		}
		if slices.Contains(p.Recoveries[:i], r) {
			return kipass.FieldErrorf(f, "%s is listed twice", r)
		}
	}
	if len(p.Exemptions) > len(kipass.Exemptions) {
		return kipass.FieldErrorf("exemptions", "at most %d exemptions", len(kipass.Exemptions))
	}
	for i, e := range p.Exemptions {
		f := indexField("exemptions", i)
		if e.Kind == "" {
			return kipass.FieldErrorf(f+".kind", "missing")
		}
		if kipass.IndexOf(kipass.Exemptions, e.Kind) < 0 {
			return kipass.FieldErrorf(f+".kind", "unknown exemption %q (want %s)", e.Kind, strings.Join(kipass.Exemptions, ", "))
		}
		if e.From != nil {
			if err := checkDay(f+".from", *e.From, p.BirthDate, today); err != nil {
				return err
			}
		}
		for _, x := range p.Exemptions[:i] {
			if x.Kind == e.Kind {
				return kipass.FieldErrorf(f+".kind", "%s is listed twice", e.Kind)
			}
		}
	}
	return nil
}

// Normalize puts the record in its stored form: doses, tests and recoveries in time
// order, test times in KST to the second, exemptions in kipass.Exemptions order.
func (p *Person) Normalize() {
	slices.SortFunc(p.Doses, func(a, b kipass.Dose) int { return cmp.Compare(a.Date, b.Date) })
	for i := range p.Tests {
		p.Tests[i].At = p.Tests[i].At.Truncate(time.Second).In(kipass.KST)
	}
	slices.SortFunc(p.Tests, func(a, b kipass.Test) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return cmp.Compare(kipass.IndexOf(kipass.TestKinds, a.Kind), kipass.IndexOf(kipass.TestKinds, b.Kind))
	})
	slices.Sort(p.Recoveries)
	slices.SortFunc(p.Exemptions, func(a, b Exemption) int {
		return cmp.Compare(kipass.IndexOf(kipass.Exemptions, a.Kind), kipass.IndexOf(kipass.Exemptions, b.Kind))
	})
}

// Facts returns the holder facts a pass minted at now carries: the birth date, the
// doses given on or before now's KST day, for each test kind the latest result
// notified in the TestLookback before now (a later positive hides an earlier
// negative; older results never count), the latest release from isolation on or
// before that day, and an exemption in force that day. Only what the rules can use
// travels: a pass must stay small enough for a QR code.
func (p *Person) Facts(now time.Time) kipass.Holder {
	today := kipass.DateOf(now)
	birth := p.BirthDate
	h := kipass.Holder{BirthDate: &birth}
	for _, d := range p.Doses {
		if d.Date <= today {
			h.Doses = append(h.Doses, d)
		}
	}
	latest := make([]int, len(kipass.TestKinds))
	for k := range latest {
		latest[k] = -1
	}
	since := now.Add(-TestLookback)
	for i, t := range p.Tests {
		k := kipass.IndexOf(kipass.TestKinds, t.Kind)
		if k < 0 || t.At.After(now) || !t.At.After(since) {
			continue
		}
		if latest[k] < 0 || t.At.After(p.Tests[latest[k]].At) {
			latest[k] = i
		}
	}
	for _, i := range latest {
		if i >= 0 {
			t := p.Tests[i]
			t.At = t.At.In(kipass.KST)
			h.Tests = append(h.Tests, t)
		}
	}
	slices.SortFunc(h.Tests, func(a, b kipass.Test) int { return a.At.Compare(b.At) })
	for _, r := range p.Recoveries {
		if r <= today && (h.RecoveredOn == nil || r > *h.RecoveredOn) {
			v := r
			h.RecoveredOn = &v
		}
	}
	for _, kind := range kipass.Exemptions {
		for _, e := range p.Exemptions {
			if e.Kind == kind && (e.From == nil || *e.From <= today) && h.Exemption == "" {
				h.Exemption = kind
			}
		}
	}
	return h
}

// FromHolder returns the record whose facts are h, for seeding a registry with people
// described by their holder facts (the demo visitors): the recovery becomes the only
// release from isolation and the exemption holds without a start day. A holder without
// a birth date gives a record that does not validate.
func FromHolder(id string, h kipass.Holder) *Person {
	p := &Person{PersonID: id, Doses: slices.Clone(h.Doses), Tests: slices.Clone(h.Tests)}
	if h.BirthDate != nil {
		p.BirthDate = *h.BirthDate
	} else {
		p.BirthDate = EarliestBirth - 1
	}
	if h.RecoveredOn != nil {
		p.Recoveries = []kipass.Date{*h.RecoveredOn}
	}
	if h.Exemption != "" {
		p.Exemptions = []Exemption{{Kind: h.Exemption}}
	}
	p.Normalize()
	return p
}

// AddDose records one dose. The same dose again changes nothing; another product on a
// day that has a dose is an ECONFLICT. Errors name the fields of the dose alone
// ("date", "product").
func (p *Person) AddDose(d kipass.Dose, now time.Time) (changed bool, err error) {
	if err := checkDose("", d, p.BirthDate, dayOf(now)); err != nil {
		return false, err
	}
	for _, e := range p.Doses {
		if e.Date == d.Date {
			if e.Product == d.Product {
				return false, nil
			}
			return false, kipass.Errorf(kipass.ECONFLICT, "a dose of another product is recorded on %s", d.Date)
		}
	}
	if len(p.Doses) >= MaxDoses {
		return false, kipass.Errorf(kipass.ECONFLICT, "the record holds %d doses, the most it may", MaxDoses)
	}
	p.Doses = append(p.Doses, d)
	p.Normalize()
	return true, nil
}

// AddTest records one test result. The same result again changes nothing; another
// result of the same kind at the same second is an ECONFLICT.
func (p *Person) AddTest(t kipass.Test, now time.Time) (changed bool, err error) {
	if err := checkTest("", t, p.BirthDate, now); err != nil {
		return false, err
	}
	for _, e := range p.Tests {
		if e.Kind == t.Kind && e.At.Unix() == t.At.Unix() {
			if e.Result == t.Result {
				return false, nil
			}
			return false, kipass.Errorf(kipass.ECONFLICT, "another result of this %s test is recorded", t.Kind)
		}
	}
	if len(p.Tests) >= MaxTests {
		return false, kipass.Errorf(kipass.ECONFLICT, "the record holds %d tests, the most it may: replace the record to drop old ones", MaxTests)
	}
	p.Tests = append(p.Tests, t)
	p.Normalize()
	return true, nil
}

// AddRecovery records a release from isolation on day. A day already recorded changes
// nothing.
func (p *Person) AddRecovery(day kipass.Date, now time.Time) (changed bool, err error) {
	if err := checkDay("date", day, p.BirthDate, dayOf(now)); err != nil {
		return false, err
	}
	if slices.Contains(p.Recoveries, day) {
		return false, nil
	}
	if len(p.Recoveries) >= MaxRecoveries {
		return false, kipass.Errorf(kipass.ECONFLICT, "the record holds %d releases from isolation, the most it may", MaxRecoveries)
	}
	p.Recoveries = append(p.Recoveries, day)
	p.Normalize()
	return true, nil
}

// checkDose checks one dose; prefix is the dose's field path ("doses[2]") or "" for a
// dose given alone.
func checkDose(prefix string, d kipass.Dose, birth, today kipass.Date) error {
	if d.Product == "" {
		return kipass.FieldErrorf(join(prefix, "product"), "missing")
	}
	if kipass.IndexOf(kipass.Products, d.Product) < 0 {
		return kipass.FieldErrorf(join(prefix, "product"), "unknown vaccine product %q (want %s)", d.Product, strings.Join(kipass.Products, ", "))
	}
	return checkDay(join(prefix, "date"), d.Date, birth, today)
}

// checkTest checks one test result against the birth date and now.
func checkTest(prefix string, t kipass.Test, birth kipass.Date, now time.Time) error {
	if t.Kind == "" {
		return kipass.FieldErrorf(join(prefix, "kind"), "missing")
	}
	if kipass.IndexOf(kipass.TestKinds, t.Kind) < 0 {
		return kipass.FieldErrorf(join(prefix, "kind"), "unknown test kind %q (want %s)", t.Kind, strings.Join(kipass.TestKinds, ", "))
	}
	if t.Result == "" {
		return kipass.FieldErrorf(join(prefix, "result"), "missing")
	}
	if kipass.IndexOf(kipass.TestResults, t.Result) < 0 {
		return kipass.FieldErrorf(join(prefix, "result"), "unknown test result %q (want %s)", t.Result, strings.Join(kipass.TestResults, ", "))
	}
	f := join(prefix, "at")
	switch {
	case t.At.IsZero():
		return kipass.FieldErrorf(f, "missing")
	case t.At.Before(EarliestEvent.Start()):
		return kipass.FieldErrorf(f, "%s is before %s", t.At.Format(time.RFC3339), EarliestEvent)
	case t.At.Before(birth.Start()):
		return kipass.FieldErrorf(f, "%s is before the birth date", t.At.Format(time.RFC3339))
	case !now.IsZero() && t.At.After(now):
		return kipass.FieldErrorf(f, "%s is in the future", t.At.Format(time.RFC3339))
	}
	return nil
}

// checkDay checks the day of an event: not before EarliestEvent or the birth date, not
// after today.
func checkDay(field string, d, birth, today kipass.Date) error {
	switch {
	case d < EarliestEvent:
		return kipass.FieldErrorf(field, "%s is before %s", d, EarliestEvent)
	case d < birth:
		return kipass.FieldErrorf(field, "%s is before the birth date", d)
	case d > today:
		return kipass.FieldErrorf(field, "%s is in the future", d)
	}
	return nil
}

// dayOf returns the KST day of now, or the last representable day for a zero now.
func dayOf(now time.Time) kipass.Date {
	if now.IsZero() {
		return kipass.Date(math.MaxInt32)
	}
	return kipass.DateOf(now)
}

func indexField(name string, i int) string { return name + "[" + strconv.Itoa(i) + "]" }

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}
