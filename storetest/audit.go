package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kipass/kipass"
)

// newEntry returns an audit entry for an investigator query at at.
func newEntry(i int, at time.Time) *kipass.AuditEntry {
	return &kipass.AuditEntry{
		At:     at,
		Actor:  "investigator-jung",
		Action: "visits_by_day_tags",
		CaseID: fmt.Sprintf("case-2022-%04d", i),
		Reason: "역학조사 confirmed case",
		Query:  fmt.Sprintf(`{"day_tags":["%x"]}`, randBytes(8)),
	}
}

// appendEntries appends n entries one minute apart from base.
func appendEntries(t *testing.T, s Store, n int) []*kipass.AuditEntry {
	t.Helper()
	out := make([]*kipass.AuditEntry, n)
	for i := range out {
		out[i] = newEntry(i, base.Add(time.Duration(i)*time.Minute+123456789))
		if err := s.AppendAudit(context.Background(), out[i]); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	return out
}

// mustBreakAt fails unless VerifyAudit reports a broken chain at seq.
func mustBreakAt(t *testing.T, s Store, seq int64) {
	t.Helper()
	err := s.VerifyAudit(context.Background())
	var ce *kipass.AuditChainError
	if !errors.As(err, &ce) || ce.Seq != seq {
		t.Fatalf("VerifyAudit: got %v, want a chain error at seq %d", err, seq)
	}
}

func testAudit(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("Chain", func(t *testing.T) {
		s := open(t)
		if err := s.VerifyAudit(ctx); err != nil {
			t.Fatalf("VerifyAudit on an empty log: %v", err)
		}
		entries := appendEntries(t, s, 5)
		for i, e := range entries {
			if e.Seq != int64(i+1) {
				t.Fatalf("entry %d: Seq %d", i, e.Seq)
			}
			if e.At.Nanosecond()%1000 != 0 {
				t.Fatalf("entry %d: At %v not truncated to the microsecond", i, e.At)
			}
			wantPrev := []byte{}
			if i > 0 {
				wantPrev = entries[i-1].Hash
			}
			if !bytes.Equal(e.PrevHash, wantPrev) || !bytes.Equal(e.Hash, e.ComputeHash()) || len(e.Hash) != 32 {
				t.Fatalf("entry %d: PrevHash %x Hash %x", i, e.PrevHash, e.Hash)
			}
		}
		if err := s.VerifyAudit(ctx); err != nil {
			t.Fatalf("VerifyAudit: %v", err)
		}
		defaulted := &kipass.AuditEntry{Actor: "a", Action: "b", CaseID: "c", Reason: "d", Query: "{}"}
		if err := s.AppendAudit(ctx, defaulted); err != nil || defaulted.At.IsZero() || defaulted.Seq != 6 {
			t.Fatalf("AppendAudit without At: %+v, %v", defaulted, err)
		}
	})

	t.Run("List", func(t *testing.T) {
		s := open(t)
		entries := appendEntries(t, s, 5)
		tests := []struct {
			name     string
			from, to time.Time
			want     []*kipass.AuditEntry
		}{
			{"All", base.Add(-time.Hour), base.Add(time.Hour), entries},
			{"FromInclusive", entries[1].At, base.Add(time.Hour), entries[1:]},
			{"ToExclusive", base.Add(-time.Hour), entries[3].At, entries[:3]},
			{"None", base.Add(time.Hour), base.Add(2 * time.Hour), nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.ListAudit(ctx, tt.from, tt.to)
				if err != nil {
					t.Fatal(err)
				}
				if got == nil || len(got) != len(tt.want) {
					t.Fatalf("got %d entries (nil: %t), want %d", len(got), got == nil, len(tt.want))
				}
				for i, w := range tt.want {
					g := got[i]
					if g.Seq != w.Seq || !g.At.Equal(w.At) || g.Actor != w.Actor || g.Action != w.Action ||
						g.CaseID != w.CaseID || g.Reason != w.Reason || g.Query != w.Query ||
						!bytes.Equal(g.PrevHash, w.PrevHash) || !bytes.Equal(g.Hash, w.Hash) {
						t.Fatalf("entry %d: got %+v, want %+v", i, g, w)
					}
				}
			})
		}
	})

	t.Run("ConcurrentAppends", func(t *testing.T) {
		s := open(t)
		const workers, each = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if err := s.AppendAudit(ctx, newEntry(w*each+i, base)); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		all, err := s.ListAudit(ctx, base, base.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != workers*each {
			t.Fatalf("%d entries, want %d", len(all), workers*each)
		}
		for i, e := range all {
			if e.Seq != int64(i+1) {
				t.Fatalf("entry %d has Seq %d", i, e.Seq)
			}
		}
		if err := s.VerifyAudit(ctx); err != nil {
			t.Fatalf("VerifyAudit after concurrent appends: %v", err)
		}
	})

	t.Run("Tampering", func(t *testing.T) {
		tests := []struct {
			name   string
			tamper func(tam Tamperer) error
			seq    int64
		}{
			{"ChangedFirst", func(tam Tamperer) error { return tam.TamperAudit(ctx, 1, "nothing to see") }, 1},
			{"ChangedMiddle", func(tam Tamperer) error { return tam.TamperAudit(ctx, 3, "nothing to see") }, 3},
			{"ChangedLast", func(tam Tamperer) error { return tam.TamperAudit(ctx, 5, "nothing to see") }, 5},
			{"RemovedMiddle", func(tam Tamperer) error { return tam.DeleteAudit(ctx, 2) }, 2},
			{"RemovedFirst", func(tam Tamperer) error { return tam.DeleteAudit(ctx, 1) }, 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := open(t)
				tam, _ := harness(t, s)
				appendEntries(t, s, 5)
				if err := tt.tamper(tam); err != nil {
					t.Fatalf("tamper: %v", err)
				}
				mustBreakAt(t, s, tt.seq)
			})
		}
	})
}

