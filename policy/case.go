package policy

import (
	"strconv"
	"time"

	"github.com/kipass/kipass"
)

// caseDoc is a case as `kipass policy eval` reads it. Pointers tell a missing value from
// a zero one.
type caseDoc struct {
	At        *time.Time   `json:"at"`
	Facility  *facilityDoc `json:"facility"`
	PartySize *int         `json:"party_size"`
	Holder    *holderDoc   `json:"holder"`
}

type facilityDoc struct {
	Category *string `json:"category"`
	Region   *string `json:"region"`
}

type holderDoc struct {
	BirthDate   *kipass.Date `json:"birth_date"`
	Doses       []doseDoc    `json:"doses"`
	Tests       []testResDoc `json:"tests"`
	RecoveredOn *kipass.Date `json:"recovered_on"`
	Exemption   string       `json:"exemption"`
}

type doseDoc struct {
	Date    *kipass.Date `json:"date"`
	Product *string      `json:"product"`
}

type testResDoc struct {
	Kind   *string    `json:"kind"`
	Result *string    `json:"result"`
	At     *time.Time `json:"at"`
}

// ParseCase reads one case in the JSON form of `kipass policy eval`:
//
//	{"at":"2022-01-12T18:00:00+09:00","facility":{"category":"gym","region":"busan"},
//	 "party_size":1,"holder":{"birth_date":"1990-01-01","doses":[{"date":"2021-06-20",
//	 "product":"pfizer"}],"tests":[{"kind":"pcr","result":"negative",
//	 "at":"2022-01-20T10:00:00+09:00"}],"recovered_on":"2021-12-01","exemption":"medical"}}
//
// The holder and each of its fields are optional, and party_size defaults to 1. Unknown
// or duplicate fields, malformed dates and missing required values are refused with a
// *kipass.Error that names the field. Identifiers (category, product...) are checked by
// Evaluate, against the rules in use.
func ParseCase(data []byte) (Case, error) {
	var d caseDoc
	if err := decodeStrict(data, &d); err != nil {
		return Case{}, err
	}
	var c Case
	if d.At == nil {
		return Case{}, kipass.FieldErrorf("at", "missing")
	}
	c.At = *d.At
	if d.Facility == nil {
		return Case{}, kipass.FieldErrorf("facility", "missing")
	}
	if d.Facility.Category == nil {
		return Case{}, kipass.FieldErrorf("facility.category", "missing")
	}
	if d.Facility.Region == nil {
		return Case{}, kipass.FieldErrorf("facility.region", "missing")
	}
	c.Place = kipass.Place{Category: *d.Facility.Category, Region: *d.Facility.Region}
	c.PartySize = 1
	if d.PartySize != nil {
		c.PartySize = *d.PartySize
	}
	if h := d.Holder; h != nil {
		c.Holder.BirthDate = h.BirthDate
		c.Holder.RecoveredOn = h.RecoveredOn
		c.Holder.Exemption = h.Exemption
		for i, dd := range h.Doses {
			p := "holder.doses[" + strconv.Itoa(i) + "]."
			if dd.Date == nil {
				return Case{}, kipass.FieldErrorf(p+"date", "missing")
			}
			if dd.Product == nil {
				return Case{}, kipass.FieldErrorf(p+"product", "missing")
			}
			c.Holder.Doses = append(c.Holder.Doses, kipass.Dose{Date: *dd.Date, Product: *dd.Product})
		}
		for i, td := range h.Tests {
			p := "holder.tests[" + strconv.Itoa(i) + "]."
			switch {
			case td.Kind == nil:
				return Case{}, kipass.FieldErrorf(p+"kind", "missing")
			case td.Result == nil:
				return Case{}, kipass.FieldErrorf(p+"result", "missing")
			case td.At == nil:
				return Case{}, kipass.FieldErrorf(p+"at", "missing")
			}
			c.Holder.Tests = append(c.Holder.Tests, kipass.Test{Kind: *td.Kind, Result: *td.Result, At: *td.At})
		}
	}
	return c, nil
}
