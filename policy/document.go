package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/kipass/kipass"
)

// document is the JSON rule document as written; docs/rules.md describes it. Pointers
// mark values that must be told apart from their zero (required, or zero is allowed).
type document struct {
	ID           string           `json:"id"`
	Version      *int             `json:"version"`
	Title        string           `json:"title"`
	Categories   []string         `json:"categories"`
	Regions      []string         `json:"regions"`
	Requirements []requirementDoc `json:"requirements"`
	Exceptions   []exceptionDoc   `json:"exceptions"`
	Suspensions  []suspensionDoc  `json:"suspensions"`
	Vaccination  *vaccinationDoc  `json:"vaccination"`
	Recovery     *recoveryDoc     `json:"recovery"`
	Tests        []testDoc        `json:"tests"`
	Minors       []minorDoc       `json:"minors"`
	Exemptions   []string         `json:"exemptions"`
}

type requirementDoc struct {
	From       *kipass.Date `json:"from"`
	FinesFrom  *kipass.Date `json:"fines_from"`
	Categories []string     `json:"categories"`
	Regions    []string     `json:"regions"`
	Note       string       `json:"note"`
}

type exceptionDoc struct {
	From         *kipass.Date `json:"from"`
	Until        *kipass.Date `json:"until"`
	Categories   []string     `json:"categories"`
	Regions      []string     `json:"regions"`
	MaxPartySize *int         `json:"max_party_size"`
	Note         string       `json:"note"`
}

type suspensionDoc struct {
	From       *kipass.Date `json:"from"`
	Until      *kipass.Date `json:"until"`
	Categories []string     `json:"categories"`
	Regions    []string     `json:"regions"`
	UnderAge   *int         `json:"under_age"`
	Reason     string       `json:"reason"`
	Note       string       `json:"note"`
}

type vaccinationDoc struct {
	Products        []productDoc `json:"products"`
	SeriesWaitDays  *int         `json:"series_wait_days"`
	BoosterWaitDays *int         `json:"booster_wait_days"`
	Expiry          *expiryDoc   `json:"expiry"`
}

type productDoc struct {
	ID          string `json:"id"`
	SeriesDoses *int   `json:"series_doses"`
}

type expiryDoc struct {
	From                *kipass.Date `json:"from"`
	Days                *int         `json:"days"`
	FinesFrom           *kipass.Date `json:"fines_from"`
	ExemptBornOnOrAfter *kipass.Date `json:"exempt_born_on_or_after"`
	ExemptIfRecovered   bool         `json:"exempt_if_recovered"`
}

type recoveryDoc struct {
	ValidDays *int `json:"valid_days"`
}

type testDoc struct {
	Kind         string       `json:"kind"`
	Name         string       `json:"name"`
	Accepted     *bool        `json:"accepted"`
	AcceptedFrom *kipass.Date `json:"accepted_from"`
	ValidHours   *int         `json:"valid_hours"`
}

type minorDoc struct {
	From          *kipass.Date `json:"from"`
	BornOnOrAfter *kipass.Date `json:"born_on_or_after"`
}

// Sentinel days for open-ended ranges.
const (
	beginning = kipass.Date(math.MinInt32)
	forever   = kipass.Date(math.MaxInt32)
)

// scope is the set of places an entry applies to; a nil set means all of them.
type scope struct {
	cats []bool
	regs []bool
}

func (s *scope) has(cat, reg int) bool {
	return (s.cats == nil || s.cats[cat]) && (s.regs == nil || s.regs[reg])
}

type requirement struct {
	scope
	from      kipass.Date
	finesFrom kipass.Date
}

type exception struct {
	scope
	from, until kipass.Date
	maxParty    int // 0: any party size
	reason      string
	failReasons [numFailures]string
}

type suspension struct {
	scope
	from, until kipass.Date
	underAge    int // 0: whatever the age
	reason      string
}

type product struct {
	id          string
	seriesDoses int
}

type expiry struct {
	from              kipass.Date
	days              int
	finesFrom         kipass.Date
	exemptBornFrom    kipass.Date // forever: nobody is exempt by birth date
	exemptIfRecovered bool
}

type testRule struct {
	kind         string
	accepted     bool
	acceptedFrom kipass.Date
	validHours   int
	basis        string
	reason       string
}

