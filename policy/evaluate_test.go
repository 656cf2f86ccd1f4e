package policy_test

import (
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/policy"
)

// The tests below follow ../shared/RULES.md section by section, at and around every
// boundary it names. Unless a row says otherwise the facility is a gym in Seoul (the pass
// is required there from 2021-11-01 with no grace) and the party is one visitor.

func TestPolicyEvaluateSeries(t *testing.T) {
	runEvalCases(t, policy.Default(), []evalCase{
		{name: "D+13 is not yet valid", at: "2021-11-14 23:59:59", holder: []fact{series("2021-10-11", "2021-11-01")},
			want: "FAIL too_early"},
		{name: "D+14 is valid from 00:00", at: "2021-11-15 00:00", holder: []fact{series("2021-10-11", "2021-11-01")},
			want: "PASS vaccinated", until: "2022-05-01T00:00:00+09:00"},
		{name: "one dose is an incomplete series", at: "2021-12-01", holder: []fact{dose("2021-10-01", "pfizer")},
			want: "FAIL series_incomplete"},
		{name: "one dose is incomplete long after", at: "2022-02-01", holder: []fact{dose("2021-06-01", "moderna")},
			want: "FAIL series_incomplete"},
		{name: "janssen single dose D+13", at: "2021-12-14", holder: []fact{dose("2021-12-01", "janssen")},
			want: "FAIL too_early"},
		{name: "janssen single dose D+14", at: "2021-12-15", holder: []fact{dose("2021-12-01", "janssen")},
			want: "PASS vaccinated", until: "2022-05-31T00:00:00+09:00"},
		{name: "astrazeneca then pfizer is a series", at: "2021-11-20",
			holder: []fact{dose("2021-06-01", "astrazeneca"), dose("2021-08-01", "pfizer")},
			want:   "PASS vaccinated", until: "2022-01-29T00:00:00+09:00"},
		{name: "doses out of order are sorted", at: "2021-11-20",
			holder: []fact{dose("2021-08-01", "pfizer"), dose("2021-06-01", "astrazeneca")},
			want:   "PASS vaccinated", until: "2022-01-29T00:00:00+09:00"},
		{name: "moderna and novavax", at: "2021-12-01",
			holder: []fact{dose("2021-09-01", "moderna"), dose("2021-10-01", "novavax")},
			want:   "PASS vaccinated", until: "2022-03-31T00:00:00+09:00"},
		{name: "pfizer then janssen completes at janssen", at: "2021-12-20",
			holder: []fact{dose("2021-11-01", "pfizer"), dose("2021-12-01", "janssen")},
			want:   "PASS vaccinated", until: "2022-05-31T00:00:00+09:00"},
		{name: "second dose is not a booster", at: "2021-12-05", holder: []fact{series("2021-11-01", "2021-12-01")},
			want: "FAIL too_early"},
	})
}

