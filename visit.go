package kipass

import (
	"context"
	"time"
)

// Visit methods: how a visit was recorded.
const (
	MethodQR         = "qr"          // a pass scanned at the venue
	MethodPhone      = "phone"       // 안심콜 phone check-in through the telco gateway
	MethodSafeNumber = "safe_number" // handwritten log with a personal safe number (개인안심번호)
	MethodManual     = "manual"      // handwritten log with a phone number sealed at the scanner
)

// Methods lists the visit methods.
var Methods = []string{MethodQR, MethodPhone, MethodSafeNumber, MethodManual}

// Retention is how long visit records and the data that could identify a visitor from
// them are kept (DESIGN.md, principle 6).
const Retention = 28 * 24 * time.Hour

// Visit is one entry in the visit ledger. It never holds the holder's facts, name or
// phone number: only what a trace needs, sealed where it identifies someone.
type Visit struct {
	ID          string    `json:"id"` // made at the scanner; the idempotency key
	FacilityID  string    `json:"facility_id"`
	DeviceID    string    `json:"device_id,omitempty"`
	At          time.Time `json:"at"`
	Method      string    `json:"method"`
	IssuerKeyID string    `json:"issuer_key_id,omitempty"` // qr
	TokenID     []byte    `json:"token_id,omitempty"`      // qr: the pass's random token id
	SRef        []byte    `json:"sref,omitempty"`          // qr: sealed subject reference (issuer-only)
	DTag        []byte    `json:"dtag,omitempty"`          // qr: day tag (issuer-keyed hash of subject and day)
	Outcome     Outcome   `json:"decision,omitempty"`
	Basis       string    `json:"basis,omitempty"`
	Contact     []byte    `json:"contact,omitempty"`     // phone, manual: phone number sealed (HPKE) to the authority
	SafeNumber  string    `json:"safe_number,omitempty"` // safe_number: the personal safe number
}

// Per-visit ingest statuses.
const (
	VisitStored    = "stored"
	VisitDuplicate = "duplicate"
	VisitRejected  = "rejected"
)

// VisitStatus is the ingest answer for one visit of a batch.
type VisitStatus struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// VisitService is the durable visit ledger.
type VisitService interface {
	// StoreVisits stores visits that have already been validated and answers, in the
	// same order, stored, duplicate (same id and same content) or rejected (same id,
	// different content). It returns only after the stored visits are durably committed.
	StoreVisits(ctx context.Context, visits []*Visit) ([]VisitStatus, error)

	// FindVisitsByDayTags returns the visits carrying any of the day tags, at or after
	// from and before to.
	FindVisitsByDayTags(ctx context.Context, tags [][]byte, from, to time.Time) ([]*Visit, error)

	// FindVisitsAtFacility returns the visits of a facility at or after from and before to.
	FindVisitsAtFacility(ctx context.Context, facilityID string, from, to time.Time) ([]*Visit, error)

	// PurgeVisits destroys every visit recorded before cutoff and reports how many.
	PurgeVisits(ctx context.Context, cutoff time.Time) (int64, error)

	// FindSharedTokens returns token ids seen at more than one facility since from
	// (a shared screenshot), for the operator.
	FindSharedTokens(ctx context.Context, from time.Time) ([]SharedToken, error)
}

// SharedToken is a pass token id that was scanned at several facilities.
type SharedToken struct {
	TokenID     []byte    `json:"token_id"`
	FacilityIDs []string  `json:"facility_ids"`
	FirstAt     time.Time `json:"first_at"`
	LastAt      time.Time `json:"last_at"`
}