type minorRule struct {
	from     kipass.Date
	bornFrom kipass.Date
}

type exemption struct {
	id     string
	basis  string
	reason string
}

// compile validates a decoded document and builds the Rules the hot path reads.
func compile(d *document) (*Rules, error) {
	r := &Rules{title: d.Title}
	if d.ID == "" {
		return nil, kipass.FieldErrorf("id", "missing")
	}
	if !isSlug(d.ID, '-') {
		return nil, kipass.FieldErrorf("id", "%q must be lower-case letters, digits and dashes", d.ID)
	}
	r.id = d.ID
	if d.Version == nil {
		return nil, kipass.FieldErrorf("version", "missing")
	}
	if *d.Version < 1 {
		return nil, kipass.FieldErrorf("version", "must be at least 1")
	}
	r.version = *d.Version

	var err error
	if r.categories, r.catIndex, err = idList("categories", d.Categories); err != nil {
		return nil, err
	}
	if r.regions, r.regIndex, err = idList("regions", d.Regions); err != nil {
		return nil, err
	}
	if err := r.compileRequirements(d.Requirements); err != nil {
		return nil, err
	}
	if err := r.compileSuspensions(d.Suspensions); err != nil {
		return nil, err
	}
	if err := r.compileVaccination(d.Vaccination); err != nil {
		return nil, err
	}
	if d.Recovery == nil {
		return nil, kipass.FieldErrorf("recovery", "missing")
	}
	if r.recoveryDays, err = nonNegative("recovery.valid_days", d.Recovery.ValidDays); err != nil {
		return nil, err
	}
	if err := r.compileTests(d.Tests); err != nil {
		return nil, err
	}
	if err := r.compileMinors(d.Minors); err != nil {
		return nil, err
	}
	if d.Exemptions != nil {
		if _, _, err := idList("exemptions", d.Exemptions); err != nil {
			return nil, err
		}
	}
	for _, id := range d.Exemptions {
		r.exemptions = append(r.exemptions, exemption{
			id:     id,
			basis:  id + "_exemption",
			reason: fmt.Sprintf("The visitor has a registered %s exemption from vaccination.", id),
		})
	}
	r.compileReasons()
	// Exceptions last: their FAIL sentences extend the holder's.
	if err := r.compileExceptions(d.Exceptions); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rules) compileRequirements(docs []requirementDoc) error {
	for i, q := range docs {
		p := "requirements[" + strconv.Itoa(i) + "]"
		from, err := required(p+".from", q.From)
		if err != nil {
			return err
		}
		s, err := r.scope(p, q.Categories, q.Regions, true)
		if err != nil {
			return err
		}
		fines := from
		if q.FinesFrom != nil {
			if *q.FinesFrom < from {
				return kipass.FieldErrorf(p+".fines_from", "%s is before from %s", *q.FinesFrom, from)
			}
			fines = *q.FinesFrom
		}
		r.requirements = append(r.requirements, requirement{scope: s, from: from, finesFrom: fines})
	}
	return nil
}

func (r *Rules) compileExceptions(docs []exceptionDoc) error {
	for i, e := range docs {
		p := "exceptions[" + strconv.Itoa(i) + "]"
		from, until, err := dayRange(p, e.From, e.Until)
		if err != nil {
			return err
		}
		s, err := r.scope(p, e.Categories, e.Regions, true)
		if err != nil {
			return err
		}
		x := exception{scope: s, from: from, until: until}
		var without string
		switch {
		case e.MaxPartySize == nil:
			x.reason = "Without the pass, a visitor may be admitted here at this time whatever the party size."
		case *e.MaxPartySize < 1:
			return kipass.FieldErrorf(p+".max_party_size", "must be at least 1 (omit it for any party size)")
		case *e.MaxPartySize == 1:
			x.maxParty = 1
			x.reason = "Without the pass, a visitor may be admitted here alone."
			without = "; without the pass a visitor may only be admitted here alone."
		default:
			x.maxParty = *e.MaxPartySize
			x.reason = fmt.Sprintf("Without the pass, a visitor may be admitted here in a party of at most %d.", x.maxParty)
			without = fmt.Sprintf("; without the pass a visitor may only be admitted here in a party of at most %d.", x.maxParty)
		}
		for f := range numFailures {
			x.failReasons[f] = strings.TrimSuffix(r.failReasons[f], ".") + without
		}
		r.exceptions = append(r.exceptions, x)
	}
	return nil
}