func testNotices(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	s := open(t)
	list := func() []*kipass.Notice {
		t.Helper()
		ns, err := s.ListActiveNotices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ns
	}
	if ns := list(); len(ns) != 0 {
		t.Fatalf("%d notices in a new store", len(ns))
	}
	first := &kipass.Notice{ID: "n1", Level: "warning", MessageKO: "업로드 지연: 스캔은 기기에 안전하게 보관됩니다",
		MessageEN: "uploads delayed: your scans are safe on this device", CreatedAt: base}
	second := &kipass.Notice{Level: "info", MessageKO: "점검 예정"}
	for _, n := range []*kipass.Notice{first, second} {
		if err := s.CreateNotice(ctx, n); err != nil {
			t.Fatalf("CreateNotice: %v", err)
		}
	}
	if second.ID == "" || second.CreatedAt.IsZero() {
		t.Fatalf("CreateNotice left %+v", second)
	}
	mustCode(t, s.CreateNotice(ctx, &kipass.Notice{ID: "n1", Level: "info", MessageKO: "x"}), kipass.ECONFLICT)

	ns := list()
	if len(ns) != 2 || ns[0].ID != "n1" || ns[0].Level != first.Level || ns[0].MessageKO != first.MessageKO ||
		ns[0].MessageEN != first.MessageEN || !ns[0].CreatedAt.Equal(base) || ns[0].EndedAt != nil || ns[1].ID != second.ID {
		t.Fatalf("ListActiveNotices: %+v", ns)
	}
	if err := s.EndNotice(ctx, "n1", base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.EndNotice(ctx, "n1", base.Add(2*time.Hour)); err != nil {
		t.Fatalf("ending an ended notice: %v", err)
	}
	mustCode(t, s.EndNotice(ctx, "n-none", base), kipass.ENOTFOUND)
	if ns := list(); len(ns) != 1 || ns[0].ID != second.ID {
		t.Fatalf("after ending n1: %+v", ns)
	}
}
