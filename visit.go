package kipass

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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

	// ReceivedAt is when central committed the visit. Stores set it and return it on
	// reads; it is not part of the visit's content (see SameContent).
	ReceivedAt time.Time `json:"received_at,omitzero"`
}

// NewVisitID returns a fresh visit id made at time t: 32 lowercase hexadecimal
// digits, the first 12 the unix time in milliseconds and the other 20 random (80
// bits). Ids made later sort later, like UUIDv7, so that the ledger's unique index on
// visit ids takes new ids at its right edge instead of at a random page: on SQLite a
// random id costs about twice the CPU of the rest of the insert (docs/storage.md).
// Central accepts any id of the allowed form; this is what kipass scanners make.
func NewVisitID(t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

// SameContent reports whether v and o record the same visit: every field but
// ReceivedAt is equal, At to the microsecond (the precision stores keep) and whatever
// its time zone, and an empty byte field equal to a missing one. A replayed upload has
// the same content; anything else under the same id is a conflict.
func (v *Visit) SameContent(o *Visit) bool {
	return v.ID == o.ID &&
		v.FacilityID == o.FacilityID &&
		v.DeviceID == o.DeviceID &&
		v.At.UnixMicro() == o.At.UnixMicro() &&
		v.Method == o.Method &&
		v.IssuerKeyID == o.IssuerKeyID &&
		bytes.Equal(v.TokenID, o.TokenID) &&
		bytes.Equal(v.SRef, o.SRef) &&
		bytes.Equal(v.DTag, o.DTag) &&
		v.Outcome == o.Outcome &&
		v.Basis == o.Basis &&
		bytes.Equal(v.Contact, o.Contact) &&
		v.SafeNumber == o.SafeNumber
}

// ReasonVisitConflict is the Reason of a visit rejected because a visit with the same
// id and different content is already stored.
const ReasonVisitConflict = "conflict: different content under the same visit id"

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
	// different content; Reason is ReasonVisitConflict). It returns only after the
	// stored visits are durably committed. A store that cannot take more work at once
	// returns an ETOOMANY error and stores nothing; if ctx ends first it returns ctx's
	// error, and the batch may or may not have been stored (a replay tells).
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

// IngestStats is a snapshot of a visit store's group committer, for metrics and the
// status page. Counters run from the store's opening.
type IngestStats struct {
	QueueDepth    int `json:"queue_depth"`    // visits waiting for a commit
	QueueBatches  int `json:"queue_batches"`  // batches waiting for a commit
	QueueCapacity int `json:"queue_capacity"` // visits the queue takes before shedding
	Committing    int `json:"committing"`     // visits in the transaction being committed now

	Commits    int64 `json:"commits"`    // transactions committed
	Batches    int64 `json:"batches"`    // StoreVisits calls answered from committed transactions
	Visits     int64 `json:"visits"`     // visits answered from committed transactions
	Stored     int64 `json:"stored"`     // visits newly stored
	Duplicates int64 `json:"duplicates"` // replays of stored visits
	Conflicts  int64 `json:"conflicts"`  // visits rejected: same id, different content
	Shed       int64 `json:"shed"`       // batches refused with ETOOMANY because the queue was full
	Failed     int64 `json:"failed"`     // batches answered with an error

	// IndexLag is how many committed visits a store with a separate lookup index
	// (SQLite's visit index) has not indexed yet: lookups scan them instead.
	IndexLag int64 `json:"index_lag"`

	LastCommitLatency time.Duration `json:"last_commit_latency_ns"` // the latest commit, begin to durable
	MaxCommitLatency  time.Duration `json:"max_commit_latency_ns"`  // the slowest commit so far
}
