package registry

import (
	"slices"
	"time"

	"github.com/kipass/kipass"
)

// Vaccination status of a synthetic person, for choosing an edge.
const (
	statusNone = iota
	statusOneDose
	statusComplete
	statusBoosted
)

// ratAcceptedFrom is the first day a supervised rapid antigen test counted.
var ratAcceptedFrom = mustDate("2022-01-26")

// firstWindow is when a group got its first doses in the 2021 campaign: over-75s with
// Pfizer from April, 60-74 with AstraZeneca from late May, Janssen for reservists and
// defence staff in June, essential workers under 60 with AstraZeneca in spring, 50-59
// with mRNA from late July, 18-49 from late August, 16-17 from 18 October and 12-15
// from November, 12-year-olds (born 2010) only from January 2022.
func firstWindow(age, product int) (from, to kipass.Date) {
	switch {
	case age == 12:
		return mustDate("2022-01-03"), mustDate("2022-01-20")
	case age < 18:
		return mustDate("2021-10-18"), mustDate("2021-12-31")
	case product == iJanssen:
		return mustDate("2021-06-10"), mustDate("2021-06-20")
	case product == iNovavax: // first given in Korea on 2022-02-14
		return mustDate("2022-02-14"), mustDate("2022-03-31")
	case age >= 60 && product == iAZ:
		return mustDate("2021-05-27"), mustDate("2021-06-19")
	case age >= 75:
		return mustDate("2021-04-01"), mustDate("2021-05-20")
	case age >= 60:
		return mustDate("2021-07-01"), mustDate("2021-08-31")
	case product == iAZ:
		return mustDate("2021-03-15"), mustDate("2021-05-15")
	case age >= 50:
		return mustDate("2021-07-26"), mustDate("2021-08-25")
	case age >= 20:
		return mustDate("2021-08-26"), mustDate("2021-09-30")
	}
	return mustDate("2021-07-19"), mustDate("2021-09-30")
}

// interval is the days between first and second dose: Pfizer 3 weeks and Moderna 4,
// both stretched to 6 weeks for adults from late July 2021 (supply); AstraZeneca 11-12
// weeks, 8 from August 2021; Novavax 3 weeks.
func (g *synth) interval(product, age int, first kipass.Date) int {
	n := 21
	switch product {
	case iPfizer:
		if age >= 18 && first >= mustDate("2021-07-26") && first < mustDate("2021-11-01") {
			n = 42
		}
	case iModerna:
		n = 28
		if first >= mustDate("2021-07-26") {
			n = 42
		}
	case iAZ:
		n = 77 + g.rng.IntN(8)
		if first >= mustDate("2021-08-01") {
			n = 56
		}
	}
	return n + g.rng.IntN(4)
}

// secondProduct is the product of a second dose: AstraZeneca recipients under 60 were
// often switched to Pfizer (교차접종), a few Moderna recipients too.
func (g *synth) secondProduct(first, age int) int {
	u := g.rng.Float64()
	switch {
	case first == iAZ && age < 60 && u < 0.35, first == iAZ && u < 0.02, first == iModerna && u < 0.04:
		return iPfizer
	case first == iPfizer && u < 0.01:
		return iModerna
	}
	return first
}

// boosterFrom is the first day a group could get a booster.
func boosterFrom(age int) kipass.Date {
	switch {
	case age >= 60:
		return mustDate("2021-10-25")
	case age >= 50:
		return mustDate("2021-11-15")
	}
	return mustDate("2021-11-22")
}

// series gives p a completed primary series and, when boosted, a booster at least 3
// months after it (2 for Janssen).
func (g *synth) series(p *Person, b *ageBand, age int, boosted bool) {
	prod := g.pick(b.products[:])
	g.product, g.status = prod, statusComplete
	from, to := firstWindow(age, prod)
	first := g.between(from, to)
	if g.rng.Float64() < synthLateStart {
		first = g.between(to+1, g.day-1)
	}
	doses := []kipass.Dose{{Date: first, Product: kipass.Products[prod]}}
	done := first
	if prod != iJanssen {
		done = first + kipass.Date(g.interval(prod, age, first))
		doses = append(doses, kipass.Dose{Date: done, Product: kipass.Products[g.secondProduct(prod, age)]})
	}
	gap := kipass.Date(90)
	if prod == iJanssen {
		gap = 60
	}
	latest := g.day
	if boosted {
		latest -= gap
	}
	if done > latest { // a late start: move the series back so that it fits
		shift := done - latest + kipass.Date(g.rng.IntN(15))
		for i := range doses {
			doses[i].Date -= shift
		}
		done -= shift
	}
	if boosted {
		g.status = statusBoosted
		prod := iPfizer
		if g.rng.Float64() < 0.42 {
			prod = iModerna
		}
		doses = append(doses, kipass.Dose{Date: g.between(max(done+gap, boosterFrom(age)), g.day), Product: kipass.Products[prod]})
	}
	p.Doses = doses
}

