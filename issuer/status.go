package issuer

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/policy"
)

// StatusLine is one line of the holder's own status in words, as the wallet shows it:
// "3차 접종 완료", "PCR 음성 2022-01-22 24:00까지". Code is the basis it rests on
// (kipass.BasisBooster, ...), a failure basis of the rules, or "not_required".
type StatusLine struct {
	Code  string     `json:"code"`
	KO    string     `json:"ko"`
	EN    string     `json:"en"`
	Until *time.Time `json:"until,omitempty"`
}

// statusSnap is a holder's status, good until a time (the end of the day, or the end
// of the earliest basis that runs out).
type statusSnap struct {
	until time.Time
	lines []StatusLine
}

// describer turns holder facts into status lines with the rules, so that the wallet
// says what the scanners will decide: each kind of fact is judged on its own at a
// facility where the pass is required that day.
type describer struct {
	rules *policy.Rules

	mu       sync.Mutex
	probeDay kipass.Date
	probeOK  bool
	probe    *kipass.Place // nil: no facility requires the pass that day
}

// status returns the holder's status lines at now, computed once per facts and day.
func (d *describer) status(f *cachedFacts, now time.Time) []StatusLine {
	if s := f.status.Load(); s != nil && now.Before(s.until) {
		return s.lines
	}
	lines, until := d.describe(&f.Holder, now)
	f.status.Store(&statusSnap{until: until, lines: lines})
	return lines
}

// probeAt returns a facility where the pass is required on now's day: the first
// category and region at which a holder with no facts fails.
func (d *describer) probeAt(now time.Time) *kipass.Place {
	day := kipass.DateOf(now)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.probeOK && d.probeDay == day {
		return d.probe
	}
	d.probeDay, d.probeOK, d.probe = day, true, nil
	born := kipass.NewDate(1970, 1, 1)
	for _, reg := range d.rules.Regions() {
		for _, cat := range d.rules.Categories() {
			p := kipass.Place{Category: cat, Region: reg}
			dec, err := d.rules.Evaluate(policy.Case{At: now, Place: p, PartySize: 1, Holder: kipass.Holder{BirthDate: &born}})
			if err == nil && dec.Outcome == kipass.FAIL {
				d.probe = &p
				return d.probe
			}
		}
	}
	return nil
}

func (d *describer) describe(h *kipass.Holder, now time.Time) ([]StatusLine, time.Time) {
	until := (kipass.DateOf(now) + 1).Start()
	place := d.probeAt(now)
	if place == nil {
		return factLines(h), until
	}
	var lines []StatusLine
	add := func(sub kipass.Holder, failToo bool) {
		dec, err := d.rules.Evaluate(policy.Case{At: now, Place: *place, PartySize: 1, Holder: sub})
		if err != nil || (dec.Outcome != kipass.PASS && !(failToo && dec.Outcome == kipass.FAIL)) {
			return
		}
		for _, l := range lines {
			if l.Code == dec.Basis {
				return
			}
		}
		lines = append(lines, lineFor(dec.Basis, dec.ValidUntil, h))
		if dec.ValidUntil != nil && dec.ValidUntil.Before(until) {
			until = *dec.ValidUntil
		}
	}
	if len(h.Doses) > 0 || h.RecoveredOn != nil {
		add(kipass.Holder{BirthDate: h.BirthDate, Doses: h.Doses, RecoveredOn: h.RecoveredOn}, true)
	}
	if len(h.Tests) > 0 {
		add(kipass.Holder{BirthDate: h.BirthDate, Tests: h.Tests}, false)
	}
	if h.Exemption != "" {
		add(kipass.Holder{BirthDate: h.BirthDate, Exemption: h.Exemption}, false)
	}
	if h.BirthDate != nil {
		add(kipass.Holder{BirthDate: h.BirthDate}, false)
	}
	if len(lines) == 0 {
		lines = append(lines, lineFor(policy.BasisNotVaccinated, nil, h))
	}
	return lines, until
}

// lineFor words one basis.
func lineFor(basis string, until *time.Time, h *kipass.Holder) StatusLine {
	l := StatusLine{Code: basis, Until: until}
	ko, en := "", ""
	if until != nil {
		ko, en = " "+until24(*until)+"까지", " until "+until24(*until)
	}
	switch basis {
	case kipass.BasisBooster:
		l.KO, l.EN = fmt.Sprintf("%d차 접종 완료", len(h.Doses)), "Booster dose received"
	case kipass.BasisVaccinated:
		l.KO, l.EN = "접종 완료"+ko, "Fully vaccinated"+en
	case kipass.BasisRecovered:
		l.KO, l.EN = "완치 확인"+ko, "Recovered"+en
	case kipass.BasisNegativePCR:
		l.KO, l.EN = "PCR 음성"+ko, "Negative PCR test"+en
	case kipass.BasisNegativeRAT:
		l.KO, l.EN = "신속항원검사 음성"+ko, "Negative rapid antigen test"+en
	case kipass.BasisMinor:
		l.KO, l.EN = "미성년자 (방역패스 적용 제외)", "Minor: the pass does not apply"
	case kipass.BasisMedicalExemption:
		l.KO, l.EN = "접종 예외 (의학적 사유)", "Medical exemption"
	default:
		l.KO, l.EN = policy.BasisText(basis, "ko")+ko, capitalize(policy.BasisText(basis, "en"))+en
	}
	return l
}

// factLines words the facts themselves, for days when no facility requires the pass
// and the rules have nothing to say about them.
func factLines(h *kipass.Holder) []StatusLine {
	var lines []StatusLine
	if n := len(h.Doses); n > 0 {
		last := h.Doses[0].Date
		for _, d := range h.Doses {
			last = max(last, d.Date)
		}
		lines = append(lines, StatusLine{Code: "doses", KO: fmt.Sprintf("%d차 접종 (%s)", n, last), EN: fmt.Sprintf("%d doses, the last on %s", n, last)})
	}
	if h.RecoveredOn != nil {
		lines = append(lines, StatusLine{Code: kipass.BasisRecovered, KO: "격리 해제 " + h.RecoveredOn.String(), EN: "Released from isolation on " + h.RecoveredOn.String()})
	}
	if h.Exemption != "" {
		lines = append(lines, lineFor(kipass.BasisMedicalExemption, nil, h))
	}
	return append(lines, StatusLine{Code: "not_required", KO: "현재 방역패스 적용 시설 없음", EN: "The pass is not required anywhere at present"})
}

// until24 writes a time as the rules say it: "until day X" is "X 24:00".
func until24(t time.Time) string {
	k := t.In(kipass.KST)
	if k.Hour() == 0 && k.Minute() == 0 && k.Second() == 0 {
		return (kipass.DateOf(k) - 1).String() + " 24:00"
	}
	return k.Format("2006-01-02 15:04")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
