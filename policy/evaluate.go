package policy

import (
	"fmt"
	"strconv"
	"time"

	"github.com/kipass/kipass"
)

// Case is one question to the rules: may this visitor enter this facility at this time?
type Case struct {
	At        time.Time    // time of the check; its KST day is the day the rules use
	Place     kipass.Place // the facility's category and region
	PartySize int          // visitors in the party, 1 = alone; at least 1
	Holder    kipass.Holder
}

// Bases of FAIL decisions: why the visitor does not meet the pass.
const (
	BasisNotVaccinated    = "not_vaccinated"    // no dose, recovery, test or exemption at all
	BasisSeriesIncomplete = "series_incomplete" // doses, but the primary series is not complete
	BasisTooEarly         = "too_early"         // series complete, its waiting days not over
	BasisExpired          = "expired"           // series older than the expiry days, no booster
	BasisRecoveryExpired  = "recovery_expired"  // recovery too old, and no completed series
	BasisNoValidTest      = "no_valid_test"     // only tests, none negative, accepted and current
)

// Bases of NOT_REQUIRED decisions: why the pass is not required here and now.
const (
	BasisCategoryNotCovered = "category_not_covered" // never required for this category here
	BasisNotYetInForce      = "not_yet_in_force"     // required for this category from a later day
	BasisSuspended          = "suspended"            // suspended by a court order or the government
)

// failure is the reason a visitor fails, ordered from the most specific.
type failure uint8

const (
	failTooEarly failure = iota
	failExpired
	failSeriesIncomplete
	failRecoveryExpired
	failNoValidTest
	failNotVaccinated
	numFailures
)

var failureBases = [numFailures]string{
	failTooEarly:         BasisTooEarly,
	failExpired:          BasisExpired,
	failSeriesIncomplete: BasisSeriesIncomplete,
	failRecoveryExpired:  BasisRecoveryExpired,
	failNoValidTest:      BasisNoValidTest,
	failNotVaccinated:    BasisNotVaccinated,
}

// base is a holder basis with a sentence made from the document's numbers. Exemptions
// and tests carry their own sentences, one per kind.
type base uint8

const (
	baseBooster base = iota
	baseVaccinated
	baseMinor
	baseRecovered
	numBases
)

const (
	reasonNotCovered = "The pass is not required at this kind of facility."
	reasonNotInForce = "The pass is not yet required at this kind of facility on this date."
)

// compileReasons writes the sentences that depend on the document's numbers once, so
// that Evaluate never formats a string.
func (r *Rules) compileReasons() {
	days := func(n int) string {
		if n == 1 {
			return "1 day"
		}
		return strconv.Itoa(n) + " days"
	}
	if r.boosterWait == 0 {
		r.reasons[baseBooster] = "The visitor has a booster dose, which counts from its day and does not expire."
	} else {
		r.reasons[baseBooster] = fmt.Sprintf("The visitor has a booster dose, which counts from %s after it and does not expire.", days(r.boosterWait))
	}
	r.reasons[baseVaccinated] = fmt.Sprintf("The visitor completed the primary vaccination series at least %s ago.", days(r.seriesWait))
	r.reasons[baseMinor] = "The visitor is a minor, who does not need the pass."
	r.reasons[baseRecovered] = "The visitor has recovered from COVID-19."

	r.failReasons[failTooEarly] = fmt.Sprintf("The primary vaccination series was completed less than %s ago.", days(r.seriesWait))
	if r.expiry != nil {
		r.failReasons[failExpired] = fmt.Sprintf("The primary vaccination series was completed more than %s ago and there is no booster dose.", days(r.expiry.days))
	} else {
		r.failReasons[failExpired] = "The primary vaccination series no longer counts and there is no booster dose."
	}
	r.failReasons[failSeriesIncomplete] = "The visitor has not completed the primary vaccination series."
	r.failReasons[failRecoveryExpired] = fmt.Sprintf("The recovery was more than %s ago and the primary vaccination series is not complete.", days(r.recoveryDays))
	r.failReasons[failNoValidTest] = "The visitor has no negative test result that is accepted and still valid."
	r.failReasons[failNotVaccinated] = "The visitor has no vaccination, recovery, negative test or exemption that meets the pass."
}

