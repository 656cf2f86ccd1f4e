package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kipass/kipass"
)

// storeResult is the answer to one StoreVisits call made in a goroutine.
type storeResult struct {
	i        int
	statuses []kipass.VisitStatus
	err      error
}

func testIngest(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("ConcurrentExactlyOnce", func(t *testing.T) {
		// Many devices upload at once, each also replaying part of its neighbour's
		// visits, and retry when shed, as the scanner does. Every visit id must be
		// answered stored exactly once and stored once.
		s := open(t)
		const workers, batches, size = 16, 20, 50
		own := make([][]*kipass.Visit, workers)
		for w := range own {
			own[w] = newVisits(fmt.Sprintf("fac-%02d", w), base, batches*size)
		}
		var mu sync.Mutex
		storedCount := map[string]int{}
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next := own[(w+1)%workers]
				for b := range batches {
					batch := append([]*kipass.Visit{}, own[w][b*size:(b+1)*size]...)
					for _, v := range next[b*size : b*size+size/5] {
						batch = append(batch, clone(v))
					}
					var statuses []kipass.VisitStatus
					var err error
					for {
						statuses, err = s.StoreVisits(ctx, batch)
						if !isTooMany(err) {
							break
						}
						time.Sleep(time.Millisecond)
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					for i, st := range statuses {
						switch {
						case st.ID != batch[i].ID:
							errs <- fmt.Errorf("status %d names %s, want %s", i, st.ID, batch[i].ID)
						case st.Status == kipass.VisitStored:
							storedCount[st.ID]++
						case st.Status != kipass.VisitDuplicate:
							errs <- fmt.Errorf("visit %s: %+v", st.ID, st)
						}
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		total := 0
		for w := range workers {
			got := atFacility(t, s, fmt.Sprintf("fac-%02d", w))
			sameVisits(t, got, own[w])
			total += len(got)
			for _, v := range own[w] {
				if storedCount[v.ID] != 1 {
					t.Fatalf("visit %s answered stored %d times", v.ID, storedCount[v.ID])
				}
			}
		}
		st := s.IngestStats()
		if st.Stored != int64(total) || st.Visits != int64(workers*batches*(size+size/5)) ||
			st.Duplicates != st.Visits-st.Stored || st.Conflicts != 0 || st.Commits == 0 || st.Commits > st.Batches {
			t.Fatalf("IngestStats %+v after %d stored", st, total)
		}
		if st.MaxCommitLatency <= 0 || st.LastCommitLatency <= 0 || st.LastCommitLatency > st.MaxCommitLatency {
			t.Fatalf("IngestStats latencies %+v", st)
		}
	})

	t.Run("GroupCommit", func(t *testing.T) {
		// Batches that wait while a commit is blocked are committed together.
		s := open(t)
		_, wb := harness(t, s)
		release := wb.BlockWrites(t)
		results := make(chan storeResult, 5)
		admitted := 0
		for i := range 5 {
			batch := newVisits("fac-a", base.Add(time.Duration(i)*time.Hour), 10)
			go func() {
				st, err := s.StoreVisits(ctx, batch)
				results <- storeResult{i, st, err}
			}()
			admitted += len(batch)
			eventually(t, "batch admitted", func() bool {
				st := s.IngestStats()
				return st.QueueDepth+st.Committing == admitted
			})
		}
		before := s.IngestStats().Commits
		release()
		for range 5 {
			if r := <-results; r.err != nil || len(r.statuses) != 10 || r.statuses[9].Status != kipass.VisitStored {
				t.Fatalf("batch %d: %+v, %v", r.i, r.statuses, r.err)
			}
		}
		if st := s.IngestStats(); st.Commits-before > 2 || st.QueueDepth != 0 {
			t.Fatalf("5 waiting batches took %d commits (want at most 2: the blocked one and the rest): %+v", st.Commits-before, st)
		}
	})

	t.Run("QueueFull", func(t *testing.T) {
		s := open(t)
		_, wb := harness(t, s)
		capacity := s.IngestStats().QueueCapacity
		if capacity < 200 || capacity > 5000 {
			t.Fatalf("queue capacity %d: open the store with 200 to 5000", capacity)
		}
		release := wb.BlockWrites(t)
		released := false
		defer func() {
			if !released {
				release()
			}
		}()
		results := make(chan storeResult, capacity)
		var batches [][]*kipass.Visit
		admitted, shed := 0, -1
		for i := 0; shed < 0; i++ {
			if i > capacity/100+3 {
				t.Fatalf("queue of %d visits took %d batches of 100 without shedding", capacity, i)
			}
			batch := newVisits(fmt.Sprintf("fac-%d", i), base, 100)
			batches = append(batches, batch)
			go func() {
				st, err := s.StoreVisits(ctx, batch)
				results <- storeResult{i, st, err}
			}()
			eventually(t, "batch admitted or shed", func() bool {
				select {
				case r := <-results:
					if !isTooMany(r.err) {
						t.Fatalf("batch %d answered while writes are blocked: %+v, %v", r.i, r.statuses, r.err)
					}
					if msg := kipass.ErrorMessage(r.err); msg == "" {
						t.Fatalf("ETOOMANY without a message")
					}
					shed = r.i
					return true
				default:
				}
				st := s.IngestStats()
				if st.QueueDepth+st.Committing == admitted+len(batch) {
					admitted += len(batch)
					return true
				}
				return false
			})
		}
		if st := s.IngestStats(); st.Shed != 1 || st.QueueDepth > capacity {
			t.Fatalf("IngestStats %+v after one shed batch", st)
		}
		release()
		released = true
		for range shed {
			r := <-results
			if r.err != nil {
				t.Fatalf("batch %d: %v", r.i, r.err)
			}
			for _, st := range r.statuses {
				if st.Status != kipass.VisitStored {
					t.Fatalf("batch %d: %+v", r.i, st)
				}
			}
		}
		for i, b := range batches {
			got := atFacility(t, s, fmt.Sprintf("fac-%d", i))
			if i == shed {
				if len(got) != 0 {
					t.Fatalf("shed batch left %d visits stored", len(got))
				}
				mustStore(t, s, b, kipass.VisitStored) // the retry goes through
				continue
			}
			sameVisits(t, got, b)
		}
	})

	t.Run("ContextEndsWhileQueued", func(t *testing.T) {
		s := open(t)
		_, wb := harness(t, s)
		release := wb.BlockWrites(t)
		batch := newVisits("fac-a", base, 5)
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := s.StoreVisits(cctx, batch)
		release()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("StoreVisits: got %v, want the context's error", err)
		}
		// Queued work is not abandoned: the replay finds it stored.
		mustStore(t, s, batch, kipass.VisitDuplicate)
		if _, err := s.StoreVisits(cctx, newVisits("fac-a", base, 1)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("StoreVisits with an ended context: %v", err)
		}
	})

	t.Run("CloseDrainsQueue", func(t *testing.T) {
		s := open(t)
		_, wb := harness(t, s)
		release := wb.BlockWrites(t)
		results := make(chan storeResult, 4)
		admitted := 0
		for i := range 4 {
			batch := newVisits("fac-a", base.Add(time.Duration(i)*time.Hour), 25)
			go func() {
				st, err := s.StoreVisits(ctx, batch)
				results <- storeResult{i, st, err}
			}()
			admitted += len(batch)
			eventually(t, "batch admitted", func() bool {
				st := s.IngestStats()
				return st.QueueDepth+st.Committing == admitted
			})
		}
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		eventually(t, "store closing", func() bool {
			return kipass.ErrorCode(s.Ready(ctx)) == kipass.EUNAVAILABLE
		})
		_, err := s.StoreVisits(ctx, newVisits("fac-a", base, 1))
		mustCode(t, err, kipass.EUNAVAILABLE)
		release()
		for range 4 {
			r := <-results
			if r.err != nil || len(r.statuses) != 25 {
				t.Fatalf("batch %d: %v", r.i, r.err)
			}
			for _, st := range r.statuses {
				if st.Status != kipass.VisitStored {
					t.Fatalf("batch %d: %+v", r.i, st)
				}
			}
		}
		if err := <-closed; err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
}
