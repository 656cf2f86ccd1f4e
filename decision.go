package kipass

import "time"

// Outcome is the answer of the rules for one visitor at one facility at one time.
type Outcome string

// The outcomes of the rules (RULES.md, "Decisions").
const (
	PASS        Outcome = "PASS"         // required here and now, and met
	FAIL        Outcome = "FAIL"         // required here and now, and not met
	NotRequired Outcome = "NOT_REQUIRED" // not required for this facility at this time
)

// Bases on which a visitor meets the pass, as RULES.md names them.
const (
	BasisBooster             = "booster"
	BasisVaccinated          = "vaccinated"
	BasisRecovered           = "recovered"
	BasisNegativePCR         = "negative_pcr"
	BasisNegativeRAT         = "negative_rat"
	BasisMinor               = "minor"
	BasisMedicalExemption    = "medical_exemption"
	BasisRestaurantException = "restaurant_exception"
)

// Decision is the rules' answer with its basis: the basis it met on (PASS), the reason
// it failed (FAIL), or why the pass is not required (NOT_REQUIRED); until when that
// basis holds when it has an end; and whether fines are not yet applied (Grace).
type Decision struct {
	Outcome    Outcome    `json:"decision"`
	Basis      string     `json:"basis"`
	ValidUntil *time.Time `json:"valid_until"`
	Grace      bool       `json:"grace"`
	Reason     string     `json:"reason"`
}

// Facility kind and place, the two facts about a venue the rules need.
type Place struct {
	Category string `json:"category"`
	Region   string `json:"region"`
}
