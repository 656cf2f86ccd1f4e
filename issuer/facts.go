package issuer

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kipass/kipass"
)

// Facts is one person's record in the immunization registry, as the issuer uses it:
// the holder facts a pass carries and when the registry last changed them.
type Facts struct {
	PersonID  string
	Holder    kipass.Holder
	UpdatedAt time.Time
}

// FactSource is where the issuer gets holder facts: the immunization registry. Facts
// returns an ENOTFOUND error for a person the registry does not know and an
// EUNAVAILABLE error when the registry cannot be reached.
type FactSource interface {
	Facts(ctx context.Context, personID string) (*Facts, error)
}

// FactSourceFunc adapts a function to a FactSource.
type FactSourceFunc func(ctx context.Context, personID string) (*Facts, error)

// Facts calls f.
func (f FactSourceFunc) Facts(ctx context.Context, personID string) (*Facts, error) {
	return f(ctx, personID)
}

// ReasonRegistryUnavailable is the stable reason of the 503 answered when the
// registry cannot be reached and the issuer holds no usable facts for the visitor.
const ReasonRegistryUnavailable = "registry_unavailable"

// cachedFacts is a person's facts as the issuer last got them.
type cachedFacts struct {
	Facts
	FetchedAt time.Time // issuer clock

	status atomic.Pointer[statusSnap] // the holder's status in words, computed on use
}

// call is one registry look-up in flight, which every concurrent asker of the same
// person waits for (a singleflight).
type call struct {
	done chan struct{}
	f    *cachedFacts
	err  error
}

// factCache keeps each person's facts in memory, backed by the database so that a
// restart during a registry outage does not lose them. A mint costs a map look-up;
// facts older than half the TTL are refreshed in the background by a bounded queue.
type factCache struct {
	src      FactSource
	store    *store
	now      func() time.Time
	log      *slog.Logger
	m        *metrics
	ttl      time.Duration
	maxAge   time.Duration
	timeout  time.Duration
	cooldown time.Duration
	maxSize  int64

	entries sync.Map // person id -> *cachedFacts
	size    atomic.Int64

	mu    sync.Mutex
	calls map[string]*call

	queue        chan string
	queued       sync.Map // person id -> struct{}: in the queue
	breakerUntil atomic.Int64
}

// get returns the person's facts for a mint: from memory, else from the database, else
// from the registry, waiting at most the registry timeout. Facts older than maxAge are
// not used.
func (c *factCache) get(ctx context.Context, personID string) (*cachedFacts, error) {
	now := c.now()
	if v, ok := c.entries.Load(personID); ok {
		f := v.(*cachedFacts)
		if age := now.Sub(f.FetchedAt); age < c.maxAge {
			c.m.cacheHits.Inc()
			if age >= c.ttl/2 {
				c.enqueue(personID)
			}
			return f, nil
		}
	}
	c.m.cacheMisses.Inc()
	if f, fetched, err := c.store.loadFacts(ctx, personID); err == nil && now.Sub(fetched) < c.maxAge {
		cf := &cachedFacts{Facts: *f, FetchedAt: fetched}
		c.put(cf)
		if now.Sub(fetched) >= c.ttl/2 {
			c.enqueue(personID)
		}
		return cf, nil
	} else if err != nil && kipass.ErrorCode(err) != kipass.ENOTFOUND {
		c.log.Warn("stored facts unreadable", "err", err)
	}
	return c.fetch(ctx, personID)
}

// stale reports whether f is older than the TTL: the registry has not confirmed it
// lately.
func (c *factCache) stale(f *cachedFacts, now time.Time) bool { return now.Sub(f.FetchedAt) > c.ttl }

func (c *factCache) put(f *cachedFacts) {
	if _, loaded := c.entries.Swap(f.PersonID, f); !loaded && c.size.Add(1) > c.maxSize {
		// Over the bound: forget about a hundredth of the entries, whichever come
		// first. They are in the database and come back on their next use.
		n := c.maxSize/100 + 1
		c.entries.Range(func(k, _ any) bool {
			if k.(string) != f.PersonID {
				c.entries.Delete(k)
				c.size.Add(-1)
				n--
			}
			return n > 0
		})
	}
}

func (c *factCache) forget(personID string) {
	if _, loaded := c.entries.LoadAndDelete(personID); loaded {
		c.size.Add(-1)
	}
}