func (r *Rules) compileSuspensions(docs []suspensionDoc) error {
	for i, s := range docs {
		p := "suspensions[" + strconv.Itoa(i) + "]"
		from, until, err := dayRange(p, s.From, s.Until)
		if err != nil {
			return err
		}
		sc, err := r.scope(p, s.Categories, s.Regions, false)
		if err != nil {
			return err
		}
		x := suspension{scope: sc, from: from, until: until}
		if s.UnderAge != nil {
			if *s.UnderAge < 1 {
				return kipass.FieldErrorf(p+".under_age", "must be at least 1 (omit it for every age)")
			}
			x.underAge = *s.UnderAge
		}
		if strings.TrimSpace(s.Reason) == "" {
			return kipass.FieldErrorf(p+".reason", "missing: say in one sentence who suspended the pass, where and from when")
		}
		x.reason = s.Reason
		r.suspensions = append(r.suspensions, x)
	}
	return nil
}

func (r *Rules) compileVaccination(v *vaccinationDoc) error {
	if v == nil {
		return kipass.FieldErrorf("vaccination", "missing")
	}
	if len(v.Products) == 0 {
		return kipass.FieldErrorf("vaccination.products", "must list at least one product")
	}
	for i, pd := range v.Products {
		p := "vaccination.products[" + strconv.Itoa(i) + "]"
		if !isSlug(pd.ID, '_') {
			return kipass.FieldErrorf(p+".id", "%q must be lower-case letters, digits and underscores", pd.ID)
		}
		for _, q := range r.products {
			if q.id == pd.ID {
				return kipass.FieldErrorf(p+".id", "duplicate product %q", pd.ID)
			}
		}
		n, err := nonNegative(p+".series_doses", pd.SeriesDoses)
		if err != nil {
			return err
		}
		if n < 1 {
			return kipass.FieldErrorf(p+".series_doses", "must be at least 1")
		}
		r.products = append(r.products, product{id: pd.ID, seriesDoses: n})
	}
	var err error
	if r.seriesWait, err = nonNegative("vaccination.series_wait_days", v.SeriesWaitDays); err != nil {
		return err
	}
	if v.BoosterWaitDays != nil {
		if r.boosterWait, err = nonNegative("vaccination.booster_wait_days", v.BoosterWaitDays); err != nil {
			return err
		}
	}
	if e := v.Expiry; e != nil {
		x := &expiry{exemptBornFrom: forever, exemptIfRecovered: e.ExemptIfRecovered}
		if x.from, err = required("vaccination.expiry.from", e.From); err != nil {
			return err
		}
		if x.days, err = nonNegative("vaccination.expiry.days", e.Days); err != nil {
			return err
		}
		x.finesFrom = x.from
		if e.FinesFrom != nil {
			if *e.FinesFrom < x.from {
				return kipass.FieldErrorf("vaccination.expiry.fines_from", "%s is before from %s", *e.FinesFrom, x.from)
			}
			x.finesFrom = *e.FinesFrom
		}
		if e.ExemptBornOnOrAfter != nil {
			x.exemptBornFrom = *e.ExemptBornOnOrAfter
		}
		r.expiry = x
	}
	return nil
}

func (r *Rules) compileTests(docs []testDoc) error {
	for i, t := range docs {
		p := "tests[" + strconv.Itoa(i) + "]"
		if !isSlug(t.Kind, '_') {
			return kipass.FieldErrorf(p+".kind", "%q must be lower-case letters, digits and underscores", t.Kind)
		}
		for _, q := range r.tests {
			if q.kind == t.Kind {
				return kipass.FieldErrorf(p+".kind", "duplicate test kind %q", t.Kind)
			}
		}
		x := testRule{kind: t.Kind, accepted: t.Accepted == nil || *t.Accepted, acceptedFrom: beginning}
		if !x.accepted {
			if t.ValidHours != nil || t.AcceptedFrom != nil {
				return kipass.FieldErrorf(p, "a test kind that is never accepted has no valid_hours or accepted_from")
			}
			r.tests = append(r.tests, x)
			continue
		}
		h, err := nonNegative(p+".valid_hours", t.ValidHours)
		if err != nil {
			return err
		}
		if h < 1 {
			return kipass.FieldErrorf(p+".valid_hours", "must be at least 1")
		}
		x.validHours = h
		if t.AcceptedFrom != nil {
			x.acceptedFrom = *t.AcceptedFrom
		}
		name := t.Name
		if name == "" {
			name = t.Kind
		}
		x.basis = "negative_" + t.Kind
		x.reason = fmt.Sprintf("The visitor has a negative %s test result, valid until 24:00 of the day %d hours after it.", name, h)
		r.tests = append(r.tests, x)
	}
	return nil
}

