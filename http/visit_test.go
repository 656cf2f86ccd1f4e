package http_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
)

func TestUploadVisits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{})
		ctx := context.Background()
		fa, fb := e.MustCreateFacility("A", ""), e.MustCreateFacility("B", "")
		devA, enrolA := e.MustEnroll(fa.ID)
		devB, _ := e.MustEnroll(fb.ID)
		now := e.Clock.Now()

		t.Run("StoredThenDuplicate", func(t *testing.T) {
			batch := []*kipass.Visit{QRVisit(fa.ID, now.Add(-time.Minute)), QRVisit(fa.ID, now.Add(-2*time.Minute))}
			res, err := devA.UploadVisits(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.ID != batch[i].ID || r.Status != kipass.VisitStored {
					t.Fatalf("result %d: %+v", i, r)
				}
			}
			res, err = devA.UploadVisits(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.ID != batch[i].ID || r.Status != kipass.VisitDuplicate {
					t.Fatalf("replay %d: %+v", i, r)
				}
			}
			vs, err := e.Store.FindVisitsAtFacility(ctx, fa.ID, now.Add(-time.Hour), now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, v := range vs {
				if v.ID == batch[0].ID {
					n++
					if v.DeviceID != enrolA.Device.ID {
						t.Fatalf("stored device %q, want %q", v.DeviceID, enrolA.Device.ID)
					}
				}
			}
			if n != 1 {
				t.Fatalf("visit stored %d times", n)
			}
		})

		t.Run("ConflictSameIDOtherContent", func(t *testing.T) {
			v := QRVisit(fa.ID, now)
			if res, err := devA.UploadVisits(ctx, []*kipass.Visit{v}); err != nil || res[0].Status != kipass.VisitStored {
				t.Fatalf("%v %+v", err, res)
			}
			w := *v
			w.Basis = kipass.BasisNegativePCR
			res, err := devA.UploadVisits(ctx, []*kipass.Visit{&w})
			if err != nil || res[0].Status != kipass.VisitRejected || res[0].Reason != kipass.ReasonVisitConflict {
				t.Fatalf("%v %+v", err, res)
			}
		})

		t.Run("RepeatInBatch", func(t *testing.T) {
			v := QRVisit(fa.ID, now)
			w := *v
			w.Basis = "other"
			res, err := devA.UploadVisits(ctx, []*kipass.Visit{v, v, &w})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{kipass.VisitStored, kipass.VisitDuplicate, kipass.VisitRejected}
			for i, r := range res {
				if r.Status != want[i] {
					t.Fatalf("result %d: %+v, want %s", i, r, want[i])
				}
			}
		})

		t.Run("Rejections", func(t *testing.T) {
			mk := func(change func(v *kipass.Visit)) *kipass.Visit {
				v := QRVisit(fa.ID, now)
				change(v)
				return v
			}
			cases := []struct {
				name   string
				visit  *kipass.Visit
				reason string
			}{
				{"OtherFacility", mk(func(v *kipass.Visit) { v.FacilityID = fb.ID }), "other facility"},
				{"Future", mk(func(v *kipass.Visit) { v.At = now.Add(11 * time.Minute) }), "future"},
				{"TooOld", mk(func(v *kipass.Visit) { v.At = now.Add(-kipass.Retention - time.Minute) }), "too old"},
				{"BadID", mk(func(v *kipass.Visit) { v.ID = "has space" }), "malformed: id"},
				{"LongID", mk(func(v *kipass.Visit) { v.ID = strings.Repeat("a", 65) }), "malformed: id"},
				{"UnknownMethod", mk(func(v *kipass.Visit) { v.Method = "telepathy" }), "malformed: method"},
				{"PhoneFromDevice", mk(func(v *kipass.Visit) { v.Method = kipass.MethodPhone }), "malformed: phone"},
				{"ShortTokenID", mk(func(v *kipass.Visit) { v.TokenID = v.TokenID[:11] }), "malformed: token_id"},
				{"ShortDTag", mk(func(v *kipass.Visit) { v.DTag = nil }), "malformed: dtag"},
				{"LongSRef", mk(func(v *kipass.Visit) { v.SRef = append(v.SRef, 1) }), "malformed: sref"},
				{"NoDecision", mk(func(v *kipass.Visit) { v.Outcome = "" }), "malformed: decision"},
				{"BadDecision", mk(func(v *kipass.Visit) { v.Outcome = "MAYBE" }), "malformed: decision"},
				{"QRWithContact", mk(func(v *kipass.Visit) { v.Contact = randomBytes(80) }), "malformed"},
				{"OtherDevice", mk(func(v *kipass.Visit) { v.DeviceID = "d-someone-else" }), "other device"},
				{"ReceivedAtSet", mk(func(v *kipass.Visit) { v.ReceivedAt = now }), "malformed: received_at"},
				{"NoTime", mk(func(v *kipass.Visit) { v.At = time.Time{} }), "malformed: at"},
				{"BadSafeNumber", &kipass.Visit{ID: "s-bad", FacilityID: fa.ID, At: now, Method: kipass.MethodSafeNumber, SafeNumber: "12345가"}, "malformed: safe_number"},
				{"ManualWithoutContact", &kipass.Visit{ID: "m-bad", FacilityID: fa.ID, At: now, Method: kipass.MethodManual}, "malformed: contact"},
			}
			batch := []*kipass.Visit{QRVisit(fa.ID, now)}
			for _, c := range cases {
				batch = append(batch, c.visit)
			}
			res, err := devA.UploadVisits(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Status != kipass.VisitStored {
				t.Fatalf("the valid visit: %+v", res[0])
			}
			for i, c := range cases {
				r := res[i+1]
				if r.Status != kipass.VisitRejected || !strings.HasPrefix(r.Reason, c.reason) || r.ID != c.visit.ID {
					t.Errorf("%s: %+v, want rejected %q", c.name, r, c.reason)
				}
			}
		})

		t.Run("OtherMethods", func(t *testing.T) {
			batch := []*kipass.Visit{
				{ID: "safe-" + strconv.FormatInt(now.UnixNano(), 36), FacilityID: fa.ID, At: now, Method: kipass.MethodSafeNumber, SafeNumber: "12가34나"},
				{ID: "manual-" + strconv.FormatInt(now.UnixNano(), 36), FacilityID: fa.ID, At: now, Method: kipass.MethodManual, Contact: randomBytes(70)},
			}
			res, err := devA.UploadVisits(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Status != kipass.VisitStored {
					t.Fatalf("%d: %+v", i, r)
				}
			}
		})

		t.Run("DeviceOfOtherFacility", func(t *testing.T) {
			res, err := devB.UploadVisits(ctx, []*kipass.Visit{QRVisit(fa.ID, now)})
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Status != kipass.VisitRejected || !strings.HasPrefix(res[0].Reason, "other facility") {
				t.Fatalf("%+v", res[0])
			}
		})

		t.Run("EmptyBatch", func(t *testing.T) {
			r := e.Do("POST", "/v1/visits", devA.Token, []byte(`{"visits":[]}`))
			if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"results":[]}` {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
		})

		t.Run("FullBatch", func(t *testing.T) {
			batch := make([]*kipass.Visit, kiphttp.MaxBatchSize)
			for i := range batch {
				batch[i] = QRVisit(fa.ID, now.Add(-time.Duration(i)*time.Second))
			}
			res, err := devA.UploadVisits(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Status != kipass.VisitStored || r.ID != batch[i].ID {
					t.Fatalf("%d: %+v", i, r)
				}
			}
		})

		valid, _ := json.Marshal(QRVisit(fa.ID, now))
		visitWith := func(extra string) string { return string(valid[:len(valid)-1]) + "," + extra + "}" }
		for _, tc := range []struct {
			name, body, field string
		}{
			{"ErrUnknownTopField", `{"visits":[],"extra":1}`, "extra"},
			{"ErrUnknownVisitField", `{"visits":[` + string(valid) + `,` + visitWith(`"colour":"red"`) + `]}`, "visits[1].colour"},
			{"ErrBadTime", `{"visits":[{"id":"a","at":"yesterday"}]}`, "visits[0].at"},
			{"ErrBadBase64", `{"visits":[` + string(valid) + `,{"id":"a","token_id":"%%%"}]}`, "visits[1].token_id"},
			{"ErrWrongType", `{"visits":[{"id":7}]}`, "visits[0].id"},
			{"ErrVisitNotObject", `{"visits":[` + string(valid) + `,"v"]}`, "visits[1]"},
			{"ErrVisitsNotArray", `{"visits":{}}`, "visits"},
			{"ErrNoVisits", `{}`, "visits"},
			{"ErrDuplicateKey", `{"visits":[],"visits":[]}`, "visits"},
			{"ErrDuplicateVisitKey", `{"visits":[{"id":"a","id":"b"}]}`, "visits[0].id"},
			{"ErrNotObject", `[]`, "body"},
			{"ErrTruncated", `{"visits":[` + string(valid), ""},
			{"ErrTrailing", `{"visits":[]}{}`, ""},
			{"ErrEmpty", ``, ""},
			{"ErrTooMany", `{"visits":[` + strings.Repeat(`{},`, kiphttp.MaxBatchSize) + `{}]}`, "visits"},
			{"ErrTooLarge", `{"visits":[{"id":"` + strings.Repeat("a", kiphttp.MaxVisitBodySize) + `"}]}`, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expectError(t, e.Do("POST", "/v1/visits", devA.Token, []byte(tc.body)), 400, kipass.EINVALID, tc.field)
			})
		}

		t.Run("ErrNoCredential", func(t *testing.T) {
			expectError(t, e.Do("POST", "/v1/visits", "", []byte(`{"visits":[]}`)), 401, kipass.EUNAUTHORIZED, "")
			expectError(t, e.Do("POST", "/v1/visits", strings.Repeat("x", 43), []byte(`{"visits":[]}`)), 401, kipass.EUNAUTHORIZED, "")
		})
		e.checkNoSecrets(t, devA.Token, devB.Token)
	})
}

// TestUploadShedding checks that ingest answers 429 with Retry-After at once when the
// store's queue is full, and that nothing acknowledged is lost.
func TestUploadShedding(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{store: storeOptions{QueueSize: 250}})
		ctx := context.Background()
		f := e.MustCreateFacility("붐비는 식당", "")
		dev, _ := e.MustEnroll(f.ID)
		now := e.Clock.Now()

		release := e.Store.BlockWrites(t)
		// The writer takes the first batch and waits for the lock; two more fill the
		// queue (250 visits); the fourth is shed.
		type answer struct {
			res []kipass.VisitStatus
			err error
		}
		answers := make(chan answer, 3)
		batches := make([][]*kipass.Visit, 4)
		for i := range batches {
			for j := 0; j < 100; j++ {
				batches[i] = append(batches[i], QRVisit(f.ID, now))
			}
		}
		send := func(batch []*kipass.Visit) {
			go func() {
				res, err := dev.UploadVisits(ctx, batch)
				answers <- answer{res, err}
			}()
		}
		send(batches[0])
		waitFor(t, func() bool { return e.Store.IngestStats().Committing == 100 })
		send(batches[1])
		waitFor(t, func() bool { return e.Store.IngestStats().QueueDepth == 100 })
		send(batches[2])
		waitFor(t, func() bool { return e.Store.IngestStats().QueueDepth == 200 })
		start := time.Now()
		_, err := dev.UploadVisits(ctx, batches[3])
		var re *kiphttp.ResponseError
		if !asResponseError(err, &re) || re.StatusCode != 429 || re.RetryAfter < time.Second {
			t.Fatalf("fourth batch: %v, want 429 with Retry-After", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("shedding took %v: it must be at once", d)
		}
		release()
		for i := 0; i < 3; i++ {
			a := <-answers
			if a.err != nil {
				t.Fatalf("queued batch: %v", a.err)
			}
		}
		// Shedding shows on the status page within a check.
		waitFor(t, func() bool {
			st, err := e.Anonymous.Status(ctx)
			return err == nil && st.Components.Ingest.State == kiphttp.StateDegraded && st.Components.Ingest.ShedLastMinute > 0
		})
	})
}

func TestUploadInflightLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{config: func(c *kiphttp.Config) { c.MaxInflightIngest = 1 }})
		ctx := context.Background()
		f := e.MustCreateFacility("좁은 식당", "")
		dev, _ := e.MustEnroll(f.ID)
		release := e.Store.BlockWrites(t)
		done := make(chan error, 1)
		go func() {
			_, err := dev.UploadVisits(ctx, []*kipass.Visit{QRVisit(f.ID, e.Clock.Now())})
			done <- err
		}()
		waitFor(t, func() bool { st := e.Store.IngestStats(); return st.Committing > 0 || st.QueueDepth > 0 })
		_, err := dev.UploadVisits(ctx, []*kipass.Visit{QRVisit(f.ID, e.Clock.Now())})
		if kipass.ErrorCode(err) != kipass.ETOOMANY {
			t.Fatalf("second upload: %v, want too_many_requests", err)
		}
		release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestUploadDeviceRateLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{config: func(c *kiphttp.Config) { c.DeviceRate, c.DeviceBurst = 0.5, 2 }})
		ctx := context.Background()
		f := e.MustCreateFacility("빠른 식당", "")
		dev, _ := e.MustEnroll(f.ID)
		other, _ := e.MustEnroll(f.ID)
		for i := 0; i < 2; i++ {
			if _, err := dev.UploadVisits(ctx, []*kipass.Visit{QRVisit(f.ID, e.Clock.Now())}); err != nil {
				t.Fatalf("upload %d: %v", i, err)
			}
		}
		_, err := dev.UploadVisits(ctx, []*kipass.Visit{QRVisit(f.ID, e.Clock.Now())})
		var re *kiphttp.ResponseError
		if !asResponseError(err, &re) || re.StatusCode != 429 || re.RetryAfter < time.Second {
			t.Fatalf("third upload: %v, want 429 with Retry-After", err)
		}
		// Another device has its own bucket.
		if _, err := other.UploadVisits(ctx, []*kipass.Visit{QRVisit(f.ID, e.Clock.Now())}); err != nil {
			t.Fatalf("other device: %v", err)
		}
	})
}

// TestUploadConcurrentReplays uploads the same visits from many goroutines at once:
// every visit is stored exactly once and every answer is stored or duplicate.
func TestUploadConcurrentReplays(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{})
		ctx := context.Background()
		f := e.MustCreateFacility("동시 식당", "")
		dev, _ := e.MustEnroll(f.ID)
		batch := make([]*kipass.Visit, 50)
		for i := range batch {
			batch[i] = QRVisit(f.ID, e.Clock.Now())
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		stored := map[string]int{}
		for g := 0; g < 8; g++ {
			wg.Go(func() {
				res, err := dev.UploadVisits(ctx, batch)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, r := range res {
					switch r.Status {
					case kipass.VisitStored:
						stored[r.ID]++
					case kipass.VisitDuplicate:
					default:
						t.Errorf("%+v", r)
					}
				}
			})
		}
		wg.Wait()
		for _, v := range batch {
			if stored[v.ID] != 1 {
				t.Errorf("visit %s answered stored %d times", v.ID, stored[v.ID])
			}
			if n, err := e.Store.CountVisit(ctx, v.ID); err != nil || n != 1 {
				t.Errorf("visit %s stored %d times (%v)", v.ID, n, err)
			}
		}
	})
}

func asResponseError(err error, target **kiphttp.ResponseError) bool {
	re, ok := err.(*kiphttp.ResponseError)
	if ok {
		*target = re
	}
	return ok
}

// waitFor polls cond for up to 10 seconds.
func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