// oneDose gives p the first dose of a two-dose series: half are still within the
// interval, half stopped (an adverse reaction, a change of mind).
func (g *synth) oneDose(p *Person, b *ageBand, age int) {
	prod := g.pick(b.products[:])
	if prod == iJanssen {
		prod = iPfizer
	}
	g.product, g.status = prod, statusOneDose
	var first kipass.Date
	if g.rng.Float64() < 0.5 {
		first = g.between(g.day-kipass.Date(g.interval(prod, age, g.day))+1, g.day)
	} else {
		first = g.between(firstWindow(age, prod))
	}
	p.Doses = []kipass.Dose{{Date: first, Product: kipass.Products[prod]}}
}

// recoveryPeriods weight releases from isolation by the confirmed cases of each period
// (KDCA daily counts): about 8% in 2020, 13% in the first half of 2021, 26% in the
// Delta wave of July to October, 30% in November and December, 23% in January 2022.
var recoveryPeriods = []struct {
	from, to kipass.Date // to 0: the day before At
	weight   float64
}{
	{mustDate("2020-02-01"), mustDate("2020-12-31"), 0.08},
	{mustDate("2021-01-01"), mustDate("2021-06-30"), 0.13},
	{mustDate("2021-07-01"), mustDate("2021-10-31"), 0.26},
	{mustDate("2021-11-01"), mustDate("2021-12-31"), 0.30},
	{mustDate("2022-01-01"), 0, 0.23},
}

func (g *synth) recoveries(p *Person) {
	if g.rng.Float64() >= synthRecovered {
		return
	}
	var w [5]float64
	for i, rp := range recoveryPeriods {
		w[i] = rp.weight
	}
	rp := recoveryPeriods[g.pick(w[:])]
	if rp.to == 0 {
		rp.to = g.day - 1
	}
	r := g.between(rp.from, rp.to)
	p.Recoveries = append(p.Recoveries, r)
	if g.rng.Float64() < synthReinfected {
		p.Recoveries = append(p.Recoveries, r-90-kipass.Date(g.rng.IntN(300)))
	}
}

// ago returns a time up to hours before At, to the second.
func (g *synth) ago(hours int) time.Time {
	return g.at.Add(-time.Duration(1+g.rng.Int64N(int64(hours)*3600)) * time.Second)
}

func (g *synth) test(p *Person, kind, result string, at time.Time) {
	p.Tests = append(p.Tests, kipass.Test{Kind: kind, Result: result, At: at.In(kipass.KST)})
}

// tests gives p the test results of the days around At.
func (g *synth) tests(p *Person, age int) {
	if g.rng.Float64() < synthRecentPCR {
		result := kipass.ResultNegative
		if g.rng.Float64() < synthPCRPositive {
			result = kipass.ResultPositive
		}
		g.test(p, kipass.TestPCR, result, g.ago(72))
	}
	if age >= 20 && len(p.Doses) == 0 && g.rng.Float64() < synthUnvaxPCR {
		g.test(p, kipass.TestPCR, kipass.ResultNegative, g.ago(48))
	}
	if g.rng.Float64() < synthRAT {
		t := g.ago(30)
		result := kipass.ResultNegative
		if g.rng.Float64() < 0.05 {
			result = kipass.ResultPositive
		}
		if !t.Before(ratAcceptedFrom.Start()) {
			g.test(p, kipass.TestRAT, result, t)
		}
	}
	if g.rng.Float64() < synthSelfTest {
		g.test(p, kipass.TestSelf, kipass.ResultNegative, g.ago(72))
	}
	if g.rng.Float64() < synthOldPCR {
		for range 1 + g.rng.IntN(3) {
			g.test(p, kipass.TestPCR, kipass.ResultNegative, g.ago(52*24).Add(-8*24*time.Hour))
		}
	}
}

