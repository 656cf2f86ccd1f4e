// Package storetest is the conformance suite of kipass's central storage: one set of
// tests that every backend (sqlite, postgres) passes, so that the two behave alike.
// A backend's own test calls Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kipass/kipass"
)

// Store is what the suite tests: the four central services plus the operational
// methods every backend's DB has.
type Store interface {
	kipass.VisitService
	kipass.FacilityService
	kipass.AuditService
	kipass.NoticeService

	// IngestStats returns the group committer's statistics.
	IngestStats() kipass.IngestStats
	// Ready reports whether the store is reachable with current migrations.
	Ready(ctx context.Context) error
	// Close drains visit ingest and closes the store; a second call is harmless.
	Close() error
}

// Tamperer is implemented by the stores a backend's test gives the suite: it changes
// the audit log behind the store's back (raw SQL, past any append-only guard), as an
// attacker with database access would.
type Tamperer interface {
	// TamperAudit rewrites the reason of the entry seq, leaving its hashes.
	TamperAudit(ctx context.Context, seq int64, reason string) error
	// DeleteAudit removes the entry seq.
	DeleteAudit(ctx context.Context, seq int64) error
}

// WriteBlocker is implemented by the stores a backend's test gives the suite: it
// holds the lock that visit ingest needs from outside the store, so that the suite can
// fill the ingest queue deterministically. The store must be opened with a busy or
// lock timeout longer than a few seconds.
type WriteBlocker interface {
	// BlockWrites takes the lock and returns the function that releases it.
	BlockWrites(t *testing.T) (release func())
}

// Run runs the conformance suite. open returns a new, empty store for each subtest
// (its cleanup is open's business) that also implements Tamperer and WriteBlocker.
// The suite expects a queue capacity (IngestStats().QueueCapacity) of at least 200
// visits and at most 5000.
func Run(t *testing.T, open func(t *testing.T) Store) {
	t.Run("Ready", func(t *testing.T) {
		s := open(t)
		if err := s.Ready(context.Background()); err != nil {
			t.Fatalf("Ready: %v", err)
		}
	})
	t.Run("Visits", func(t *testing.T) { testVisits(t, open) })
	t.Run("Ingest", func(t *testing.T) { testIngest(t, open) })
	t.Run("Retention", func(t *testing.T) { testRetention(t, open) })
	t.Run("Facilities", func(t *testing.T) { testFacilities(t, open) })
	t.Run("Devices", func(t *testing.T) { testDevices(t, open) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("Notices", func(t *testing.T) { testNotices(t, open) })
}

// base is the suite's reference time: the morning of the 2022-01-06 outage, KST.
var base = time.Date(2022, 1, 6, 10, 0, 0, 0, kipass.KST)

// randBytes returns n random bytes.
func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// randID returns a random visit or record id.
func randID(prefix string) string {
	return fmt.Sprintf("%s-%x", prefix, randBytes(12))
}

// newVisit returns a QR visit at facility at time at with fresh random fields.
func newVisit(facility string, at time.Time) *kipass.Visit {
	return &kipass.Visit{
		ID:          randID("v"),
		FacilityID:  facility,
		DeviceID:    "dev-" + facility,
		At:          at,
		Method:      kipass.MethodQR,
		IssuerKeyID: "naver-2022-01",
		TokenID:     randBytes(16),
		SRef:        randBytes(40),
		DTag:        randBytes(16),
		Outcome:     kipass.PASS,
		Basis:       kipass.BasisBooster,
	}
}

// newVisits returns n visits at facility, one second apart from at.
func newVisits(facility string, at time.Time, n int) []*kipass.Visit {
	vs := make([]*kipass.Visit, n)
	for i := range vs {
		vs[i] = newVisit(facility, at.Add(time.Duration(i)*time.Second))
	}
	return vs
}

// clone returns a copy of v.
func clone(v *kipass.Visit) *kipass.Visit {
	c := *v
	return &c
}

// mustStore stores visits and fails unless every status is want.
func mustStore(tb testing.TB, s Store, visits []*kipass.Visit, want string) {
	tb.Helper()
	statuses, err := s.StoreVisits(context.Background(), visits)
	if err != nil {
		tb.Fatalf("StoreVisits: %v", err)
	}
	if len(statuses) != len(visits) {
		tb.Fatalf("StoreVisits: %d statuses for %d visits", len(statuses), len(visits))
	}
	for i, st := range statuses {
		if st.ID != visits[i].ID || st.Status != want {
			tb.Fatalf("StoreVisits: visit %d: got %+v, want id %s status %s", i, st, visits[i].ID, want)
		}
	}
}

// mustCode fails unless err carries the domain error code want.
func mustCode(tb testing.TB, err error, want string) {
	tb.Helper()
	if got := kipass.ErrorCode(err); got != want {
		tb.Fatalf("error code: got %q (%v), want %q", got, err, want)
	}
}

// atFacility returns every visit stored at the facility.
func atFacility(tb testing.TB, s Store, facility string) []*kipass.Visit {
	tb.Helper()
	vs, err := s.FindVisitsAtFacility(context.Background(), facility, time.Unix(0, 0), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		tb.Fatalf("FindVisitsAtFacility: %v", err)
	}
	return vs
}

// sameVisits fails unless got holds visits with the content of want, in order. An
// empty answer must be an empty slice, not nil, so that it encodes as [] in JSON.
func sameVisits(tb testing.TB, got, want []*kipass.Visit) {
	tb.Helper()
	if got == nil {
		tb.Fatalf("got a nil slice, want an empty one")
	}
	if len(got) != len(want) {
		tb.Fatalf("got %d visits, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].SameContent(want[i]) {
			tb.Fatalf("visit %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// eventually polls cond every millisecond for up to 10 s.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// harness returns the test hooks of s, failing if the backend lacks them: the suite
// never skips.
func harness(tb testing.TB, s Store) (Tamperer, WriteBlocker) {
	tb.Helper()
	tam, ok1 := s.(Tamperer)
	wb, ok2 := s.(WriteBlocker)
	if !ok1 || !ok2 {
		tb.Fatalf("storetest: the store %T must implement Tamperer and WriteBlocker", s)
	}
	return tam, wb
}

// isTooMany reports whether err is the queue-full answer.
func isTooMany(err error) bool {
	var e *kipass.Error
	return errors.As(err, &e) && e.Code == kipass.ETOOMANY
}