func TestPolicyEvaluateExpiry(t *testing.T) {
	d0710 := series("2021-06-19", "2021-07-10") // D+180 = 2022-01-06
	d0601 := series("2021-05-11", "2021-06-01") // D+180 = 2021-11-28
	runEvalCases(t, policy.Default(), []evalCase{
		{name: "no expiry before 2022-01-03", at: "2021-12-20", holder: []fact{d0601},
			want: "PASS vaccinated", until: "2022-01-03T00:00:00+09:00"},
		{name: "no expiry on 2022-01-02 24:00", at: "2022-01-02 23:59:59", holder: []fact{d0601},
			want: "PASS vaccinated", until: "2022-01-03T00:00:00+09:00"},
		{name: "expired from 2022-01-03 00:00 in grace", at: "2022-01-03 00:00", holder: []fact{d0601},
			want: "FAIL expired", grace: true},
		{name: "valid before 2022-01-03 shows the coming end", at: "2022-01-01", holder: []fact{d0710},
			want: "PASS vaccinated", until: "2022-01-07T00:00:00+09:00"},
		{name: "D+180 last day", at: "2022-01-06 23:59:59", holder: []fact{d0710},
			want: "PASS vaccinated", until: "2022-01-07T00:00:00+09:00"},
		{name: "D+181 expired in grace", at: "2022-01-07 00:00", holder: []fact{d0710},
			want: "FAIL expired", grace: true},
		{name: "grace last day 2022-01-09", at: "2022-01-09 23:59", holder: []fact{d0710},
			want: "FAIL expired", grace: true},
		{name: "no grace from 2022-01-10", at: "2022-01-10 00:00", holder: []fact{d0710},
			want: "FAIL expired"},
		{name: "grace is only for expiry", at: "2022-01-05",
			want: "FAIL not_vaccinated"},
		{name: "born 2003-01-01 is exempt from expiry", at: "2022-02-01", holder: []fact{born("2003-01-01"), d0710},
			want: "PASS vaccinated"},
		{name: "born 2002-12-31 is not exempt", at: "2022-02-01", holder: []fact{born("2002-12-31"), d0710},
			want: "FAIL expired"},
		{name: "recovered before the series is exempt", at: "2022-02-01", holder: []fact{recovered("2021-03-01"), d0710},
			want: "PASS vaccinated"},
		{name: "recovered after the series is exempt", at: "2022-02-01", holder: []fact{d0710, recovered("2021-12-20")},
			want: "PASS vaccinated"},
		{name: "same-day extra dose is not a booster", at: "2022-01-10",
			holder: []fact{d0710, dose("2021-07-10", "pfizer")},
			want:   "FAIL expired"},
	})
}

func TestPolicyEvaluateBooster(t *testing.T) {
	runEvalCases(t, policy.Default(), []evalCase{
		{name: "expired the day before the booster", at: "2022-01-04 23:59",
			holder: []fact{series("2021-05-11", "2021-06-01")},
			want:   "FAIL expired", grace: true},
		{name: "booster counts from 00:00 of its day", at: "2022-01-05 00:00",
			holder: []fact{series("2021-05-11", "2021-06-01"), dose("2022-01-05", "moderna")},
			want:   "PASS booster"},
		{name: "booster never expires", at: "2022-02-28 23:59",
			holder: []fact{series("2021-04-01", "2021-04-22"), dose("2021-10-01", "pfizer")},
			want:   "PASS booster"},
		{name: "booster needs no 14 days even in the series wait", at: "2021-12-10",
			holder: []fact{dose("2021-12-01", "janssen"), dose("2021-12-10", "pfizer")},
			want:   "PASS booster"},
		{name: "dose after janssen is a booster", at: "2022-02-01",
			holder: []fact{dose("2021-06-01", "janssen"), dose("2021-12-01", "pfizer")},
			want:   "PASS booster"},
		{name: "third dose in any order", at: "2022-01-20",
			holder: []fact{dose("2022-01-03", "moderna"), dose("2021-06-01", "pfizer"), dose("2021-05-11", "pfizer")},
			want:   "PASS booster"},
	})
}

func TestPolicyEvaluateRecovery(t *testing.T) {
	runEvalCases(t, policy.Default(), []evalCase{
		{name: "from day R", at: "2021-12-01 00:00", holder: []fact{recovered("2021-12-01")},
			want: "PASS recovered", until: "2022-05-31T00:00:00+09:00"},
		{name: "R+180 last day", at: "2022-01-28 23:59:59", holder: []fact{recovered("2021-08-01")},
			want: "PASS recovered", until: "2022-01-29T00:00:00+09:00"},
		{name: "R+181 expired", at: "2022-01-29 00:00", holder: []fact{recovered("2021-08-01")},
			want: "FAIL recovery_expired"},
		{name: "R+181 with one dose", at: "2022-01-29", holder: []fact{recovered("2021-08-01"), dose("2021-12-01", "pfizer")},
			want: "FAIL series_incomplete"},
		{name: "with series no expiry from D+14 after R", at: "2021-12-15",
			holder: []fact{recovered("2021-12-01"), series("2021-11-20", "2021-12-10")},
			want:   "PASS recovered"},
		{name: "with series no expiry from R after D+14", at: "2021-12-20",
			holder: []fact{series("2021-05-11", "2021-06-01"), recovered("2021-12-20")},
			want:   "PASS vaccinated"},
		{name: "with series starting after a gap keeps R+180", at: "2022-01-25",
			holder: []fact{recovered("2021-08-01"), series("2021-12-20", "2022-01-20")},
			want:   "PASS recovered", until: "2022-01-29T00:00:00+09:00"},
		{name: "in the gap between R+180 and D+14", at: "2022-02-02",
			holder: []fact{recovered("2021-08-01"), series("2021-12-20", "2022-01-20")},
			want:   "FAIL too_early"},
		{name: "after the gap D+14 with recovery never expires", at: "2022-02-03",
			holder: []fact{recovered("2021-08-01"), series("2021-12-20", "2022-01-20")},
			want:   "PASS vaccinated"},
	})
}

