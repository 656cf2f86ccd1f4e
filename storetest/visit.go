package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/kipass/kipass"
)

func testVisits(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("StoreAndFind", func(t *testing.T) {
		s := open(t)
		qr := newVisit("fac-a", base)
		phone := &kipass.Visit{ID: randID("v"), FacilityID: "fac-a", At: base.Add(time.Minute),
			Method: kipass.MethodPhone, Outcome: kipass.NotRequired, Contact: randBytes(80)}
		safe := &kipass.Visit{ID: randID("v"), FacilityID: "fac-a", DeviceID: "dev-fac-a",
			At: base.Add(2*time.Minute + 123456789*time.Nanosecond), Method: kipass.MethodSafeNumber, SafeNumber: "1234가나"}
		before := time.Now().Add(-time.Second)
		mustStore(t, s, []*kipass.Visit{qr, phone, safe}, kipass.VisitStored)

		got := atFacility(t, s, "fac-a")
		sameVisits(t, got, []*kipass.Visit{qr, phone, safe})
		for _, v := range got {
			if v.ReceivedAt.Before(before) || v.ReceivedAt.After(time.Now().Add(time.Second)) {
				t.Errorf("visit %s: ReceivedAt %v is not the time it was stored", v.ID, v.ReceivedAt)
			}
		}
		if got[2].At.Nanosecond()%1000 != 0 || got[2].At.UnixMicro() != safe.At.UnixMicro() {
			t.Errorf("At %v: want %v to the microsecond", got[2].At, safe.At)
		}
		if got[1].TokenID != nil || got[1].DTag != nil || !bytes.Equal(got[1].Contact, phone.Contact) {
			t.Errorf("phone visit read back as %+v", got[1])
		}
	})

	t.Run("EmptyBatch", func(t *testing.T) {
		s := open(t)
		statuses, err := s.StoreVisits(ctx, nil)
		if err != nil || len(statuses) != 0 {
			t.Fatalf("StoreVisits(nil) = %v, %v; want no statuses and no error", statuses, err)
		}
	})

	t.Run("IdempotentReplay", func(t *testing.T) {
		s := open(t)
		batch := newVisits("fac-a", base, 50)
		mustStore(t, s, batch, kipass.VisitStored)
		for range 3 {
			replay := make([]*kipass.Visit, len(batch))
			for i, v := range batch {
				replay[i] = clone(v)
				replay[i].At = v.At.In(time.UTC) // the same instant in another zone is the same content
			}
			mustStore(t, s, replay, kipass.VisitDuplicate)
		}
		sameVisits(t, atFacility(t, s, "fac-a"), batch)
	})

	t.Run("ConflictAcrossBatches", func(t *testing.T) {
		tests := []struct {
			name   string
			change func(v *kipass.Visit)
			status string
		}{
			{"SameContent", func(v *kipass.Visit) {}, kipass.VisitDuplicate},
			{"EmptyVersusMissingBytes", func(v *kipass.Visit) { v.Contact = []byte{} }, kipass.VisitDuplicate},
			{"SubMicrosecond", func(v *kipass.Visit) { v.At = v.At.Add(300 * time.Nanosecond) }, kipass.VisitDuplicate},
			{"ReceivedAtIgnored", func(v *kipass.Visit) { v.ReceivedAt = base.Add(time.Hour) }, kipass.VisitDuplicate},
			{"OtherFacility", func(v *kipass.Visit) { v.FacilityID = "fac-b" }, kipass.VisitRejected},
			{"OtherDevice", func(v *kipass.Visit) { v.DeviceID = "dev-x" }, kipass.VisitRejected},
			{"OtherSecond", func(v *kipass.Visit) { v.At = v.At.Add(time.Second) }, kipass.VisitRejected},
			{"OtherDay", func(v *kipass.Visit) { v.At = v.At.Add(-3 * 24 * time.Hour) }, kipass.VisitRejected},
			{"OtherMethod", func(v *kipass.Visit) { v.Method = kipass.MethodManual }, kipass.VisitRejected},
			{"OtherIssuerKey", func(v *kipass.Visit) { v.IssuerKeyID = "kakao-1" }, kipass.VisitRejected},
			{"OtherToken", func(v *kipass.Visit) { v.TokenID = randBytes(16) }, kipass.VisitRejected},
			{"OtherSRef", func(v *kipass.Visit) { v.SRef = randBytes(40) }, kipass.VisitRejected},
			{"OtherDayTag", func(v *kipass.Visit) { v.DTag = randBytes(16) }, kipass.VisitRejected},
			{"OtherDecision", func(v *kipass.Visit) { v.Outcome = kipass.FAIL }, kipass.VisitRejected},
			{"OtherBasis", func(v *kipass.Visit) { v.Basis = kipass.BasisNegativePCR }, kipass.VisitRejected},
			{"AddedContact", func(v *kipass.Visit) { v.Contact = randBytes(8) }, kipass.VisitRejected},
			{"OtherSafeNumber", func(v *kipass.Visit) { v.SafeNumber = "9999다라" }, kipass.VisitRejected},
		}
		s := open(t)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				orig := newVisit("fac-a", base.Add(time.Hour))
				mustStore(t, s, []*kipass.Visit{orig}, kipass.VisitStored)
				changed := clone(orig)
				tt.change(changed)
				statuses, err := s.StoreVisits(ctx, []*kipass.Visit{changed})
				if err != nil {
					t.Fatal(err)
				}
				want := kipass.VisitStatus{ID: orig.ID, Status: tt.status}
				if tt.status == kipass.VisitRejected {
					want.Reason = kipass.ReasonVisitConflict
				}
				if statuses[0] != want {
					t.Fatalf("got %+v, want %+v", statuses[0], want)
				}
				// The stored visit is the first one, whatever came after.
				for _, fac := range []string{"fac-a", "fac-b"} {
					for _, v := range atFacility(t, s, fac) {
						if v.ID == orig.ID && !v.SameContent(orig) {
							t.Fatalf("stored visit changed to %+v", v)
						}
					}
				}
			})
		}
		if n := len(atFacility(t, s, "fac-a")); n != len(tests) {
			t.Fatalf("%d visits stored at fac-a, want %d", n, len(tests))
		}
		if n := len(atFacility(t, s, "fac-b")); n != 0 {
			t.Fatalf("%d visits stored at fac-b, want 0", n)
		}
	})

	t.Run("DuplicateAndConflictInOneBatch", func(t *testing.T) {
		s := open(t)
		old := newVisit("fac-a", base)
		mustStore(t, s, []*kipass.Visit{old}, kipass.VisitStored)

		a := newVisit("fac-a", base.Add(time.Minute))
		aOther := clone(a)
		aOther.Basis = kipass.BasisRecovered
		oldOther := clone(old)
		oldOther.At = old.At.Add(time.Hour)
		batch := []*kipass.Visit{a, clone(a), aOther, clone(old), oldOther, clone(a)}
		statuses, err := s.StoreVisits(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{kipass.VisitStored, kipass.VisitDuplicate, kipass.VisitRejected,
			kipass.VisitDuplicate, kipass.VisitRejected, kipass.VisitDuplicate}
		for i, st := range statuses {
			if st.ID != batch[i].ID || st.Status != want[i] {
				t.Errorf("visit %d: got %+v, want %s", i, st, want[i])
			}
			if (st.Status == kipass.VisitRejected) != (st.Reason == kipass.ReasonVisitConflict) {
				t.Errorf("visit %d: reason %q with status %s", i, st.Reason, st.Status)
			}
		}
		sameVisits(t, atFacility(t, s, "fac-a"), []*kipass.Visit{old, a})
	})

	t.Run("FindByDayTags", func(t *testing.T) {
		s := open(t)
		tag1, tag2, other := randBytes(16), randBytes(16), randBytes(16)
		v := func(tag []byte, fac string, at time.Time) *kipass.Visit {
			x := newVisit(fac, at)
			x.DTag = tag
			return x
		}
		vs := []*kipass.Visit{
			v(tag1, "fac-a", base),
			v(tag1, "fac-b", base.Add(2*time.Hour)),
			v(tag2, "fac-c", base.Add(24*time.Hour)),
			v(other, "fac-a", base.Add(time.Minute)),
			{ID: randID("v"), FacilityID: "fac-a", At: base, Method: kipass.MethodPhone, Contact: randBytes(8)},
		}
		mustStore(t, s, vs, kipass.VisitStored)
		tests := []struct {
			name     string
			tags     [][]byte
			from, to time.Time
			want     []*kipass.Visit
		}{
			{"OneTag", [][]byte{tag1}, base.Add(-time.Hour), base.Add(48 * time.Hour), vs[0:2]},
			{"TwoTags", [][]byte{tag2, tag1}, base.Add(-time.Hour), base.Add(48 * time.Hour), vs[0:3]},
			{"FromInclusive", [][]byte{tag1}, base, base.Add(48 * time.Hour), vs[0:2]},
			{"ToExclusive", [][]byte{tag1}, base.Add(-time.Hour), base.Add(2 * time.Hour), vs[0:1]},
			{"UnknownTag", [][]byte{randBytes(16)}, base.Add(-time.Hour), base.Add(48 * time.Hour), nil},
			{"NoTags", nil, base.Add(-time.Hour), base.Add(48 * time.Hour), nil},
			{"EmptyWindow", [][]byte{tag1}, base.Add(time.Minute), base.Add(time.Hour), nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.FindVisitsByDayTags(ctx, tt.tags, tt.from, tt.to)
				if err != nil {
					t.Fatal(err)
				}
				sameVisits(t, got, tt.want)
			})
		}
	})

	t.Run("FindAtFacility", func(t *testing.T) {
		s := open(t)
		a := newVisits("fac-a", base.Add(-30*time.Minute), 3) // 09:30:00, :01, :02 KST
		late := newVisit("fac-a", base.Add(23*time.Hour))     // the next KST day
		b := newVisit("fac-b", base)
		mustStore(t, s, append(append(a, late), b), kipass.VisitStored)
		tests := []struct {
			name     string
			facility string
			from, to time.Time
			want     []*kipass.Visit
		}{
			{"Whole", "fac-a", base.Add(-24 * time.Hour), base.Add(48 * time.Hour), append(a[:3:3], late)},
			{"FromInclusive", "fac-a", a[1].At, base.Add(time.Hour), a[1:3]},
			{"ToExclusive", "fac-a", a[0].At, a[2].At, a[0:2]},
			{"AcrossMidnight", "fac-a", a[2].At, base.Add(24 * time.Hour), []*kipass.Visit{a[2], late}},
			{"OtherFacility", "fac-b", base.Add(-time.Hour), base.Add(time.Hour), []*kipass.Visit{b}},
			{"UnknownFacility", "fac-z", base.Add(-time.Hour), base.Add(time.Hour), nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.FindVisitsAtFacility(ctx, tt.facility, tt.from, tt.to)
				if err != nil {
					t.Fatal(err)
				}
				sameVisits(t, got, tt.want)
			})
		}
	})

	t.Run("SharedTokens", func(t *testing.T) {
		s := open(t)
		shared, single, old := randBytes(16), randBytes(16), randBytes(16)
		v := func(token []byte, fac string, at time.Time) *kipass.Visit {
			x := newVisit(fac, at)
			x.TokenID = token
			return x
		}
		mustStore(t, s, []*kipass.Visit{
			v(shared, "fac-a", base),
			v(shared, "fac-b", base.Add(5*time.Minute)),
			v(shared, "fac-a", base.Add(9*time.Minute)),
			v(shared, "fac-c", base.Add(7*time.Minute)),
			v(single, "fac-a", base),
			v(single, "fac-a", base.Add(time.Minute)),
			v(old, "fac-a", base.Add(-48*time.Hour)),
			v(old, "fac-b", base.Add(time.Minute)),
		}, kipass.VisitStored)
		if none, err := s.FindSharedTokens(ctx, base.Add(time.Hour)); err != nil || none == nil || len(none) != 0 {
			t.Fatalf("FindSharedTokens with none: %v, %v; want an empty slice", none, err)
		}
		got, err := s.FindSharedTokens(ctx, base.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("got %d shared tokens, want 1: %+v", len(got), got)
		}
		g := got[0]
		if !bytes.Equal(g.TokenID, shared) || len(g.FacilityIDs) != 3 ||
			g.FacilityIDs[0] != "fac-a" || g.FacilityIDs[1] != "fac-b" || g.FacilityIDs[2] != "fac-c" ||
			!g.FirstAt.Equal(base) || !g.LastAt.Equal(base.Add(9*time.Minute)) {
			t.Fatalf("got %+v", g)
		}
		got, err = s.FindSharedTokens(ctx, base.Add(-72*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !bytes.Equal(got[0].TokenID, old) || !bytes.Equal(got[1].TokenID, shared) {
			t.Fatalf("since three days: got %+v, want old then shared", got)
		}
	})
}

// testRetention checks PurgeVisits at day boundaries and beyond one delete chunk.
func testRetention(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	day := func(d int, h int) time.Time { return time.Date(2022, 1, d, h, 0, 0, 0, kipass.KST) }

	tests := []struct {
		name   string
		cutoff time.Time
		want   int64 // visits destroyed of the fixture below
	}{
		{"BeforeAll", day(1, 0), 0},
		{"MidnightKST", day(3, 0), 4},
		{"MidDay", day(3, 12), 5},
		{"ExactInstantKept", day(3, 12).Add(time.Second), 5},
		{"JustAfter", day(3, 12).Add(time.Second + time.Microsecond), 6},
		{"AfterAll", day(10, 0), 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			vs := []*kipass.Visit{
				newVisit("fac-a", day(1, 1)), newVisit("fac-a", day(1, 23)),
				newVisit("fac-b", day(2, 0)), newVisit("fac-b", day(2, 23).Add(59*time.Minute)),
				newVisit("fac-a", day(3, 0)), newVisit("fac-a", day(3, 12).Add(time.Second)),
				newVisit("fac-a", day(4, 0)), newVisit("fac-c", day(5, 9)),
			}
			mustStore(t, s, vs, kipass.VisitStored)
			n, err := s.PurgeVisits(ctx, tt.cutoff)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.want {
				t.Fatalf("PurgeVisits destroyed %d, want %d", n, tt.want)
			}
			var left []*kipass.Visit
			for _, f := range []string{"fac-a", "fac-b", "fac-c"} {
				for _, v := range atFacility(t, s, f) {
					if v.At.Before(tt.cutoff) {
						t.Fatalf("visit at %v survived cutoff %v", v.At, tt.cutoff)
					}
					left = append(left, v)
				}
			}
			if int64(len(left)) != int64(len(vs))-tt.want {
				t.Fatalf("%d visits left, want %d", len(left), int64(len(vs))-tt.want)
			}
			if n, err := s.PurgeVisits(ctx, tt.cutoff); err != nil || n != 0 {
				t.Fatalf("second purge: %d, %v; want 0", n, err)
			}
			// A late upload for a purged day is stored again (the day's storage is
			// recreated where the backend dropped it).
			again := newVisit("fac-a", day(1, 2))
			mustStore(t, s, []*kipass.Visit{again}, kipass.VisitStored)
			got, err := s.FindVisitsAtFacility(ctx, "fac-a", day(1, 0), day(2, 0))
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, v := range got {
				found = found || v.SameContent(again)
			}
			if !found {
				t.Fatalf("late visit not found after purge: %+v", got)
			}
		})
	}

	t.Run("ManyChunks", func(t *testing.T) {
		s := open(t)
		const n = 25000
		for i := 0; i < n; i += 1000 {
			batch := make([]*kipass.Visit, 1000)
			for j := range batch {
				batch[j] = newVisit("fac-a", day(1, 0).Add(time.Duration(i+j)*time.Second))
			}
			mustStore(t, s, batch, kipass.VisitStored)
		}
		keep := newVisits("fac-a", day(3, 0), 10)
		mustStore(t, s, keep, kipass.VisitStored)
		got, err := s.PurgeVisits(ctx, day(2, 12))
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Fatalf("PurgeVisits destroyed %d, want %d", got, n)
		}
		sameVisits(t, atFacility(t, s, "fac-a"), keep)
	})
}