func (r *Rules) compileMinors(docs []minorDoc) error {
	for i, m := range docs {
		p := "minors[" + strconv.Itoa(i) + "]"
		born, err := required(p+".born_on_or_after", m.BornOnOrAfter)
		if err != nil {
			return err
		}
		x := minorRule{from: beginning, bornFrom: born}
		switch {
		case m.From != nil:
			x.from = *m.From
		case i > 0:
			return kipass.FieldErrorf(p+".from", "missing (only the first entry may omit it)")
		}
		if i > 0 && x.from <= r.minors[i-1].from {
			return kipass.FieldErrorf(p+".from", "%s is not after the previous entry's", x.from)
		}
		r.minors = append(r.minors, x)
	}
	return nil
}

// scope resolves the category and region lists of entry p. An absent list means every
// category (region); mustName requires the categories to be listed.
func (r *Rules) scope(p string, cats, regs []string, mustName bool) (scope, error) {
	var s scope
	var err error
	if cats == nil && mustName {
		return s, kipass.FieldErrorf(p+".categories", "missing")
	}
	if s.cats, err = members(p+".categories", "category", cats, r.catIndex); err != nil {
		return s, err
	}
	if s.regs, err = members(p+".regions", "region", regs, r.regIndex); err != nil {
		return s, err
	}
	return s, nil
}

func members(p, what string, ids []string, index map[string]int) ([]bool, error) {
	if ids == nil {
		return nil, nil
	}
	if len(ids) == 0 {
		return nil, kipass.FieldErrorf(p, "must not be empty (leave it out to mean every %s)", what)
	}
	set := make([]bool, len(index))
	for i, id := range ids {
		j, ok := index[id]
		if !ok {
			return nil, kipass.FieldErrorf(p+"["+strconv.Itoa(i)+"]", "unknown %s %q", what, id)
		}
		set[j] = true
	}
	return set, nil
}

func idList(p string, ids []string) ([]string, map[string]int, error) {
	if len(ids) == 0 {
		return nil, nil, kipass.FieldErrorf(p, "must list at least one id")
	}
	index := make(map[string]int, len(ids))
	for i, id := range ids {
		if !isSlug(id, '_') {
			return nil, nil, kipass.FieldErrorf(p+"["+strconv.Itoa(i)+"]", "%q must be lower-case letters, digits and underscores", id)
		}
		if _, dup := index[id]; dup {
			return nil, nil, kipass.FieldErrorf(p+"["+strconv.Itoa(i)+"]", "duplicate %q", id)
		}
		index[id] = i
	}
	return append([]string(nil), ids...), index, nil
}

func dayRange(p string, from, until *kipass.Date) (kipass.Date, kipass.Date, error) {
	f, err := required(p+".from", from)
	if err != nil {
		return 0, 0, err
	}
	u := forever
	if until != nil {
		if *until < f {
			return 0, 0, kipass.FieldErrorf(p+".until", "%s is before from %s", *until, f)
		}
		u = *until
	}
	return f, u, nil
}

func required(p string, d *kipass.Date) (kipass.Date, error) {
	if d == nil {
		return 0, kipass.FieldErrorf(p, "missing")
	}
	return *d, nil
}

func nonNegative(p string, n *int) (int, error) {
	if n == nil {
		return 0, kipass.FieldErrorf(p, "missing")
	}
	if *n < 0 {
		return 0, kipass.FieldErrorf(p, "must not be negative")
	}
	return *n, nil
}

// isSlug reports whether s is a non-empty identifier of lower-case ASCII letters and
// digits, starting with a letter or digit, with sep as the only other character.
func isSlug(s string, sep byte) bool {
	if s == "" || s[0] == sep {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == sep) {
			return false
		}
	}
	return true
}