func TestPolicyEvaluateTests(t *testing.T) {
	runEvalCases(t, policy.Default(), []evalCase{
		{name: "PCR until 24:00 of notification+48h", at: "2022-01-22 23:59:59", holder: []fact{pcr("2022-01-20 10:00")},
			want: "PASS negative_pcr", until: "2022-01-23T00:00:00+09:00"},
		{name: "PCR expired at 00:00", at: "2022-01-23 00:00", holder: []fact{pcr("2022-01-20 10:00")},
			want: "FAIL no_valid_test"},
		{name: "PCR at its own notification time", at: "2022-01-20 10:00", holder: []fact{pcr("2022-01-20 10:00")},
			want: "PASS negative_pcr", until: "2022-01-23T00:00:00+09:00"},
		{name: "PCR notified 23:59:59 ends a day earlier", at: "2022-01-21", holder: []fact{pcr("2022-01-19 23:59:59")},
			want: "PASS negative_pcr", until: "2022-01-22T00:00:00+09:00"},
		{name: "PCR notified 00:00", at: "2022-01-21", holder: []fact{pcr("2022-01-20 00:00")},
			want: "PASS negative_pcr", until: "2022-01-23T00:00:00+09:00"},
		{name: "PCR time in UTC counts in KST", at: "2022-01-21", holder: []fact{pcr("2022-01-20T15:30:00Z")},
			want: "PASS negative_pcr", until: "2022-01-24T00:00:00+09:00"},
		{name: "latest PCR is used", at: "2022-01-23",
			holder: []fact{pcr("2022-01-20 10:00"), pcr("2022-01-22 09:00"), pcr("2022-01-21 09:00")},
			want:   "PASS negative_pcr", until: "2022-01-25T00:00:00+09:00"},
		{name: "positive PCR is not a pass", at: "2022-01-21", holder: []fact{test("pcr", "positive", "2022-01-20 10:00")},
			want: "FAIL no_valid_test"},
		{name: "positive PCR does not cancel vaccination", at: "2021-12-01",
			holder: []fact{series("2021-09-01", "2021-10-01"), test("pcr", "positive", "2021-11-30 10:00")},
			want:   "PASS vaccinated", until: "2022-03-31T00:00:00+09:00"},
		{name: "self test never counts", at: "2022-02-01", holder: []fact{test("self", "negative", "2022-02-01 08:00")},
			want: "FAIL no_valid_test"},
		{name: "RAT not accepted on 2022-01-25", at: "2022-01-25 18:00", holder: []fact{rat("2022-01-25 10:00")},
			want: "FAIL no_valid_test"},
		{name: "RAT accepted from 2022-01-26 00:00", at: "2022-01-26 00:00", holder: []fact{rat("2022-01-25 20:00")},
			want: "PASS negative_rat", until: "2022-01-27T00:00:00+09:00"},
		{name: "RAT until 24:00 of result+24h", at: "2022-01-27 23:59:59", holder: []fact{rat("2022-01-26 08:00")},
			want: "PASS negative_rat", until: "2022-01-28T00:00:00+09:00"},
		{name: "RAT expired at 00:00", at: "2022-01-28 00:00", holder: []fact{rat("2022-01-26 08:00")},
			want: "FAIL no_valid_test"},
		{name: "PCR preferred over RAT that lasts as long", at: "2022-02-02",
			holder: []fact{rat("2022-02-02 08:00"), pcr("2022-02-01 07:00")},
			want:   "PASS negative_pcr", until: "2022-02-04T00:00:00+09:00"},
		{name: "RAT lasting longer than a PCR is shown", at: "2022-02-02",
			holder: []fact{pcr("2022-01-31 07:00"), rat("2022-02-02 08:00")},
			want:   "PASS negative_rat", until: "2022-02-04T00:00:00+09:00"},
	})
}

