package registry

import (
	"bufio"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/kipass/kipass"
)

// SynthAt is the default moment of a synthetic population: 2022-01-27 12:00 KST, the
// start of the demo clock (demo.Start). The mix is calibrated for that week.
var SynthAt = time.Date(2022, time.January, 27, 12, 0, 0, 0, kipass.KST)

// SynthOptions describe a synthetic population.
type SynthOptions struct {
	People   int       // how many people
	Seed     uint64    // the same seed gives the same population, byte for byte
	At       time.Time // the population as of this instant: no fact lies after it (default SynthAt)
	IDPrefix string    // person ids are the prefix and a zero-padded number (default "S-")
}

// Product indexes in kipass.Products order, for the weight tables.
const (
	iPfizer = iota
	iModerna
	iAZ
	iNovavax
	iJanssen
)

// ageBand is one age group of the population and its vaccination by late January
// 2022. Shares of the band are unconditional: first >= complete >= booster.
// docs/registry.md gives the sources.
type ageBand struct {
	lo, hi   int        // full years of age at At, inclusive
	share    float64    // percent of the population
	first    float64    // at least one dose
	complete float64    // primary series complete
	booster  float64    // a booster dose
	products [5]float64 // first-dose product weights, kipass.Products order
}

var ageBands = []ageBand{
	{0, 11, 8.60, 0, 0, 0, [5]float64{}},
	{12, 12, 0.90, 0.003, 0.001, 0, [5]float64{iPfizer: 1}},
	{13, 17, 4.60, 0.78, 0.69, 0, [5]float64{iPfizer: 1}},
	{18, 19, 1.90, 0.93, 0.91, 0.33, [5]float64{iPfizer: 0.9, iModerna: 0.1}},
	{20, 29, 13.10, 0.955, 0.945, 0.37, [5]float64{iPfizer: 0.68, iModerna: 0.19, iAZ: 0.11, iJanssen: 0.02}},
	{30, 39, 13.10, 0.945, 0.935, 0.40, [5]float64{iPfizer: 0.60, iModerna: 0.16, iAZ: 0.15, iJanssen: 0.09}},
	{40, 49, 15.90, 0.96, 0.955, 0.45, [5]float64{iPfizer: 0.60, iModerna: 0.18, iAZ: 0.14, iJanssen: 0.08}},
	{50, 59, 16.60, 0.98, 0.978, 0.67, [5]float64{iPfizer: 0.55, iModerna: 0.32, iAZ: 0.13}},
	{60, 69, 13.60, 0.97, 0.968, 0.835, [5]float64{iPfizer: 0.18, iModerna: 0.02, iAZ: 0.80}},
	{70, 74, 4.00, 0.97, 0.968, 0.885, [5]float64{iPfizer: 0.12, iAZ: 0.88}},
	{75, 79, 3.10, 0.97, 0.965, 0.89, [5]float64{iPfizer: 0.97, iAZ: 0.03}},
	{80, 99, 4.00, 0.92, 0.89, 0.83, [5]float64{iPfizer: 0.97, iAZ: 0.03}},
}

// Shares of the population that carry each fact beyond vaccination.
const (
	synthRecovered   = 0.010 // ever released from isolation (the edges add more): ~0.78 M confirmed cases by 2022-01-27
	synthReinfected  = 0.02  // of the recovered, a second earlier release
	synthRecentPCR   = 0.03  // a PCR result in the last 72 hours
	synthPCRPositive = 0.04  // of those, positive
	synthUnvaxPCR    = 0.25  // of unvaccinated adults, a negative PCR in the last 48 hours
	synthRAT         = 0.007 // a supervised rapid antigen test in the last 30 hours, from 2022-01-26
	synthSelfTest    = 0.01  // a home self-test in the last 72 hours
	synthOldPCR      = 0.05  // one to three negative PCRs 8 to 60 days ago
	synthLateStart   = 0.06  // of the vaccinated, a first dose after their group's campaign
	synthCompleteEdg = 0.015 // of adults with a series and no booster, each series edge
	synthUnvaxEdge   = 0.05  // of unvaccinated adults, each test, recovery or exemption edge
	synthBoostToday  = 0.01  // of the boosted, a booster today
)

