package kipass

import "time"

// Vaccine products, as the rules and the pass name them.
const (
	ProductPfizer      = "pfizer"
	ProductModerna     = "moderna"
	ProductAstraZeneca = "astrazeneca"
	ProductNovavax     = "novavax"
	ProductJanssen     = "janssen"
)

// Products lists the known vaccine products in their pass code order: a product's
// code in a pass is its index here plus one. Append only; never reorder.
var Products = []string{ProductPfizer, ProductModerna, ProductAstraZeneca, ProductNovavax, ProductJanssen}

// Test kinds and results.
const (
	TestPCR  = "pcr"  // laboratory PCR
	TestRAT  = "rat"  // supervised rapid antigen test (screening or respiratory clinic)
	TestSelf = "self" // home self-test, never accepted

	ResultNegative = "negative"
	ResultPositive = "positive"
)

// TestKinds lists test kinds in pass code order (index plus one). Append only.
var TestKinds = []string{TestPCR, TestRAT, TestSelf}

// TestResults lists test results in pass code order (index plus one). Append only.
var TestResults = []string{ResultNegative, ResultPositive}

// ExemptionMedical is a registered medical exemption (예외확인서).
const ExemptionMedical = "medical"

// Exemptions lists exemption kinds in pass code order (index plus one). Append only.
var Exemptions = []string{ExemptionMedical}

// Holder is the set of facts about a visitor that the pass rules need, and nothing more.
// It travels inside a signed pass; it is never stored in a visit record.
type Holder struct {
	BirthDate   *Date  `json:"birth_date,omitempty"`
	Doses       []Dose `json:"doses,omitempty"`
	Tests       []Test `json:"tests,omitempty"`
	RecoveredOn *Date  `json:"recovered_on,omitempty"` // day of release from isolation
	Exemption   string `json:"exemption,omitempty"`
}

// Dose is one vaccine dose: the day it was given and the product.
type Dose struct {
	Date    Date   `json:"date"`
	Product string `json:"product"`
}

// Test is one COVID-19 test result and the time it was notified.
type Test struct {
	Kind   string    `json:"kind"`
	Result string    `json:"result"`
	At     time.Time `json:"at"`
}

// IndexOf returns the position of s in list, or -1.
func IndexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// Validate checks that every fact uses a known identifier and that no test lies after
// now (a zero now skips that check). The error names the field at fault.
func (h *Holder) Validate(now time.Time) error {
	for i, d := range h.Doses {
		if IndexOf(Products, d.Product) < 0 {
			return FieldErrorf(fieldIndex("holder.doses", i, "product"), "unknown vaccine product %q", d.Product)
		}
	}
	for i, t := range h.Tests {
		if IndexOf(TestKinds, t.Kind) < 0 {
			return FieldErrorf(fieldIndex("holder.tests", i, "kind"), "unknown test kind %q", t.Kind)
		}
		if IndexOf(TestResults, t.Result) < 0 {
			return FieldErrorf(fieldIndex("holder.tests", i, "result"), "unknown test result %q", t.Result)
		}
		if t.At.IsZero() {
			return FieldErrorf(fieldIndex("holder.tests", i, "at"), "missing time")
		}
		if !now.IsZero() && t.At.After(now) {
			return FieldErrorf(fieldIndex("holder.tests", i, "at"), "test time is in the future")
		}
	}
	if h.Exemption != "" && IndexOf(Exemptions, h.Exemption) < 0 {
		return FieldErrorf("holder.exemption", "unknown exemption %q", h.Exemption)
	}
	return nil
}

func fieldIndex(prefix string, i int, name string) string {
	return prefix + "[" + itoa(i) + "]." + name
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	neg := i < 0
	if neg {
		i = -i
	}
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	if neg {
		n--
		b[n] = '-'
	}
	return string(b[n:])
}