func TestPolicyEvaluateMinorsAndExemptions(t *testing.T) {
	runEvalCases(t, policy.Default(), []evalCase{
		{name: "born 2003-01-01 is a minor", at: "2022-01-12", holder: []fact{born("2003-01-01")},
			want: "PASS minor"},
		{name: "born 2002-12-31 is not", at: "2022-01-12", holder: []fact{born("2002-12-31")},
			want: "FAIL not_vaccinated"},
		{name: "minor on the first day", at: "2021-11-01 00:00", holder: []fact{born("2015-06-30")},
			want: "PASS minor"},
		{name: "minor with one dose", at: "2022-02-15", holder: []fact{born("2005-03-01"), dose("2021-11-01", "pfizer")},
			want: "PASS minor"},
		{name: "no birth date is no minor", at: "2022-01-12",
			want: "FAIL not_vaccinated"},
		{name: "medical exemption", at: "2022-01-12", holder: []fact{exempt("medical")},
			want: "PASS medical_exemption"},
		{name: "medical exemption with incomplete series", at: "2022-02-28 23:59",
			holder: []fact{exempt("medical"), dose("2021-08-01", "astrazeneca")},
			want:   "PASS medical_exemption"},
	})
}

// TestPolicyEvaluatePreference pins the documented order among bases that hold together:
// the longest-lasting first; among those that last equally long booster, vaccinated,
// minor, recovered, exemption, then tests in document order.
func TestPolicyEvaluatePreference(t *testing.T) {
	runEvalCases(t, policy.Default(), []evalCase{
		{name: "booster over minor and exemption", at: "2022-01-12",
			holder: []fact{born("2004-01-01"), exempt("medical"), series("2021-07-01", "2021-07-22"), dose("2021-12-22", "pfizer")},
			want:   "PASS booster"},
		{name: "minor over exemption", at: "2022-01-12", holder: []fact{born("2004-01-01"), exempt("medical")},
			want: "PASS minor"},
		{name: "vaccinated without end over minor", at: "2022-01-12",
			holder: []fact{born("2004-01-01"), series("2021-11-01", "2021-11-22")},
			want:   "PASS vaccinated"},
		{name: "exemption without end over vaccinated with end", at: "2022-01-12",
			holder: []fact{exempt("medical"), series("2021-11-01", "2021-11-22")},
			want:   "PASS medical_exemption"},
		{name: "longer PCR over vaccination ending sooner", at: "2022-01-05",
			holder: []fact{series("2021-06-19", "2021-07-10"), pcr("2022-01-05 09:00")},
			want:   "PASS negative_pcr", until: "2022-01-08T00:00:00+09:00"},
		{name: "vaccination over PCR ending sooner", at: "2022-01-05",
			holder: []fact{series("2021-11-01", "2021-11-22"), pcr("2022-01-05 09:00")},
			want:   "PASS vaccinated", until: "2022-05-22T00:00:00+09:00"},
		{name: "recovery lifts the expiry of vaccination", at: "2022-01-05",
			holder: []fact{series("2021-10-01", "2021-10-22"), recovered("2022-01-02")},
			want:   "PASS vaccinated"},
		{name: "recovery lasting longer than a PCR", at: "2022-01-12",
			holder: []fact{recovered("2021-12-01"), pcr("2022-01-12 08:00")},
			want:   "PASS recovered", until: "2022-05-31T00:00:00+09:00"},
	})
}