// Synth returns the synthetic population described by opts, one fresh *Person at a
// time. It is deterministic: the same options give the same people, and the first k
// people do not depend on People.
func Synth(opts SynthOptions) iter.Seq[*Person] {
	return func(yield func(*Person) bool) {
		g := newSynth(opts)
		for i := 1; i <= opts.People; i++ {
			if !yield(g.person(i)) {
				return
			}
		}
	}
}

// WriteSynth writes the synthetic population to w as JSON lines (FormatJSONL) or CSV
// with a header (FormatCSV), the formats Import reads, and returns the people written.
func WriteSynth(w io.Writer, format string, opts SynthOptions) (int, error) {
	var appendRow func([]byte, *Person) []byte
	switch format {
	case FormatJSONL:
		appendRow = appendJSONLine
	case FormatCSV:
		appendRow = appendCSVRow
	default:
		return 0, fmt.Errorf("unknown format %q (want %s or %s)", format, FormatJSONL, FormatCSV)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if format == FormatCSV {
		bw.WriteString("person_id,birth_date,doses,tests,recoveries,exemptions\n")
	}
	n := 0
	buf := make([]byte, 0, 1024)
	for p := range Synth(opts) {
		buf = appendRow(buf[:0], p)
		if _, err := bw.Write(buf); err != nil {
			return n, err
		}
		n++
	}
	return n, bw.Flush()
}

// synth is the generator's state: one random stream, consumed person by person.
type synth struct {
	rng     *rand.Rand
	at      time.Time
	day     kipass.Date
	prefix  string
	width   int
	cumBand []float64

	status  int // of the person being made: statusNone...
	product int // first-dose product of the person being made
}

func newSynth(opts SynthOptions) *synth {
	if opts.At.IsZero() {
		opts.At = SynthAt
	}
	if opts.IDPrefix == "" {
		opts.IDPrefix = "S-"
	}
	g := &synth{
		rng:    rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x6b69706173732d72)),
		at:     opts.At.Truncate(time.Second),
		day:    kipass.DateOf(opts.At),
		prefix: opts.IDPrefix,
		width:  max(7, len(strconv.Itoa(opts.People))),
	}
	total := 0.0
	for _, b := range ageBands {
		total += b.share
		g.cumBand = append(g.cumBand, total)
	}
	for i := range g.cumBand {
		g.cumBand[i] /= total
	}
	return g
}

func mustDate(s string) kipass.Date { return kipass.MustParseDate(s) }

// person makes the i-th person: an age, a vaccination history that fits the age, then
// recoveries and tests, then perhaps one edge of the rules, then a final clip to At.
func (g *synth) person(i int) *Person {
	id := strconv.Itoa(i)
	for len(id) < g.width {
		id = "0" + id
	}
	u := g.rng.Float64()
	bi, _ := slices.BinarySearch(g.cumBand, u)
	b := &ageBands[min(bi, len(ageBands)-1)]
	age := b.lo + g.rng.IntN(b.hi-b.lo+1)
	if b.lo == 80 && g.rng.Float64() < 0.75 {
		age = 80 + g.rng.IntN(10) // fewer in their nineties
	}
	p := &Person{PersonID: g.prefix + id, BirthDate: g.birth(age)}
	g.status = statusNone

	v := g.rng.Float64()
	switch {
	case v < b.booster:
		g.series(p, b, age, true)
	case v < b.complete:
		g.series(p, b, age, false)
	case v < b.first:
		g.oneDose(p, b, age)
	}
	g.recoveries(p)
	g.tests(p, age)
	g.edge(p, age)
	g.clip(p)
	return p
}

// birth returns a birth date of someone aged age full years on g.day.
func (g *synth) birth(age int) kipass.Date {
	t := g.day.Time()
	latest := kipass.DateOf(t.AddDate(-age, 0, 0).Add(12 * time.Hour))
	earliest := kipass.DateOf(t.AddDate(-age-1, 0, 1).Add(12 * time.Hour))
	return earliest + kipass.Date(g.rng.IntN(int(latest-earliest)+1))
}