// fetch asks the registry for the person's facts, at most one call per person at a
// time: concurrent askers wait for the same answer, and an asker that comes just after
// a call ended takes its answer rather than calling again.
func (c *factCache) fetch(ctx context.Context, personID string) (*cachedFacts, error) {
	c.mu.Lock()
	if v, ok := c.entries.Load(personID); ok && c.now().Sub(v.(*cachedFacts).FetchedAt) < c.ttl/2 {
		c.mu.Unlock()
		return v.(*cachedFacts), nil
	}
	if cl, ok := c.calls[personID]; ok {
		c.mu.Unlock()
		select {
		case <-cl.done:
			return cl.f, cl.err
		case <-ctx.Done():
			return nil, kipass.Errorf(kipass.EUNAVAILABLE, "request cancelled while waiting for the registry")
		}
	}
	cl := &call{done: make(chan struct{})}
	c.calls[personID] = cl
	c.mu.Unlock()

	// The look-up serves every waiter: it must not end because the first one left.
	cl.f, cl.err = c.lookup(context.WithoutCancel(ctx), personID)

	c.mu.Lock()
	delete(c.calls, personID)
	c.mu.Unlock()
	close(cl.done)
	return cl.f, cl.err
}

func registryUnavailable() error {
	return &reasonError{err: kipass.Errorf(kipass.EUNAVAILABLE,
		"the immunization registry cannot be reached and no recent facts are held for you; try again in a few minutes"),
		reason: ReasonRegistryUnavailable}
}

// lookup makes one registry call, unless the registry failed within the cooldown.
func (c *factCache) lookup(ctx context.Context, personID string) (*cachedFacts, error) {
	now := c.now()
	if now.UnixNano() < c.breakerUntil.Load() {
		return nil, registryUnavailable()
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	c.m.registryCalls.Inc()
	f, err := c.src.Facts(ctx, personID)
	switch kipass.ErrorCode(err) {
	case "":
	case kipass.ENOTFOUND:
		c.forget(personID)
		if err := c.store.deleteFacts(ctx, personID); err != nil {
			c.log.Warn("delete facts", "err", err)
		}
		return nil, kipass.Errorf(kipass.ENOTFOUND, "the immunization registry has no record for this person")
	default:
		c.m.registryFailures.Inc()
		if c.cooldown > 0 {
			c.breakerUntil.Store(now.Add(c.cooldown).UnixNano())
		}
		// The client's error text holds the request URL, and with it the person id:
		// log its domain code and safe message only.
		c.log.Warn("registry look-up failed", "code", kipass.ErrorCode(err), "err", kipass.ErrorMessage(err))
		return nil, registryUnavailable()
	}
	if f == nil || f.PersonID != personID {
		c.m.registryFailures.Inc()
		c.log.Error("registry answered for another person")
		return nil, registryUnavailable()
	}
	if err := f.Holder.Validate(time.Time{}); err != nil {
		c.m.registryFailures.Inc()
		// The field names an identifier the passes cannot carry; it is not a personal datum.
		c.log.Error("registry record unusable", "field", kipass.ErrorField(err))
		return nil, kipass.Errorf(kipass.EINTERNAL, "registry record unusable")
	}
	c.breakerUntil.Store(0)
	// Stored times keep microseconds: truncate now, so that memory and database agree.
	cf := &cachedFacts{Facts: *f, FetchedAt: c.now().Truncate(time.Microsecond)}
	c.put(cf)
	if err := c.store.saveFacts(ctx, f, cf.FetchedAt); err != nil {
		c.log.Warn("save facts", "err", err)
	}
	return cf, nil
}

// enqueue asks for a background refresh of the person's facts. A person already
// queued is not queued twice; when the queue is full the refresh is dropped (the next
// mint asks again).
func (c *factCache) enqueue(personID string) {
	if _, loaded := c.queued.LoadOrStore(personID, struct{}{}); loaded {
		return
	}
	select {
	case c.queue <- personID:
		c.m.refreshQueue.Inc()
	default:
		c.queued.Delete(personID)
		c.m.refreshDropped.Inc()
	}
}

// refresher works the refresh queue until ctx ends.
func (c *factCache) refresher(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-c.queue:
			c.m.refreshQueue.Dec()
			c.queued.Delete(id)
			if v, ok := c.entries.Load(id); ok && c.now().Sub(v.(*cachedFacts).FetchedAt) < c.ttl/2 {
				continue // refreshed meanwhile
			}
			c.fetch(ctx, id)
		}
	}
}
