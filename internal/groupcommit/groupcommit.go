// Package groupcommit is the visit store's group committer, shared by the SQLite and
// PostgreSQL backends: StoreVisits callers put their batches on a bounded queue and
// one writer goroutine commits every waiting batch in one transaction, so that one
// fsync acknowledges many batches. The backend supplies the transaction as a Func.
package groupcommit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kipass/kipass"
)

// ingestRequest is one StoreVisits call waiting for the group committer.
type ingestRequest struct {
	visits []*kipass.Visit
	done   chan ingestResult // buffered, so the writer never waits for a caller that left
}

// ingestResult is the answer to one ingestRequest.
type ingestResult struct {
	statuses []kipass.VisitStatus
	err      error
}

// Func commits visits in one transaction and answers each, in order.
type Func func(ctx context.Context, visits []*kipass.Visit) ([]kipass.VisitStatus, error)

// Committer queues StoreVisits batches for the single writer goroutine.
type Committer struct {
	commit    Func
	capacity  int // visits waiting before enqueue sheds
	maxCommit int // visits in one transaction at most (one batch may exceed it)
	timeout   time.Duration

	mu       sync.Mutex
	pending  []*ingestRequest
	queued   int // visits in pending
	inFlight int // visits being committed
	closed   bool
	wake     chan struct{}
	stopped  chan struct{}

	statsMu sync.Mutex
	stats   kipass.IngestStats
}

// New starts the writer goroutine of a Committer that commits with commit, lets at
// most capacity visits wait, puts at most maxCommit visits in one transaction (one
// batch may exceed it) and gives each transaction timeout to finish.
func New(commit Func, capacity, maxCommit int, timeout time.Duration) *Committer {
	c := &Committer{
		commit:    commit,
		capacity:  capacity,
		maxCommit: maxCommit,
		timeout:   timeout,
		wake:      make(chan struct{}, 1),
		stopped:   make(chan struct{}),
	}
	go c.run()
	return c
}

// Enqueue hands visits to the writer and waits for the answer. It sheds at once with
// ETOOMANY when the queue is full; a batch arriving at an empty queue is always
// taken, however large, so that no batch size is refused forever.
func (c *Committer) Enqueue(ctx context.Context, visits []*kipass.Visit) ([]kipass.VisitStatus, error) {
	if len(visits) == 0 {
		return []kipass.VisitStatus{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := &ingestRequest{visits: visits, done: make(chan ingestResult, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, kipass.Errorf(kipass.EUNAVAILABLE, "visit store is closed")
	}
	if c.queued > 0 && c.queued+len(visits) > c.capacity {
		c.mu.Unlock()
		c.statsMu.Lock()
		c.stats.Shed++
		c.statsMu.Unlock()
		return nil, kipass.Errorf(kipass.ETOOMANY, "visit ingest is at capacity; retry later")
	}
	c.pending = append(c.pending, req)
	c.queued += len(visits)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}

	select {
	case r := <-req.done:
		return r.statuses, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops taking batches, lets the writer commit everything queued and waits
// for it. It is safe to call more than once.
func (c *Committer) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.stopped
}

// Closed reports whether Close has been called.
func (c *Committer) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Stats returns the current statistics.
func (c *Committer) Stats() kipass.IngestStats {
	c.mu.Lock()
	depth, batches, inFlight := c.queued, len(c.pending), c.inFlight
	c.mu.Unlock()
	c.statsMu.Lock()
	s := c.stats
	c.statsMu.Unlock()
	s.QueueDepth, s.QueueBatches, s.QueueCapacity, s.Committing = depth, batches, c.capacity, inFlight
	return s
}

// run is the writer goroutine.
func (c *Committer) run() {
	defer close(c.stopped)
	for {
		reqs := c.next()
		if reqs == nil {
			return
		}
		c.commitGroup(reqs)
		c.mu.Lock()
		c.inFlight = 0
		c.mu.Unlock()
	}
}

// next takes the waiting batches, up to maxCommit visits (at least one batch), and
// blocks while there are none. It returns nil once closed and drained.
func (c *Committer) next() []*ingestRequest {
	c.mu.Lock()
	for len(c.pending) == 0 {
		if c.closed {
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		<-c.wake
		c.mu.Lock()
	}
	n, visits := 0, 0
	for n < len(c.pending) && (n == 0 || visits+len(c.pending[n].visits) <= c.maxCommit) {
		visits += len(c.pending[n].visits)
		n++
	}
	reqs := make([]*ingestRequest, n)
	copy(reqs, c.pending)
	rest := copy(c.pending, c.pending[n:])
	clear(c.pending[rest:])
	c.pending = c.pending[:rest]
	c.queued -= visits
	c.inFlight = visits
	c.mu.Unlock()
	return reqs
}

// commitGroup commits the batches in one transaction and answers each caller. If the
// transaction fails, each batch is retried in a transaction of its own so that one
// bad batch cannot fail the others.
func (c *Committer) commitGroup(reqs []*ingestRequest) {
	var all []*kipass.Visit
	if len(reqs) == 1 {
		all = reqs[0].visits
	} else {
		n := 0
		for _, r := range reqs {
			n += len(r.visits)
		}
		all = make([]*kipass.Visit, 0, n)
		for _, r := range reqs {
			all = append(all, r.visits...)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	start := time.Now()
	statuses, err := c.commit(ctx, all)
	latency := time.Since(start)
	cancel()
	if err != nil && len(reqs) > 1 {
		for _, r := range reqs {
			c.commitGroup([]*ingestRequest{r})
		}
		return
	}
	if err != nil {
		// Nothing of the batch is acknowledged: to the caller the store is
		// unavailable and the upload is to be retried; the cause is for the log.
		err = fmt.Errorf("%w (%v)", kipass.Errorf(kipass.EUNAVAILABLE, "visit storage failed; retry later"), err)
	}

	c.statsMu.Lock()
	if err != nil {
		c.stats.Failed += int64(len(reqs))
	} else {
		c.stats.Commits++
		c.stats.Batches += int64(len(reqs))
		c.stats.Visits += int64(len(all))
		for _, s := range statuses {
			switch s.Status {
			case kipass.VisitStored:
				c.stats.Stored++
			case kipass.VisitDuplicate:
				c.stats.Duplicates++
			default:
				c.stats.Conflicts++
			}
		}
		c.stats.LastCommitLatency = latency
		c.stats.MaxCommitLatency = max(c.stats.MaxCommitLatency, latency)
	}
	c.statsMu.Unlock()

	off := 0
	for _, r := range reqs {
		if err != nil {
			r.done <- ingestResult{err: err}
			continue
		}
		r.done <- ingestResult{statuses: statuses[off : off+len(r.visits) : off+len(r.visits)]}
		off += len(r.visits)
	}
}