func TestPolicyEvaluateCategories(t *testing.T) {
	first := []string{"entertainment", "karaoke", "gym", "bathhouse", "casino"}
	second := []string{"academy", "cinema", "study_cafe", "multiroom", "pc_room", "stadium",
		"museum", "party_room", "library", "massage"}
	var cases []evalCase
	for _, cat := range first {
		cases = append(cases,
			evalCase{name: cat + " not before 2021-11-01", cat: cat, at: "2021-10-31 23:59:59", want: "NOT_REQUIRED not_yet_in_force"},
			evalCase{name: cat + " from 2021-11-01 without grace", cat: cat, at: "2021-11-01 00:00", want: "FAIL not_vaccinated"},
			evalCase{name: cat + " passes from 2021-11-01", cat: cat, at: "2021-11-01 00:00",
				holder: []fact{series("2021-09-01", "2021-09-22")}, want: "PASS vaccinated", until: "2022-03-22T00:00:00+09:00"},
		)
	}
	for _, cat := range second {
		cases = append(cases,
			evalCase{name: cat + " not before 2021-12-06", cat: cat, at: "2021-12-05 23:59:59", want: "NOT_REQUIRED not_yet_in_force"},
			evalCase{name: cat + " from 2021-12-06 in grace", cat: cat, at: "2021-12-06 00:00", want: "FAIL not_vaccinated", grace: true},
			evalCase{name: cat + " grace until 2021-12-12", cat: cat, at: "2021-12-12 23:59:59", want: "FAIL not_vaccinated", grace: true},
			evalCase{name: cat + " fines from 2021-12-13", cat: cat, at: "2021-12-13 00:00", want: "FAIL not_vaccinated"},
		)
	}
	for _, cat := range []string{"wedding_hall", "funeral_hall", "religious", "office", "other"} {
		for _, when := range []string{"2021-10-01", "2021-12-20", "2022-01-12", "2022-02-25", "2022-03-01"} {
			cases = append(cases, evalCase{name: cat + " never on " + when, cat: cat, at: when, want: "NOT_REQUIRED category_not_covered"})
		}
	}
	cases = append(cases,
		evalCase{name: "large_store not before 2022-01-10", cat: "large_store", region: "busan", at: "2022-01-09 23:59", want: "NOT_REQUIRED not_yet_in_force"},
		evalCase{name: "large_store from 2022-01-10 in grace", cat: "large_store", region: "busan", at: "2022-01-10 00:00", want: "FAIL not_vaccinated", grace: true},
		evalCase{name: "large_store grace until 2022-01-16", cat: "large_store", region: "busan", at: "2022-01-16 23:59", want: "FAIL not_vaccinated", grace: true},
		evalCase{name: "large_store fines from 2022-01-17", cat: "large_store", region: "busan", at: "2022-01-17 00:00", want: "FAIL not_vaccinated"},
		evalCase{name: "large_store has no eating-alone exception", cat: "large_store", region: "busan", at: "2022-01-17", party: 1, want: "FAIL not_vaccinated"},
		evalCase{name: "large_store passes", cat: "large_store", region: "incheon", at: "2022-01-12",
			holder: []fact{born("1980-05-05"), exempt("medical")}, want: "PASS medical_exemption"},
	)
	runEvalCases(t, policy.Default(), cases)
}