// facts is what Evaluate derives from a holder once: validated, sorted, summarised.
type facts struct {
	birth      kipass.Date
	hasBirth   bool
	doses      int
	series     bool        // the primary series is complete
	seriesDay  kipass.Date // D, the day of the dose that completed it
	booster    bool
	boosterDay kipass.Date // the first dose on a day after D
	recovered  bool
	recovery   kipass.Date // R, release from isolation
	exemption  *exemption
}

// Evaluate answers one case. It returns an error (a *kipass.Error naming the field) for
// input the rules cannot judge: an unknown category, region, product, test kind or
// result, or exemption; a test after the check, or a dose, recovery or birth after its
// day; a party size below 1. The order in which bases are preferred when several hold
// is in docs/rules.md. Evaluate is on the hot path of every scan: it formats no string
// and allocates only the ValidUntil time.
func (r *Rules) Evaluate(c Case) (kipass.Decision, error) {
	cat, ok := r.catIndex[c.Place.Category]
	if !ok {
		return kipass.Decision{}, kipass.FieldErrorf("facility.category", "unknown facility category %q", c.Place.Category)
	}
	reg, ok := r.regIndex[c.Place.Region]
	if !ok {
		return kipass.Decision{}, kipass.FieldErrorf("facility.region", "unknown region %q", c.Place.Region)
	}
	if c.PartySize < 1 {
		return kipass.Decision{}, kipass.FieldErrorf("party_size", "must be at least 1, not %d", c.PartySize)
	}
	if c.At.IsZero() {
		return kipass.Decision{}, kipass.FieldErrorf("at", "missing")
	}
	day := kstDay(c.At)
	var f facts
	if err := r.digest(&f, &c.Holder, c.At, day); err != nil {
		return kipass.Decision{}, err
	}

	req := r.requirementAt(cat, reg, day)
	if req == nil {
		if r.requiredAfter(cat, reg, day) {
			return kipass.Decision{Outcome: kipass.NotRequired, Basis: BasisNotYetInForce, Reason: reasonNotInForce}, nil
		}
		return kipass.Decision{Outcome: kipass.NotRequired, Basis: BasisCategoryNotCovered, Reason: reasonNotCovered}, nil
	}
	if s := r.suspensionAt(cat, reg, day, &f); s != nil {
		return kipass.Decision{Outcome: kipass.NotRequired, Basis: BasisSuspended, Reason: s.reason}, nil
	}

	if p := r.best(&f, &c.Holder, day); p.basis != "" {
		return kipass.Decision{Outcome: kipass.PASS, Basis: p.basis, ValidUntil: endOf(p.last), Reason: p.reason}, nil
	}

	fail := r.failure(&f, &c.Holder, day)
	grace := day < req.finesFrom || (fail == failExpired && r.expiry != nil && day < r.expiry.finesFrom)
	reason := r.failReasons[fail]
	if x := r.exceptionAt(cat, reg, day); x != nil {
		if x.maxParty == 0 || c.PartySize <= x.maxParty {
			return kipass.Decision{Outcome: kipass.PASS, Basis: kipass.BasisRestaurantException, ValidUntil: endOf(x.until), Reason: x.reason}, nil
		}
		reason = x.failReasons[fail]
	}
	return kipass.Decision{Outcome: kipass.FAIL, Basis: failureBases[fail], Grace: grace, Reason: reason}, nil
}

// kstDay is kipass.DateOf without the calendar: KST has a fixed offset, so the day is
// plain division, several times cheaper on the hot path.
func kstDay(t time.Time) kipass.Date {
	const offset, day = 9 * 60 * 60, 24 * 60 * 60
	s := t.Unix() + offset
	d := s / day
	if s%day < 0 {
		d--
	}
	return kipass.Date(d)
}

// endOf returns 24:00 KST of the day last, or nil for a basis with no end.
func endOf(last kipass.Date) *time.Time {
	if last == forever {
		return nil
	}
	t := last.End()
	return &t
}