// edge turns some people into the boundary cases of the rules (RULES.md), chosen
// among people whose status the edge keeps, so that the mix stays as calibrated.
func (g *synth) edge(p *Person, age int) {
	u := g.rng.Float64()
	day := g.day
	switch {
	case age >= 20 && g.status == statusNone:
		switch int(u / synthUnvaxEdge) {
		case 0: // PCR notified at the first second of D-2: valid until today 24:00
			g.test(p, kipass.TestPCR, kipass.ResultNegative, (day - 2).Start())
		case 1: // PCR at the last second of D-2: valid until today 24:00
			g.test(p, kipass.TestPCR, kipass.ResultNegative, (day - 1).Start().Add(-time.Second))
		case 2: // PCR at the last second of D-3: valid until yesterday 24:00
			g.test(p, kipass.TestPCR, kipass.ResultNegative, (day - 2).Start().Add(-time.Second))
		case 3: // supervised RAT at the first second of D-1: valid until today 24:00
			g.test(p, kipass.TestRAT, kipass.ResultNegative, (day - 1).Start())
		case 4: // supervised RAT at the last second of D-2: valid until yesterday 24:00
			g.test(p, kipass.TestRAT, kipass.ResultNegative, (day - 1).Start().Add(-time.Second))
		case 5: // a negative home self-test, which never counts
			g.test(p, kipass.TestSelf, kipass.ResultNegative, g.ago(20))
		case 6: // a positive PCR
			g.test(p, kipass.TestPCR, kipass.ResultPositive, g.ago(40))
		case 7: // a medical exemption, some after a reaction to a first dose
			from := day - kipass.Date(1+g.rng.IntN(60))
			p.Exemptions = []Exemption{{Kind: kipass.ExemptionMedical, From: &from}}
			if g.rng.Float64() < 0.4 {
				p.Doses = []kipass.Dose{{Date: from - kipass.Date(7+g.rng.IntN(60)), Product: kipass.ProductPfizer}}
			}
		case 8: // recovered without a series, within 180 days (a fifth on the last day)
			r := day - kipass.Date(g.rng.IntN(180))
			if g.rng.Float64() < 0.2 {
				r = day - 180
			}
			p.Recoveries = []kipass.Date{r}
		case 9: // recovered without a series, more than 180 days ago
			p.Recoveries = []kipass.Date{day - 181 - kipass.Date(g.rng.IntN(200))}
		}
	case age >= 20 && g.status == statusComplete:
		switch int(u / synthCompleteEdg) {
		case 0: // series completed 13 days ago: not yet valid
			g.redate(p, age, day-13)
		case 1: // 14 days ago: valid from today
			g.redate(p, age, day-14)
		case 2: // 180 days ago: valid until today 24:00
			g.redate(p, age, day-180)
		case 3: // 181 days ago: expired yesterday
			g.redate(p, age, day-181)
		case 4, 5: // born on the last day before, or the first day of, the minors' exemption
			if day < mustDate("2021-06-01") {
				return
			}
			p.BirthDate = mustDate("2002-12-31")
			if u >= 5*synthCompleteEdg {
				p.BirthDate = mustDate("2003-01-01")
			}
			g.redate(p, age, day-181-kipass.Date(g.rng.IntN(60)))
		case 6: // Janssen alone
			p.Doses = []kipass.Dose{{Date: day - 14 - kipass.Date(g.rng.IntN(150)), Product: kipass.ProductJanssen}}
		case 7: // AstraZeneca then Pfizer
			done := day - 14 - kipass.Date(g.rng.IntN(150))
			p.Doses = []kipass.Dose{{Date: done - 56, Product: kipass.ProductAstraZeneca}, {Date: done, Product: kipass.ProductPfizer}}
		case 8: // an expired series and a recovery, before or after it: no expiry
			g.redate(p, age, day-181-kipass.Date(g.rng.IntN(100)))
			p.Recoveries = []kipass.Date{day - 1 - kipass.Date(g.rng.IntN(400))}
		case 9: // Novavax (given in Korea only from 2022-02-14: an edge, not the mix)
			done := day - 14 - kipass.Date(g.rng.IntN(60))
			p.Doses = []kipass.Dose{{Date: done - 21, Product: kipass.ProductNovavax}, {Date: done, Product: kipass.ProductNovavax}}
		}
	case g.status == statusBoosted && u < synthBoostToday: // valid from the day itself
		p.Doses[len(p.Doses)-1].Date = day
	}
}

// redate moves a primary series so that it completes on day done.
func (g *synth) redate(p *Person, age int, done kipass.Date) {
	if len(p.Doses) == 1 {
		p.Doses[0].Date = done
		return
	}
	first := kipass.IndexOf(kipass.Products, p.Doses[0].Product)
	p.Doses = p.Doses[:2]
	p.Doses[1].Date = done
	p.Doses[0].Date = done - kipass.Date(g.interval(first, age, done))
}

// clip drops whatever lies after At, before the birth date or before EarliestEvent,
// and any repeat, so that every person passes Validate(At).
func (g *synth) clip(p *Person) {
	lo := max(p.BirthDate, EarliestEvent)
	ok := func(day kipass.Date) bool { return day >= lo && day <= g.day }
	p.Doses = slices.DeleteFunc(p.Doses, func(x kipass.Dose) bool { return !ok(x.Date) })
	p.Normalize()
	p.Doses = slices.CompactFunc(p.Doses, func(a, b kipass.Dose) bool { return a.Date == b.Date })
	p.Tests = slices.DeleteFunc(p.Tests, func(t kipass.Test) bool { return t.At.After(g.at) || t.At.Before(lo.Start()) })
	p.Tests = slices.CompactFunc(p.Tests, func(a, b kipass.Test) bool { return a.Kind == b.Kind && a.At.Equal(b.At) })
	p.Recoveries = slices.DeleteFunc(p.Recoveries, func(r kipass.Date) bool { return !ok(r) })
	p.Recoveries = slices.Compact(p.Recoveries)
	p.Exemptions = slices.DeleteFunc(p.Exemptions, func(e Exemption) bool { return e.From != nil && !ok(*e.From) })
}
