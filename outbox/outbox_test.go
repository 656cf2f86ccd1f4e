package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/outbox"
)

func mustOpen(tb testing.TB, path string) *outbox.Outbox {
	tb.Helper()
	o, err := outbox.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { o.Close() })
	return o
}

func visit(i int) *kipass.Visit {
	return &kipass.Visit{ID: fmt.Sprintf("v%04d", i), FacilityID: "f1", At: time.Unix(1643252400+int64(i), 0).UTC(),
		Method: kipass.MethodQR, TokenID: []byte{byte(i)}, Outcome: kipass.PASS, Basis: kipass.BasisBooster}
}

func TestOutbox(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := mustOpen(t, path)
	for i := range 10 {
		if err := o.Add(ctx, visit(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Add(ctx, visit(3)); err != nil { // the same visit again: no-op
		t.Fatal(err)
	}
	if n, _ := o.Len(ctx); n != 10 {
		t.Fatalf("Len = %d, want 10", n)
	}
	batch, err := o.Next(ctx, 4)
	if err != nil || len(batch) != 4 || batch[0].ID != "v0000" || batch[3].ID != "v0003" {
		t.Fatalf("Next = %v, %v", batch, err)
	}
	if !batch[2].At.Equal(visit(2).At) || string(batch[2].TokenID) != string(visit(2).TokenID) {
		t.Fatalf("visit read back wrong: %+v", batch[2])
	}
	acked, rejected, err := o.Ack(ctx, []kipass.VisitStatus{
		{ID: "v0000", Status: kipass.VisitStored},
		{ID: "v0001", Status: kipass.VisitDuplicate},
		{ID: "v0002", Status: kipass.VisitRejected, Reason: "other facility"},
	}, time.Now())
	if err != nil || acked != 2 || rejected != 1 {
		t.Fatalf("Ack = %d, %d, %v", acked, rejected, err)
	}
	if n, _ := o.Len(ctx); n != 7 {
		t.Fatalf("Len after ack = %d, want 7", n)
	}
	rej, err := o.Rejected(ctx)
	if err != nil || len(rej) != 1 || rej[0].Visit.ID != "v0002" || rej[0].Reason != "other facility" {
		t.Fatalf("Rejected = %+v, %v", rej, err)
	}
	t.Run("SurvivesReopen", func(t *testing.T) {
		o.Close()
		o2 := mustOpen(t, path)
		if n, _ := o2.Len(ctx); n != 7 {
			t.Fatalf("Len after reopen = %d, want 7", n)
		}
		next, _ := o2.Next(ctx, 1)
		if next[0].ID != "v0003" {
			t.Fatalf("order lost: first is %s", next[0].ID)
		}
	})
}

func TestState(t *testing.T) {
	ctx := context.Background()
	o := mustOpen(t, filepath.Join(t.TempDir(), "o.db"))
	if _, err := o.State(ctx, "credential"); !errors.Is(err, outbox.ErrNoState) {
		t.Fatalf("want ErrNoState, got %v", err)
	}
	o.SetState(ctx, "credential", []byte("a"))
	o.SetState(ctx, "credential", []byte("b"))
	if v, err := o.State(ctx, "credential"); err != nil || string(v) != "b" {
		t.Fatalf("State = %q, %v", v, err)
	}
}

// flaky is an uploader that fails a given number of times, then stores everything,
// answering duplicate for ids it has seen.
type flaky struct {
	fails int
	seen  map[string]int
}

func (f *flaky) UploadVisits(ctx context.Context, vs []*kipass.Visit) ([]kipass.VisitStatus, error) {
	if f.fails > 0 {
		f.fails--
		return nil, errors.New("connection refused")
	}
	out := make([]kipass.VisitStatus, len(vs))
	for i, v := range vs {
		f.seen[v.ID]++
		st := kipass.VisitStored
		if f.seen[v.ID] > 1 {
			st = kipass.VisitDuplicate
		}
		out[i] = kipass.VisitStatus{ID: v.ID, Status: st}
	}
	return out, nil
}

func TestSyncOnceFailover(t *testing.T) {
	ctx := context.Background()
	o := mustOpen(t, filepath.Join(t.TempDir(), "o.db"))
	for i := range 25 {
		o.Add(ctx, visit(i))
	}
	down := &flaky{fails: 1 << 30, seen: map[string]int{}}
	up := &flaky{seen: map[string]int{}}
	s := &outbox.Syncer{Outbox: o, Uploaders: []outbox.Uploader{down, up}, Batch: 10}
	if r := s.SyncOnce(ctx); r.Err == nil || r.Uploader != 0 {
		t.Fatalf("first attempt should fail on uploader 0: %+v", r)
	}
	for range 3 {
		if r := s.SyncOnce(ctx); r.Err != nil || r.Uploader != 1 {
			t.Fatalf("want success on uploader 1: %+v", r)
		}
	}
	if n, _ := o.Len(ctx); n != 0 {
		t.Fatalf("outbox not drained: %d left", n)
	}
	if len(up.seen) != 25 {
		t.Fatalf("central saw %d distinct visits, want 25", len(up.seen))
	}
}