func TestPolicyEvaluateSuspensions(t *testing.T) {
	var cases []evalCase
	for _, cat := range []string{"academy", "study_cafe"} {
		cases = append(cases,
			evalCase{name: cat + " required on 2022-01-03", cat: cat, region: "jeju", at: "2022-01-03 23:59", want: "FAIL not_vaccinated"},
			evalCase{name: cat + " suspended nationwide from 2022-01-04", cat: cat, region: "jeju", at: "2022-01-04 00:00", want: "NOT_REQUIRED suspended"},
			evalCase{name: cat + " still suspended on 2022-01-20", cat: cat, region: "seoul", at: "2022-01-20", want: "NOT_REQUIRED suspended"},
		)
	}
	for _, cat := range []string{"library", "museum", "cinema"} {
		cases = append(cases,
			evalCase{name: cat + " required on 2022-01-17", cat: cat, region: "seoul", at: "2022-01-17 23:59:59", want: "FAIL not_vaccinated"},
			evalCase{name: cat + " removed from 2022-01-18", cat: cat, region: "seoul", at: "2022-01-18 00:00", want: "NOT_REQUIRED suspended"},
		)
	}
	cases = append(cases,
		evalCase{name: "large_store seoul required on 2022-01-13", cat: "large_store", region: "seoul", at: "2022-01-13 23:59", want: "FAIL not_vaccinated", grace: true},
		evalCase{name: "large_store seoul suspended from 2022-01-14", cat: "large_store", region: "seoul", at: "2022-01-14 00:00", want: "NOT_REQUIRED suspended"},
		evalCase{name: "large_store busan not suspended on 2022-01-14", cat: "large_store", region: "busan", at: "2022-01-14", want: "FAIL not_vaccinated", grace: true},
		evalCase{name: "large_store busan removed from 2022-01-18", cat: "large_store", region: "busan", at: "2022-01-18 00:00", want: "NOT_REQUIRED suspended"},
		evalCase{name: "restaurant keeps the pass on 2022-01-18", cat: "restaurant", region: "seoul", at: "2022-01-18", party: 2, want: "FAIL not_vaccinated"},
		evalCase{name: "gym keeps the pass on 2022-01-18", at: "2022-01-18", want: "FAIL not_vaccinated"},

		evalCase{name: "daegu restaurant under 60 required on 2022-02-22", cat: "restaurant", region: "daegu", at: "2022-02-22 23:59", party: 2,
			holder: []fact{born("1990-01-01")}, want: "FAIL not_vaccinated"},
		evalCase{name: "daegu restaurant under 60 suspended from 2022-02-23", cat: "restaurant", region: "daegu", at: "2022-02-23 00:00", party: 2,
			holder: []fact{born("1990-01-01")}, want: "NOT_REQUIRED suspended"},
		evalCase{name: "daegu restaurant age 59 by birth date", cat: "restaurant", region: "daegu", at: "2022-02-23", party: 2,
			holder: []fact{born("1962-02-24")}, want: "NOT_REQUIRED suspended"},
		evalCase{name: "daegu restaurant age 60 on the birthday", cat: "restaurant", region: "daegu", at: "2022-02-23", party: 2,
			holder: []fact{born("1962-02-23")}, want: "FAIL not_vaccinated"},
		evalCase{name: "daegu restaurant age 60 turning 60 during the order", cat: "restaurant", region: "daegu", at: "2022-02-25", party: 2,
			holder: []fact{born("1962-02-24")}, want: "FAIL not_vaccinated"},
		evalCase{name: "daegu restaurant 60 alone is the exception", cat: "restaurant", region: "daegu", at: "2022-02-23",
			holder: []fact{born("1950-01-01")}, want: "PASS restaurant_exception"},
		evalCase{name: "daegu restaurant 60 vaccinated", cat: "restaurant", region: "daegu", at: "2022-02-23",
			holder: []fact{born("1950-01-01"), series("2021-04-01", "2021-05-01"), dose("2021-11-01", "pfizer")}, want: "PASS booster"},
		evalCase{name: "daegu restaurant unknown age is not under 60", cat: "restaurant", region: "daegu", at: "2022-02-23", party: 3,
			want: "FAIL not_vaccinated"},
		evalCase{name: "daegu gym under 60 is required", cat: "gym", region: "daegu", at: "2022-02-23",
			holder: []fact{born("1990-01-01")}, want: "FAIL not_vaccinated"},
		evalCase{name: "seoul restaurant under 60 is required", cat: "restaurant", region: "seoul", at: "2022-02-23", party: 2,
			holder: []fact{born("1990-01-01")}, want: "FAIL not_vaccinated"},
		evalCase{name: "gym required until 2022-02-28 24:00", at: "2022-02-28 23:59:59", want: "FAIL not_vaccinated"},
	)
	for _, cat := range []string{"entertainment", "karaoke", "gym", "bathhouse", "casino", "restaurant", "multiroom", "pc_room",
		"stadium", "party_room", "massage", "academy", "large_store"} {
		cases = append(cases, evalCase{name: cat + " suspended everywhere from 2022-03-01", cat: cat, region: "gyeongnam",
			at: "2022-03-01 00:00", want: "NOT_REQUIRED suspended"})
	}
	cases = append(cases, evalCase{name: "still suspended later", at: "2022-06-01", want: "NOT_REQUIRED suspended"})
	runEvalCases(t, policy.Default(), cases)
}

