package outbox

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
)

// Uploader sends a batch of visits to central and returns the answer for each.
// *kiphttp.Client is one.
type Uploader interface {
	UploadVisits(ctx context.Context, visits []*kipass.Visit) ([]kipass.VisitStatus, error)
}

// Syncer drains an outbox into central: batches of up to Batch visits, exponential
// backoff with full jitter on failure, central's Retry-After honoured, and fail-over
// to the next central URL when one is unreachable.
type Syncer struct {
	Outbox     *Outbox
	Uploaders  []Uploader // one per central URL, tried in turn
	Batch      int        // default 500
	MinBackoff time.Duration
	MaxBackoff time.Duration
	Idle       time.Duration // how often to look at an empty outbox; default 1 s
	Now        func() time.Time

	// OnResult, if set, is called after each upload attempt (for progress displays).
	OnResult func(r SyncResult)

	wake    chan struct{}
	once    sync.Once
	mu      sync.Mutex // one upload at a time: SyncOnce may be called beside Run
	current int
}

// SyncResult describes one upload attempt.
type SyncResult struct {
	Sent, Acked, Rejected int
	Uploader              int           // index of the uploader used
	Err                   error         // nil on success
	Wait                  time.Duration // the pause before the next attempt
}

func (s *Syncer) init() {
	s.once.Do(func() {
		s.wake = make(chan struct{}, 1)
		if s.Batch <= 0 {
			s.Batch = 500
		}
		if s.MinBackoff <= 0 {
			s.MinBackoff = 200 * time.Millisecond
		}
		if s.MaxBackoff <= 0 {
			s.MaxBackoff = 30 * time.Second
		}
		if s.Idle <= 0 {
			s.Idle = time.Second
		}
		if s.Now == nil {
			s.Now = time.Now
		}
	})
}

// Notify tells the syncer a visit was added, so that it uploads without waiting.
func (s *Syncer) Notify() {
	s.init()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run uploads until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	s.init()
	failures := 0
	for {
		r := s.SyncOnce(ctx)
		var wait time.Duration
		switch {
		case r.Err != nil:
			failures++
			wait = s.backoff(failures, r.Err)
		case r.Sent == s.Batch:
			failures = 0 // more waiting: go on at once
		default:
			failures = 0
			wait = s.Idle
		}
		if s.OnResult != nil && (r.Sent > 0 || r.Err != nil) {
			r.Wait = wait
			s.OnResult(r)
		}
		if wait == 0 {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.wake:
			t.Stop()
			if r.Err != nil {
				// New visits do not make a failing central healthy: keep the backoff.
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
	}
}

// backoff returns the pause after the n-th consecutive failure: Retry-After when
// central gave one, else exponential with full jitter.
func (s *Syncer) backoff(n int, err error) time.Duration {
	var re *kiphttp.ResponseError
	if errors.As(err, &re) && re.RetryAfter > 0 {
		// Spread the herd a little beyond the server's hint.
		return re.RetryAfter + time.Duration(rand.Int64N(int64(re.RetryAfter)/4+1))
	}
	ceil := s.MinBackoff << min(n, 16)
	if ceil > s.MaxBackoff || ceil <= 0 {
		ceil = s.MaxBackoff
	}
	return s.MinBackoff/2 + time.Duration(rand.Int64N(int64(ceil)))
}

// SyncOnce uploads one batch, if there is one, and applies the answers.
func (s *Syncer) SyncOnce(ctx context.Context) SyncResult {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	visits, err := s.Outbox.Next(ctx, s.Batch)
	if err != nil || len(visits) == 0 {
		return SyncResult{Err: err}
	}
	if len(s.Uploaders) == 0 {
		return SyncResult{Err: errors.New("outbox: no central to upload to")}
	}
	i := s.current % len(s.Uploaders)
	uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	statuses, err := s.Uploaders[i].UploadVisits(uctx, visits)
	cancel()
	r := SyncResult{Sent: len(visits), Uploader: i}
	if err != nil {
		var re *kiphttp.ResponseError
		if !errors.As(err, &re) || re.StatusCode >= 500 {
			// Unreachable or broken: the next attempt goes to the next central.
			s.current++
		}
		r.Err = err
		return r
	}
	r.Acked, r.Rejected, r.Err = s.Outbox.Ack(ctx, statuses, s.Now())
	return r
}
