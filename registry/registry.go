// Package registry is the immunization registry of kipass, the role KDCA's registry
// played for the Korean vaccine pass: it keeps, for each person, the birth date, vaccine
// doses, COVID-19 tests, releases from isolation and exemptions, and tells issuers the
// holder facts a pass carries (Person.Facts).
//
// The package holds the person record and its validation, the HTTP server
// (`kipass serve registry`), the Go client issuers use, the bulk importer of CSV and
// JSON lines (`kipass registry import`) and the synthetic population generator
// (`kipass registry synth`). The SQLite store is in registry/sqlite. docs/registry.md
// describes the API, the file formats and the synthetic population.
package registry

import (
	"context"
	"time"

	"github.com/kipass/kipass"
)

// Limits of one person record. They bound the size of a record, a request body and the
// work of one update; a pass carries far less (see Person.Facts).
const (
	MaxPersonIDLen = 64  // bytes in a person id
	MaxDoses       = 10  // vaccine doses per person
	MaxTests       = 200 // test results per person
	MaxRecoveries  = 10  // releases from isolation per person
)

// EarliestEvent is the first day a dose, test, recovery or exemption may carry: no
// COVID-19 event predates 2020 (Korea's first case was confirmed on 2020-01-20).
var EarliestEvent = kipass.NewDate(2020, time.January, 1)

// EarliestBirth is the first birth date the registry accepts.
var EarliestBirth = kipass.NewDate(1900, time.January, 1)

// TestLookback is how far back Person.Facts looks for test results: no rule accepts a
// test for longer than 48 hours, and a week leaves room for rules that might.
const TestLookback = 7 * 24 * time.Hour

// Person is one person's registry record: everything the rules could need, and nothing
// that names the person. Doses, tests and recoveries are kept sorted by time.
type Person struct {
	PersonID   string        `json:"person_id"`
	BirthDate  kipass.Date   `json:"birth_date"`
	Doses      []kipass.Dose `json:"doses,omitempty"`
	Tests      []kipass.Test `json:"tests,omitempty"`
	Recoveries []kipass.Date `json:"recoveries,omitempty"` // days of release from isolation
	Exemptions []Exemption   `json:"exemptions,omitempty"`
	UpdatedAt  time.Time     `json:"updated_at,omitzero"` // set by the store on each write
}

// Exemption is a registered exemption (예외확인서): its kind (kipass.Exemptions) and,
// when known, the day from which it holds.
type Exemption struct {
	Kind string       `json:"kind"`
	From *kipass.Date `json:"from,omitempty"`
}

// Record is what an issuer gets for one person: the holder facts a pass carries, as of
// the registry's clock, and when the record last changed.
type Record struct {
	PersonID  string        `json:"person_id"`
	Holder    kipass.Holder `json:"holder"`
	UpdatedAt time.Time     `json:"updated_at"`
	AsOf      time.Time     `json:"as_of"` // the registry time the facts were computed for
}

// Store keeps person records. registry/sqlite implements it; the server and the
// importer use nothing else of the storage.
type Store interface {
	// Person returns one record, or an ENOTFOUND error.
	Person(ctx context.Context, id string) (*Person, error)
	// PutPerson creates or replaces a validated record and sets its UpdatedAt; created
	// says which.
	PutPerson(ctx context.Context, p *Person) (created bool, err error)
	// UpdatePerson applies fn to the current record inside one write transaction and
	// stores the result when fn reports a change. It returns ENOTFOUND for an unknown
	// id and fn's error unchanged.
	UpdatePerson(ctx context.Context, id string, fn func(p *Person) (changed bool, err error)) (*Person, error)
	PersonWriter
	// Ready reports whether the store is reachable and its schema current.
	Ready(ctx context.Context) error
}

// PersonWriter stores validated records in bulk: what the importer needs.
type PersonWriter interface {
	// PutPersons creates or replaces the records in one transaction: all or none.
	PutPersons(ctx context.Context, ps []*Person) error
}