func TestPolicyEvaluateRestaurantException(t *testing.T) {
	runEvalCases(t, policy.Default(), []evalCase{
		{name: "not required on 2021-12-05", cat: "restaurant", at: "2021-12-05 23:59", want: "NOT_REQUIRED not_yet_in_force"},
		{name: "any party size from 2021-12-06", cat: "restaurant", at: "2021-12-06 00:00", party: 4,
			want: "PASS restaurant_exception", until: "2021-12-18T00:00:00+09:00"},
		{name: "alone from 2021-12-06", cat: "restaurant", at: "2021-12-10",
			want: "PASS restaurant_exception", until: "2021-12-18T00:00:00+09:00"},
		{name: "any party size until 2021-12-17 24:00", cat: "restaurant", at: "2021-12-17 23:59:59", party: 8,
			want: "PASS restaurant_exception", until: "2021-12-18T00:00:00+09:00"},
		{name: "party of 2 refused from 2021-12-18", cat: "restaurant", at: "2021-12-18 00:00", party: 2,
			want: "FAIL not_vaccinated"},
		{name: "alone from 2021-12-18", cat: "restaurant", at: "2021-12-18 00:00",
			want: "PASS restaurant_exception"},
		{name: "alone on 2022-02-28", cat: "restaurant", region: "busan", at: "2022-02-28",
			holder: []fact{dose("2022-02-01", "pfizer")}, want: "PASS restaurant_exception"},
		{name: "vaccinated visitor shows vaccination", cat: "restaurant", at: "2021-12-06", party: 3,
			holder: []fact{series("2021-09-01", "2021-09-22")}, want: "PASS vaccinated", until: "2022-03-22T00:00:00+09:00"},
		{name: "expired series in a party keeps expiry grace", cat: "restaurant", at: "2022-01-05", party: 2,
			holder: []fact{series("2021-05-11", "2021-06-01")}, want: "FAIL expired", grace: true},
		{name: "expired series alone", cat: "restaurant", at: "2022-01-05",
			holder: []fact{series("2021-05-11", "2021-06-01")}, want: "PASS restaurant_exception"},
	})
}

