// Package demo holds kipass's demo data: the clock of the demo, visitors whose histories
// cover each rule of kr-2022, and facilities of several categories and regions. The
// demo command, the end-to-end tests and the documentation share it.
package demo

import (
	"time"

	"github.com/kipass/kipass"
)

// Start is the default moment the demo clock starts from: Thursday 2022-01-27 at noon
// KST, the lunchtime of a day when the pass was in force for restaurants, supervised
// rapid antigen tests had just been accepted, and cinemas and large stores had just been
// removed. In 2026 every rule is suspended, so a demo on today's date would show
// nothing but NOT_REQUIRED.
var Start = time.Date(2022, 1, 27, 12, 0, 0, 0, kipass.KST)

// Clock returns a clock that starts at start when called first and then runs at real
// speed, so that pass lifetimes and countdowns behave as they would.
func Clock(start time.Time) func() time.Time {
	t0 := time.Now()
	return func() time.Time { return start.Add(time.Since(t0)) }
}

// Person is a demo visitor: what an issuer and the registry know of them, and what a
// gym scanner in Seoul is expected to say at Start.
type Person struct {
	PersonID string // registry id
	Name     string
	Phone    string
	Holder   kipass.Holder
	Expect   kipass.Outcome // at a gym at Start
	Basis    string         // expected basis at a gym at Start
	Story    string         // one line for the console
}

func d(s string) kipass.Date   { return kipass.MustParseDate(s) }
func dp(s string) *kipass.Date { v := d(s); return &v }
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func doses(product string, days ...string) []kipass.Dose {
	out := make([]kipass.Dose, len(days))
	for i, day := range days {
		out[i] = kipass.Dose{Date: d(day), Product: product}
	}
	return out
}

// People returns the demo visitors, one for each way through the rules.
func People() []Person {
	return []Person{
		{"R-0001", "김민준", "010-0000-0001", kipass.Holder{BirthDate: dp("1984-03-02"), Doses: doses(kipass.ProductPfizer, "2021-06-10", "2021-07-22", "2021-12-20")},
			kipass.PASS, kipass.BasisBooster, "booster 2021-12-20"},
		{"R-0002", "이서연", "010-0000-0002", kipass.Holder{BirthDate: dp("1992-11-15"), Doses: doses(kipass.ProductModerna, "2021-09-01", "2021-10-06")},
			kipass.PASS, kipass.BasisVaccinated, "second dose 2021-10-06, valid until 2022-04-04"},
		{"R-0003", "박지훈", "010-0000-0003", kipass.Holder{BirthDate: dp("1975-07-30"), Doses: doses(kipass.ProductAstraZeneca, "2021-06-01", "2021-07-20")},
			kipass.FAIL, "expired", "second dose 2021-07-20: 180 days ran out on 2022-01-16"},
		{"R-0004", "최수아", "010-0000-0004", kipass.Holder{BirthDate: dp("1988-02-09"), Doses: doses(kipass.ProductPfizer, "2021-12-28")},
			kipass.FAIL, "series_incomplete", "one dose of two"},
		{"R-0005", "정우진", "010-0000-0005", kipass.Holder{BirthDate: dp("1999-05-21"), Doses: doses(kipass.ProductPfizer, "2021-12-20", "2022-01-17")},
			kipass.FAIL, "too_early", "second dose 2022-01-17: valid from D+14, 2022-01-31"},
		{"R-0006", "강하은", "010-0000-0006", kipass.Holder{BirthDate: dp("1990-08-08"), RecoveredOn: dp("2021-12-20")},
			kipass.PASS, kipass.BasisRecovered, "released from isolation 2021-12-20"},
		{"R-0007", "조현우", "010-0000-0007", kipass.Holder{BirthDate: dp("1968-12-01"), Tests: []kipass.Test{{Kind: kipass.TestPCR, Result: kipass.ResultNegative, At: at("2022-01-26T15:00:00+09:00")}}},
			kipass.PASS, kipass.BasisNegativePCR, "negative PCR notified 2022-01-26 15:00"},
		{"R-0008", "윤지아", "010-0000-0008", kipass.Holder{BirthDate: dp("1979-04-17"), Tests: []kipass.Test{{Kind: kipass.TestRAT, Result: kipass.ResultNegative, At: at("2022-01-27T09:00:00+09:00")}}},
			kipass.PASS, kipass.BasisNegativeRAT, "supervised rapid antigen test 2022-01-27 09:00"},
		{"R-0009", "장도윤", "010-0000-0009", kipass.Holder{BirthDate: dp("2008-06-30")},
			kipass.PASS, kipass.BasisMinor, "born 2008: a minor"},
		{"R-0010", "임서윤", "010-0000-0010", kipass.Holder{BirthDate: dp("1960-01-25"), Exemption: kipass.ExemptionMedical},
			kipass.PASS, kipass.BasisMedicalExemption, "registered medical exemption"},
		{"R-0011", "한준서", "010-0000-0011", kipass.Holder{BirthDate: dp("1983-10-10"), Tests: []kipass.Test{{Kind: kipass.TestSelf, Result: kipass.ResultNegative, At: at("2022-01-27T08:00:00+09:00")}}},
			kipass.FAIL, "no_valid_test", "unvaccinated; a home self-test never counts"},
		{"R-0012", "오지민", "010-0000-0012", kipass.Holder{BirthDate: dp("1995-02-14"), Doses: doses(kipass.ProductJanssen, "2021-11-01")},
			kipass.PASS, kipass.BasisVaccinated, "one dose of Janssen 2021-11-01"},
	}
}

// Facility is a demo venue.
type Facility struct {
	Name           string
	BusinessNumber string // valid check digit
	Category       string
	Region         string
	Address        string
	PhoneNumber    string // 안심콜 number
}

// Facilities returns the demo venues: categories that need the pass at Start, ones that
// were removed or suspended, and ones that never needed it.
func Facilities() []Facility {
	return []Facility{
		{"하늘 카페", "1018100340", "restaurant", "seoul", "서울특별시 종로구 세종대로 1", "080-000-0001"},
		{"바다 피트니스", "2118100012", "gym", "busan", "부산광역시 해운대구 해운대로 2", "080-000-0002"},
		{"별빛 노래연습장", "3128100014", "karaoke", "daegu", "대구광역시 중구 동성로 3", "080-000-0003"},
		{"한빛 시네마", "1048100015", "cinema", "seoul", "서울특별시 중구 을지로 4", "080-000-0004"},
		{"무지개 PC방", "1168100018", "pc_room", "gyeonggi", "경기도 수원시 팔달구 5", "080-000-0005"},
		{"행복 웨딩홀", "1208100017", "wedding_hall", "incheon", "인천광역시 남동구 6", "080-000-0006"},
	}
}
