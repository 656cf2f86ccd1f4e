package policy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/policy"
)

// issueCase is the example case of issue 2, item 5.
const issueCase = `{"at":"2022-01-12T18:00:00+09:00","facility":{"category":"gym","region":"busan"},"party_size":1,"holder":{"birth_date":"1990-01-01","doses":[{"date":"2021-06-20","product":"pfizer"}],"tests":[{"kind":"pcr","result":"negative","at":"2022-01-20T10:00:00+09:00"}],"recovered_on":"2021-12-01","exemption":"medical"}}`

func TestPolicyParseCase(t *testing.T) {
	c, err := policy.ParseCase([]byte(issueCase))
	if err != nil {
		t.Fatal(err)
	}
	if !c.At.Equal(time.Date(2022, 1, 12, 18, 0, 0, 0, kipass.KST)) || c.Place != (kipass.Place{Category: "gym", Region: "busan"}) || c.PartySize != 1 {
		t.Errorf("case = %+v", c)
	}
	h := c.Holder
	if h.BirthDate == nil || h.BirthDate.String() != "1990-01-01" || h.RecoveredOn == nil || h.RecoveredOn.String() != "2021-12-01" ||
		len(h.Doses) != 1 || h.Doses[0] != (kipass.Dose{Date: kipass.MustParseDate("2021-06-20"), Product: "pfizer"}) ||
		len(h.Tests) != 1 || h.Tests[0].Kind != "pcr" || h.Tests[0].Result != "negative" ||
		!h.Tests[0].At.Equal(time.Date(2022, 1, 20, 10, 0, 0, 0, kipass.KST)) || h.Exemption != "medical" {
		t.Errorf("holder = %+v", h)
	}
	// The example's PCR lies after its check time, so the rules refuse it.
	if _, err := policy.Default().Evaluate(c); kipass.ErrorField(err) != "holder.tests[0].at" {
		t.Errorf("Evaluate(example) = %v, want an error naming holder.tests[0].at", err)
	}

	c, err = policy.ParseCase([]byte(`{"at":"2022-01-12T09:00:00Z","facility":{"category":"restaurant","region":"seoul"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.PartySize != 1 || c.Holder.BirthDate != nil || c.Holder.Doses != nil || c.Holder.Tests != nil {
		t.Errorf("defaults: %+v", c)
	}
}

func TestPolicyParseCaseErrors(t *testing.T) {
	const head = `"at":"2022-01-12T18:00:00+09:00","facility":{"category":"gym","region":"busan"}`
	for _, c := range []struct {
		name, json, want string
	}{
		{"UnknownTopField", `{` + head + `,"venue":"x"}`, "venue: unknown field"},
		{"UnknownHolderField", `{` + head + `,"holder":{"vaccines":[]}}`, "holder.vaccines: unknown field"},
		{"UnknownDoseField", `{` + head + `,"holder":{"doses":[{"date":"2021-06-20","product":"pfizer","lot":"A1"}]}}`, "holder.doses[0].lot: unknown field"},
		{"UnknownFacilityField", `{"at":"2022-01-12T18:00:00+09:00","facility":{"category":"gym","region":"busan","size":3}}`, "facility.size: unknown field"},
		{"MissingAt", `{"facility":{"category":"gym","region":"busan"}}`, "at: missing"},
		{"NullAt", `{"at":null,"facility":{"category":"gym","region":"busan"}}`, "at: missing"},
		{"AtWithoutOffset", `{"at":"2022-01-12T18:00:00","facility":{"category":"gym","region":"busan"}}`, `at: "2022-01-12T18:00:00" is not a time of the form 2022-01-12T18:00:00+09:00 (RFC 3339, with its offset)`},
		{"AtIsADate", `{"at":"2022-01-12","facility":{"category":"gym","region":"busan"}}`, `at: "2022-01-12" is not a time of the form 2022-01-12T18:00:00+09:00 (RFC 3339, with its offset)`},
		{"MissingFacility", `{"at":"2022-01-12T18:00:00+09:00"}`, "facility: missing"},
		{"MissingCategory", `{"at":"2022-01-12T18:00:00+09:00","facility":{"region":"busan"}}`, "facility.category: missing"},
		{"MissingRegion", `{"at":"2022-01-12T18:00:00+09:00","facility":{"category":"gym"}}`, "facility.region: missing"},
		{"PartySizeText", `{` + head + `,"party_size":"2"}`, "party_size: must be an integer"},
		{"BadBirthDate", `{` + head + `,"holder":{"birth_date":"1990-02-30"}}`, `holder.birth_date: "1990-02-30" is not a date of the form YYYY-MM-DD`},
		{"BadDoseDate", `{` + head + `,"holder":{"doses":[{"date":"2021-06-20","product":"pfizer"},{"date":"21-07-10","product":"pfizer"}]}}`, `holder.doses[1].date: "21-07-10" is not a date of the form YYYY-MM-DD`},
		{"MissingDoseProduct", `{` + head + `,"holder":{"doses":[{"date":"2021-06-20"}]}}`, "holder.doses[0].product: missing"},
		{"MissingDoseDate", `{` + head + `,"holder":{"doses":[{"product":"pfizer"}]}}`, "holder.doses[0].date: missing"},
		{"MissingTestKind", `{` + head + `,"holder":{"tests":[{"result":"negative","at":"2022-01-12T08:00:00+09:00"}]}}`, "holder.tests[0].kind: missing"},
		{"MissingTestResult", `{` + head + `,"holder":{"tests":[{"kind":"pcr","at":"2022-01-12T08:00:00+09:00"}]}}`, "holder.tests[0].result: missing"},
		{"MissingTestTime", `{` + head + `,"holder":{"tests":[{"kind":"pcr","result":"negative"}]}}`, "holder.tests[0].at: missing"},
		{"BadTestTime", `{` + head + `,"holder":{"tests":[{"kind":"pcr","result":"negative","at":"yesterday"}]}}`, `holder.tests[0].at: "yesterday" is not a time of the form 2022-01-12T18:00:00+09:00 (RFC 3339, with its offset)`},
		{"DosesNotArray", `{` + head + `,"holder":{"doses":{"date":"2021-06-20"}}}`, "holder.doses: must be an array"},
		{"ExemptionNotString", `{` + head + `,"holder":{"exemption":true}}`, "holder.exemption: must be a string"},
		{"DuplicateField", `{` + head + `,"party_size":1,"party_size":2}`, "party_size: duplicate field"},
		{"NotAnObject", `[1,2]`, "must be an object"},
		{"Empty", ``, "invalid JSON: unexpected end of input"},
		{"TwoCases", `{` + head + `} {` + head + `}`, "invalid JSON at line 1, column 83: invalid character '{' after top-level value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := policy.ParseCase([]byte(c.json))
			if err == nil {
				t.Fatal("ParseCase accepted the case")
			}
			if got := kipass.ErrorMessage(err); got != c.want {
				t.Errorf("error = %q\n   want %q", got, c.want)
			}
			if strings.Contains(kipass.ErrorMessage(err), "\n") {
				t.Error("the message is more than one line")
			}
		})
	}
}

func TestPolicyBasisText(t *testing.T) {
	bases := []string{
		kipass.BasisBooster, kipass.BasisVaccinated, kipass.BasisRecovered, kipass.BasisNegativePCR,
		kipass.BasisNegativeRAT, kipass.BasisMinor, kipass.BasisMedicalExemption, kipass.BasisRestaurantException,
		policy.BasisNotVaccinated, policy.BasisSeriesIncomplete, policy.BasisTooEarly, policy.BasisExpired,
		policy.BasisRecoveryExpired, policy.BasisNoValidTest,
		policy.BasisCategoryNotCovered, policy.BasisNotYetInForce, policy.BasisSuspended,
	}
	seen := map[string]string{}
	for _, b := range bases {
		ko, en := policy.BasisText(b, "ko"), policy.BasisText(b, "en")
		if ko == b || en == "" || ko == en || !hasHangul(ko) {
			t.Errorf("BasisText(%q) = %q / %q", b, ko, en)
		}
		if other, dup := seen[ko]; dup {
			t.Errorf("%q and %q share the Korean text %q", b, other, ko)
		}
		seen[ko] = b
	}
	for _, c := range []struct{ basis, lang, want string }{
		{"booster", "ko", "추가접종(부스터)"},
		{"booster", "", "booster dose"},
		{"negative_lamp", "en", "negative lamp test"},
		{"negative_lamp", "ko", "lamp 음성확인"},
		{"religious_exemption", "en", "religious exemption"},
		{"something_new", "ko", "something_new"},
	} {
		if got := policy.BasisText(c.basis, c.lang); got != c.want {
			t.Errorf("BasisText(%q, %q) = %q, want %q", c.basis, c.lang, got, c.want)
		}
	}
}

func hasHangul(s string) bool {
	for _, r := range s {
		if r >= 0xAC00 && r <= 0xD7A3 {
			return true
		}
	}
	return false
}