func TestPolicyEvaluateErrors(t *testing.T) {
	r := policy.Default()
	base := evalCase{at: "2022-01-12"}
	for _, c := range []struct {
		name  string
		edit  func(*policy.Case)
		field string
	}{
		{"UnknownCategory", func(c *policy.Case) { c.Place.Category = "sauna" }, "facility.category"},
		{"EmptyCategory", func(c *policy.Case) { c.Place.Category = "" }, "facility.category"},
		{"UnknownRegion", func(c *policy.Case) { c.Place.Region = "tokyo" }, "facility.region"},
		{"PartySizeZero", func(c *policy.Case) { c.PartySize = 0 }, "party_size"},
		{"PartySizeNegative", func(c *policy.Case) { c.PartySize = -1 }, "party_size"},
		{"ZeroTime", func(c *policy.Case) { c.At = time.Time{} }, "at"},
		{"UnknownProduct", func(c *policy.Case) {
			c.Holder.Doses = []kipass.Dose{{Date: kipass.MustParseDate("2021-06-01"), Product: "pfizer"},
				{Date: kipass.MustParseDate("2021-07-01"), Product: "sputnik"}}
		}, "holder.doses[1].product"},
		{"DoseAfterTheDay", func(c *policy.Case) {
			c.Holder.Doses = []kipass.Dose{{Date: kipass.MustParseDate("2022-01-13"), Product: "pfizer"}}
		}, "holder.doses[0].date"},
		{"UnknownTestKind", func(c *policy.Case) {
			c.Holder.Tests = []kipass.Test{{Kind: "lamp", Result: "negative", At: at(t, "2022-01-11")}}
		}, "holder.tests[0].kind"},
		{"UnknownTestResult", func(c *policy.Case) {
			c.Holder.Tests = []kipass.Test{{Kind: "pcr", Result: "inconclusive", At: at(t, "2022-01-11")}}
		}, "holder.tests[0].result"},
		{"TestWithoutTime", func(c *policy.Case) {
			c.Holder.Tests = []kipass.Test{{Kind: "pcr", Result: "negative"}}
		}, "holder.tests[0].at"},
		{"TestInTheFuture", func(c *policy.Case) {
			c.Holder.Tests = []kipass.Test{{Kind: "pcr", Result: "negative", At: at(t, "2022-01-11")},
				{Kind: "pcr", Result: "negative", At: at(t, "2022-01-12 12:00:01")}}
		}, "holder.tests[1].at"},
		{"UnknownExemption", func(c *policy.Case) { c.Holder.Exemption = "religious" }, "holder.exemption"},
		{"RecoveredAfterTheDay", func(c *policy.Case) {
			d := kipass.MustParseDate("2022-01-13")
			c.Holder.RecoveredOn = &d
		}, "holder.recovered_on"},
		{"BornAfterTheDay", func(c *policy.Case) {
			d := kipass.MustParseDate("2022-02-01")
			c.Holder.BirthDate = &d
		}, "holder.birth_date"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pc := base.build(t)
			c.edit(&pc)
			d, err := r.Evaluate(pc)
			if err == nil {
				t.Fatalf("Evaluate = %+v, want an error naming %s", d, c.field)
			}
			if kipass.ErrorCode(err) != kipass.EINVALID || kipass.ErrorField(err) != c.field {
				t.Fatalf("error %v: code %q field %q, want invalid %q", err, kipass.ErrorCode(err), kipass.ErrorField(err), c.field)
			}
		})
	}
}

// TestPolicyEvaluateAllocations holds Evaluate to its hot-path budget: no allocation but the
// ValidUntil time. It counts allocations, not time.
func TestPolicyEvaluateAllocations(t *testing.T) {
	r := policy.Default()
	for _, c := range []struct {
		name string
		c    evalCase
		max  float64
	}{
		{"Booster", evalCase{cat: "restaurant", at: "2022-01-12", holder: []fact{series("2021-06-01", "2021-06-22"), dose("2021-12-20", "pfizer")}}, 0},
		{"PCR", evalCase{at: "2022-01-21", holder: []fact{pcr("2022-01-20 10:00")}}, 1},
		{"Fail", evalCase{at: "2022-01-21", holder: []fact{born("1990-01-01"), dose("2021-12-01", "pfizer")}}, 0},
		{"Suspended", evalCase{cat: "restaurant", region: "daegu", at: "2022-02-24", holder: []fact{born("1990-01-01")}}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			pc := c.c.build(t)
			n := testing.AllocsPerRun(100, func() {
				if _, err := r.Evaluate(pc); err != nil {
					t.Fatal(err)
				}
			})
			if n > c.max {
				t.Errorf("Evaluate allocates %v times, want at most %v", n, c.max)
			}
		})
	}
}

// BenchmarkEvaluate measures one decision on the scan hot path: a typical pass (two
// doses and a booster) at a restaurant, and a negative PCR that has an end time.
func BenchmarkEvaluate(b *testing.B) {
	r := policy.Default()
	for _, c := range []struct {
		name string
		c    evalCase
	}{
		{"Booster", evalCase{cat: "restaurant", region: "seoul", at: "2022-01-12 12:30",
			holder: []fact{born("1985-03-14"), series("2021-06-01", "2021-06-22"), dose("2021-12-20", "moderna")}}},
		{"NegativePCR", evalCase{cat: "gym", region: "busan", at: "2022-01-21 18:00",
			holder: []fact{born("1985-03-14"), dose("2021-12-01", "pfizer"), pcr("2022-01-20 10:00")}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			pc := c.c.build(b)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Evaluate(pc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