// pick draws an index from weights.
func (g *synth) pick(w []float64) int {
	total := 0.0
	for _, x := range w {
		total += x
	}
	u := g.rng.Float64() * total
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

// between returns a day in [from, to], or from when the range is empty.
func (g *synth) between(from, to kipass.Date) kipass.Date {
	if to <= from {
		return from
	}
	return from + kipass.Date(g.rng.IntN(int(to-from)+1))
}

// appendJSONLine appends p as one JSON line in the form of a PUT body. Synthetic ids
// and identifiers need no escaping.
func appendJSONLine(b []byte, p *Person) []byte {
	b = append(b, `{"person_id":"`...)
	b = append(b, p.PersonID...)
	b = append(b, `","birth_date":"`...)
	b = appendDate(b, p.BirthDate)
	b = append(b, '"')
	if len(p.Doses) > 0 {
		b = append(b, `,"doses":[`...)
		for i, x := range p.Doses {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"date":"`...)
			b = appendDate(b, x.Date)
			b = append(b, `","product":"`...)
			b = append(b, x.Product...)
			b = append(b, `"}`...)
		}
		b = append(b, ']')
	}
	if len(p.Tests) > 0 {
		b = append(b, `,"tests":[`...)
		for i, t := range p.Tests {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"kind":"`...)
			b = append(b, t.Kind...)
			b = append(b, `","result":"`...)
			b = append(b, t.Result...)
			b = append(b, `","at":"`...)
			b = t.At.In(kipass.KST).AppendFormat(b, time.RFC3339)
			b = append(b, `"}`...)
		}
		b = append(b, ']')
	}
	if len(p.Recoveries) > 0 {
		b = append(b, `,"recoveries":[`...)
		for i, r := range p.Recoveries {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = appendDate(b, r)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	if len(p.Exemptions) > 0 {
		b = append(b, `,"exemptions":[`...)
		for i, e := range p.Exemptions {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"kind":"`...)
			b = append(b, e.Kind...)
			b = append(b, '"')
			if e.From != nil {
				b = append(b, `,"from":"`...)
				b = appendDate(b, *e.From)
				b = append(b, '"')
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, "}\n"...)
}

// appendCSVRow appends p as one row of the CSV format (CSVColumns order).
func appendCSVRow(b []byte, p *Person) []byte {
	b = append(b, p.PersonID...)
	b = append(b, ',')
	b = appendDate(b, p.BirthDate)
	b = append(b, ',')
	for i, x := range p.Doses {
		if i > 0 {
			b = append(b, ';')
		}
		b = appendDate(b, x.Date)
		b = append(b, ':')
		b = append(b, x.Product...)
	}
	b = append(b, ',')
	for i, t := range p.Tests {
		if i > 0 {
			b = append(b, ';')
		}
		b = append(b, t.Kind...)
		b = append(b, ':')
		b = append(b, t.Result...)
		b = append(b, ':')
		b = t.At.In(kipass.KST).AppendFormat(b, time.RFC3339)
	}
	b = append(b, ',')
	for i, r := range p.Recoveries {
		if i > 0 {
			b = append(b, ';')
		}
		b = appendDate(b, r)
	}
	b = append(b, ',')
	for i, e := range p.Exemptions {
		if i > 0 {
			b = append(b, ';')
		}
		b = append(b, e.Kind...)
		if e.From != nil {
			b = append(b, ':')
			b = appendDate(b, *e.From)
		}
	}
	return append(b, '\n')
}

// appendDate appends d as YYYY-MM-DD.
func appendDate(b []byte, d kipass.Date) []byte {
	y, m, dd := d.Time().Date()
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	b = append(b, byte('0'+int(m)/10), byte('0'+int(m)%10), '-')
	return append(b, byte('0'+dd/10), byte('0'+dd%10))
}
