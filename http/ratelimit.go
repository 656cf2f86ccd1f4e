package http

import (
	"math"
	"sync"
	"time"
)

// rateLimiter is a token bucket per key (device id) in a bounded map: when the map is
// full, buckets idle long enough to have refilled are dropped (they carry no state),
// then arbitrary ones, so memory stays bounded whatever the number of devices.
type rateLimiter struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	max     int
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst, max int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), max: max, buckets: map[string]*bucket{}}
}

// allow takes one token from key's bucket. When none is left it returns false and how
// long until one is.
func (l *rateLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.max {
			l.evict(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// evict makes room for a quarter of the map.
func (l *rateLimiter) evict(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	target := l.max * 3 / 4
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) <= target {
			break
		}
		delete(l.buckets, k)
	}
}

func (l *rateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// shedCounter counts shed requests over the last minute in one-second slots.
type shedCounter struct {
	mu    sync.Mutex
	slots [60]struct {
		sec int64
		n   int64
	}
}

func (c *shedCounter) add(now time.Time) {
	sec := now.Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[sec%60]
	if s.sec != sec {
		s.sec, s.n = sec, 0
	}
	s.n++
}

// lastMinute returns the number of shed requests in the 60 seconds before now.
func (c *shedCounter) lastMinute(now time.Time) int64 {
	sec := now.Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, s := range c.slots {
		if s.sec > sec-60 && s.sec <= sec {
			n += s.n
		}
	}
	return n
}
