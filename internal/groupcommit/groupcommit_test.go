package groupcommit_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/internal/groupcommit"
)

// stored answers every visit as stored, and one whose id starts with "bad" fails
// the whole transaction.
func stored(ctx context.Context, visits []*kipass.Visit) ([]kipass.VisitStatus, error) {
	out := make([]kipass.VisitStatus, len(visits))
	for i, v := range visits {
		if strings.HasPrefix(v.ID, "bad") {
			return nil, errors.New("disk on fire")
		}
		out[i] = kipass.VisitStatus{ID: v.ID, Status: kipass.VisitStored}
	}
	return out, nil
}

func batch(ids ...string) []*kipass.Visit {
	vs := make([]*kipass.Visit, len(ids))
	for i, id := range ids {
		vs[i] = &kipass.Visit{ID: id}
	}
	return vs
}

func TestEnqueueAnswersEachBatch(t *testing.T) {
	c := groupcommit.New(stored, 100, 10, time.Second)
	defer c.Close()
	var wg sync.WaitGroup
	for _, ids := range [][]string{{"a1", "a2"}, {"b1"}, {"c1", "c2", "c3"}} {
		wg.Go(func() {
			st, err := c.Enqueue(context.Background(), batch(ids...))
			if err != nil || len(st) != len(ids) {
				t.Errorf("Enqueue(%v) = %v, %v", ids, st, err)
				return
			}
			for i, s := range st {
				if s.ID != ids[i] || s.Status != kipass.VisitStored {
					t.Errorf("Enqueue(%v)[%d] = %+v", ids, i, s)
				}
			}
		})
	}
	wg.Wait()
	s := c.Stats()
	if s.Batches != 3 || s.Visits != 6 || s.Stored != 6 || s.Failed != 0 || s.QueueCapacity != 100 {
		t.Errorf("stats %+v", s)
	}
}

func TestBadBatchFailsAlone(t *testing.T) {
	release := make(chan struct{})
	commit := func(ctx context.Context, visits []*kipass.Visit) ([]kipass.VisitStatus, error) {
		if visits[0].ID == "block" {
			<-release
		}
		return stored(ctx, visits)
	}
	c := groupcommit.New(commit, 100, 100, time.Second)
	defer c.Close()
	first := make(chan error, 1)
	go func() { _, err := c.Enqueue(context.Background(), batch("block")); first <- err }()
	for c.Stats().Committing == 0 {
		time.Sleep(time.Millisecond)
	}
	// Both batches wait behind the first and are committed together; the bad one
	// fails that transaction, so each is retried alone.
	good, bad := make(chan error, 1), make(chan error, 1)
	go func() { _, err := c.Enqueue(context.Background(), batch("ok")); good <- err }()
	go func() { _, err := c.Enqueue(context.Background(), batch("bad")); bad <- err }()
	for c.Stats().QueueBatches < 2 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-good; err != nil {
		t.Errorf("the good batch failed: %v", err)
	}
	if err := <-bad; kipass.ErrorCode(err) != kipass.EUNAVAILABLE {
		t.Errorf("the bad batch: %v, want EUNAVAILABLE", err)
	}
	if s := c.Stats(); s.Failed != 1 || s.Batches != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestShedAndClose(t *testing.T) {
	release := make(chan struct{})
	commit := func(ctx context.Context, visits []*kipass.Visit) ([]kipass.VisitStatus, error) {
		<-release
		return stored(ctx, visits)
	}
	c := groupcommit.New(commit, 2, 10, time.Second)
	go c.Enqueue(context.Background(), batch("a"))
	for c.Stats().Committing == 0 {
		time.Sleep(time.Millisecond)
	}
	// A batch at an empty queue is taken however large; the next one is shed.
	big := make(chan error, 1)
	go func() { _, err := c.Enqueue(context.Background(), batch("b1", "b2", "b3")); big <- err }()
	for c.Stats().QueueDepth == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Enqueue(context.Background(), batch("c")); kipass.ErrorCode(err) != kipass.ETOOMANY {
		t.Errorf("over capacity: %v, want ETOOMANY", err)
	}
	close(release)
	if err := <-big; err != nil {
		t.Errorf("the large batch: %v", err)
	}
	c.Close()
	c.Close()
	if !c.Closed() {
		t.Error("not closed")
	}
	if _, err := c.Enqueue(context.Background(), batch("d")); kipass.ErrorCode(err) != kipass.EUNAVAILABLE {
		t.Errorf("after close: %v, want EUNAVAILABLE", err)
	}
	if s := c.Stats(); s.Shed != 1 || s.Visits != 4 {
		t.Errorf("stats %+v", s)
	}
}