// digest validates the holder's facts against the document and summarises them.
func (r *Rules) digest(f *facts, h *kipass.Holder, at time.Time, day kipass.Date) error {
	if h.BirthDate != nil {
		if *h.BirthDate > day {
			return kipass.FieldErrorf("holder.birth_date", "%s is after the day of the check", *h.BirthDate)
		}
		f.birth, f.hasBirth = *h.BirthDate, true
	}

	// Doses need not come in order. Sort a copy on the stack; few people have had more
	// than eight doses, and they only cost an allocation.
	type dose struct {
		day    kipass.Date
		series int
	}
	var buf [8]dose
	ds := buf[:0]
	for i := range h.Doses {
		d := &h.Doses[i]
		p := r.product(d.Product)
		if p == nil {
			return kipass.FieldErrorf(doseField(i, "product"), "unknown vaccine product %q", d.Product)
		}
		if d.Date > day {
			return kipass.FieldErrorf(doseField(i, "date"), "%s is after the day of the check", d.Date)
		}
		ds = append(ds, dose{d.Date, p.seriesDoses})
	}
	for i := 1; i < len(ds); i++ { // insertion sort: stable, no allocation
		for j := i; j > 0 && ds[j].day < ds[j-1].day; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
	f.doses = len(ds)
	for i, d := range ds {
		switch {
		case !f.series:
			// The series is complete at the first dose that brings the count to its
			// product's series length: two of any, or one Janssen.
			if i+1 >= d.series {
				f.series, f.seriesDay = true, d.day
			}
		case !f.booster && d.day > f.seriesDay:
			f.booster, f.boosterDay = true, d.day
		}
	}

	for i := range h.Tests {
		t := &h.Tests[i]
		if r.testRule(t.Kind) == nil {
			return kipass.FieldErrorf(testField(i, "kind"), "unknown test kind %q", t.Kind)
		}
		if t.Result != kipass.ResultNegative && t.Result != kipass.ResultPositive {
			return kipass.FieldErrorf(testField(i, "result"), "unknown test result %q", t.Result)
		}
		if t.At.IsZero() {
			return kipass.FieldErrorf(testField(i, "at"), "missing")
		}
		if t.At.After(at) {
			return kipass.FieldErrorf(testField(i, "at"), "test time %s is after the time of the check", t.At.Format(time.RFC3339))
		}
	}

	if h.RecoveredOn != nil {
		if *h.RecoveredOn > day {
			return kipass.FieldErrorf("holder.recovered_on", "%s is after the day of the check", *h.RecoveredOn)
		}
		f.recovered, f.recovery = true, *h.RecoveredOn
	}
	if h.Exemption != "" {
		for i := range r.exemptions {
			if r.exemptions[i].id == h.Exemption {
				f.exemption = &r.exemptions[i]
			}
		}
		if f.exemption == nil {
			return kipass.FieldErrorf("holder.exemption", "unknown exemption %q", h.Exemption)
		}
	}
	return nil
}

func doseField(i int, name string) string { return "holder.doses[" + strconv.Itoa(i) + "]." + name }

func testField(i int, name string) string { return "holder.tests[" + strconv.Itoa(i) + "]." + name }

func (r *Rules) product(id string) *product {
	for i := range r.products {
		if r.products[i].id == id {
			return &r.products[i]
		}
	}
	return nil
}

func (r *Rules) testRule(kind string) *testRule {
	for i := range r.tests {
		if r.tests[i].kind == kind {
			return &r.tests[i]
		}
	}
	return nil
}

// requirementAt returns the requirement in force: of the entries for this place that
// have begun, the one that began last (the later entry on a tie).
func (r *Rules) requirementAt(cat, reg int, day kipass.Date) *requirement {
	var best *requirement
	for i := range r.requirements {
		q := &r.requirements[i]
		if q.from <= day && q.has(cat, reg) && (best == nil || q.from >= best.from) {
			best = q
		}
	}
	return best
}

func (r *Rules) requiredAfter(cat, reg int, day kipass.Date) bool {
	for i := range r.requirements {
		if q := &r.requirements[i]; q.from > day && q.has(cat, reg) {
			return true
		}
	}
	return false
}

// suspensionAt returns the suspension in force for this place and visitor, the one
// that began last when several are.
func (r *Rules) suspensionAt(cat, reg int, day kipass.Date, f *facts) *suspension {
	var best *suspension
	for i := range r.suspensions {
		s := &r.suspensions[i]
		if s.from > day || day > s.until || !s.has(cat, reg) {
			continue
		}
		// An age-limited suspension needs a known age: without a birth date the
		// visitor is judged as if it did not apply.
		if s.underAge > 0 && (!f.hasBirth || kipass.YearsBetween(f.birth, day) >= s.underAge) {
			continue
		}
		if best == nil || s.from >= best.from {
			best = s
		}
	}
	return best
}

func (r *Rules) exceptionAt(cat, reg int, day kipass.Date) *exception {
	var best *exception
	for i := range r.exceptions {
		x := &r.exceptions[i]
		if x.from <= day && day <= x.until && x.has(cat, reg) && (best == nil || x.from >= best.from) {
			best = x
		}
	}
	return best
}

// pick is the best basis found so far: the one that lasts longest, and on a tie the
// one offered first.
type pick struct {
	basis  string
	reason string
	last   kipass.Date // last valid day, or forever
}

func (p *pick) offer(basis, reason string, last kipass.Date) {
	if p.basis == "" || last > p.last {
		p.basis, p.reason, p.last = basis, reason, last
	}
}

// best returns the basis to show among those that hold on day, offered in the order of
// preference for bases that last equally long: booster, vaccinated, minor, recovered,
// exemption, tests in document order. Its basis is "" when none holds.
func (r *Rules) best(f *facts, h *kipass.Holder, day kipass.Date) pick {
	var p pick
	if f.booster && day >= f.boosterDay+kipass.Date(r.boosterWait) {
		p.offer(kipass.BasisBooster, r.reasons[baseBooster], forever)
	}
	if f.series && day >= f.seriesDay+kipass.Date(r.seriesWait) {
		if last := r.seriesLast(f); day <= last {
			p.offer(kipass.BasisVaccinated, r.reasons[baseVaccinated], last)
		}
	}
	if last := r.minorLast(f, day); day <= last {
		p.offer(kipass.BasisMinor, r.reasons[baseMinor], last)
	}
	if f.recovered {
		last := f.recovery + kipass.Date(r.recoveryDays)
		if f.series {
			// With a completed series, recovery holds for good from R or D+wait,
			// whichever is later; if that start follows on from R..R+days without a
			// gap, the basis holds for good already.
			start := max(f.recovery, f.seriesDay+kipass.Date(r.seriesWait))
			if day >= start || start <= last+1 {
				last = forever
			}
		}
		if day <= last {
			p.offer(kipass.BasisRecovered, r.reasons[baseRecovered], last)
		}
	}
	if f.exemption != nil {
		p.offer(f.exemption.basis, f.exemption.reason, forever)
	}
	for i := range r.tests {
		tr := &r.tests[i]
		if !tr.accepted || day < tr.acceptedFrom {
			continue
		}
		for j := range h.Tests {
			t := &h.Tests[j]
			if t.Kind != tr.kind || t.Result != kipass.ResultNegative {
				continue
			}
			if last := kstDay(t.At.Add(time.Duration(tr.validHours) * time.Hour)); day <= last {
				p.offer(tr.basis, tr.reason, last)
			}
		}
	}
	return p
}

// seriesLast is the last day a completed primary series counts. The expiry counts from
// D; before it comes into force a series counts at least until the day before, so that
// ValidUntil tells a visitor in December that the series stops counting in January.
func (r *Rules) seriesLast(f *facts) kipass.Date {
	e := r.expiry
	if e == nil || (f.hasBirth && f.birth >= e.exemptBornFrom) || (e.exemptIfRecovered && f.recovered) {
		return forever
	}
	return max(f.seriesDay+kipass.Date(e.days), e.from-1)
}

// minorLast is the last day the holder counts as a minor, or a day before day when
// they do not count now.
func (r *Rules) minorLast(f *facts, day kipass.Date) kipass.Date {
	if !f.hasBirth {
		return beginning
	}
	now := -1
	for i := range r.minors {
		if r.minors[i].from <= day {
			now = i
		}
	}
	if now < 0 || f.birth < r.minors[now].bornFrom {
		return beginning
	}
	for _, m := range r.minors[now+1:] {
		if f.birth < m.bornFrom {
			return m.from - 1
		}
	}
	return forever
}

// failure says why a visitor who meets no basis fails, the most specific reason first.
func (r *Rules) failure(f *facts, h *kipass.Holder, day kipass.Date) failure {
	switch {
	case f.series && day < f.seriesDay+kipass.Date(r.seriesWait):
		return failTooEarly
	case f.series:
		return failExpired
	case f.doses > 0:
		return failSeriesIncomplete
	case f.recovered:
		return failRecoveryExpired
	case len(h.Tests) > 0:
		return failNoValidTest
	}
	return failNotVaccinated
}
