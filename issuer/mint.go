package issuer

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/pass"
)

// PassResponse is the answer of GET /v1/pass: a fresh pass, its QR code, and the
// holder's status in words.
type PassResponse struct {
	Pass      string    `json:"pass"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// ExpiresInMS is the pass's remaining life when answered, so that a wallet whose
	// clock differs from the issuer's counts down correctly.
	ExpiresInMS int64        `json:"expires_in_ms"`
	Now         time.Time    `json:"now"`              // the issuer's clock
	QRSVG       string       `json:"qr_svg,omitempty"` // absent with ?qr=none
	FactsAsOf   time.Time    `json:"facts_as_of"`      // when the registry last confirmed the facts
	FactsStale  bool         `json:"facts_stale"`
	Status      []StatusLine `json:"status"`
}

// OfflinePass is one pre-issued pass, valid only in its window.
type OfflinePass struct {
	Pass      string    `json:"pass"`
	NotBefore time.Time `json:"not_before"`       // the window's start, the pass's issue time
	ExpiresAt time.Time `json:"expires_at"`       // the window's end
	QRSVG     string    `json:"qr_svg,omitempty"` // absent with ?qr=none
}

// OfflineResponse is the answer of GET /v1/passes/offline.
type OfflineResponse struct {
	Now        time.Time     `json:"now"`
	Window     string        `json:"window"`
	Passes     []OfflinePass `json:"passes"`
	FactsAsOf  time.Time     `json:"facts_as_of"`
	FactsStale bool          `json:"facts_stale"`
	Status     []StatusLine  `json:"status"`
}

// Offline pass bounds.
const (
	MaxOfflineWindow = time.Hour
	MinOfflineWindow = time.Minute
)

// tokenCache remembers wallet credentials for a minute, so that a visitor's pass
// refreshes cost no database read.
type tokenCache struct {
	now func() time.Time
	mu  sync.RWMutex
	m   map[string]tokenEntry
}

type tokenEntry struct {
	v     *visitor
	until time.Time
}

const (
	tokenCacheTTL  = time.Minute
	tokenCacheSize = 100_000
)

func newTokenCache(now func() time.Time) *tokenCache {
	return &tokenCache{now: now, m: make(map[string]tokenEntry)}
}

func (c *tokenCache) get(hash []byte) *visitor {
	c.mu.RLock()
	e, ok := c.m[string(hash)]
	c.mu.RUnlock()
	if ok && c.now().Before(e.until) {
		return e.v
	}
	return nil
}

func (c *tokenCache) put(hash []byte, v *visitor) {
	c.mu.Lock()
	if len(c.m) >= tokenCacheSize {
		clear(c.m)
	}
	c.m[string(hash)] = tokenEntry{v: v, until: c.now().Add(tokenCacheTTL)}
	c.mu.Unlock()
}

// wallet returns the visitor whose wallet credential r carries.
func (s *Service) wallet(r *http.Request) (*visitor, error) {
	tok := bearerToken(r)
	if tok == "" {
		return nil, errUnauthorized("wallet token")
	}
	h := hashToken(tok)
	if v := s.tokens.get(h); v != nil {
		return v, nil
	}
	v, err := s.db.visitorByToken(r.Context(), h)
	if kipass.ErrorCode(err) == kipass.ENOTFOUND {
		return nil, errUnauthorized("wallet token")
	} else if err != nil {
		return nil, err
	}
	s.tokens.put(h, v)
	return v, nil
}

// mint signs one pass of v with facts f, valid from iat to exp. The sealed reference
// is fresh for every pass; the day tag is that of iat's KST day.
func (s *Service) mint(v *visitor, f *cachedFacts, iat, exp time.Time) (string, error) {
	keys, err := s.keys.forDay(s.now(), kipass.DateOf(iat))
	if err != nil {
		return "", err
	}
	sref, err := keys.Seal(v.Subject)
	if err != nil {
		return "", err
	}
	dtag, err := keys.DayTag(v.Subject, kipass.DateOf(iat))
	if err != nil {
		return "", err
	}
	return pass.Sign(&pass.Claims{
		KeyID: s.keyID, IssuedAt: iat, Expiry: exp, TokenID: pass.NewTokenID(),
		SRef: sref, DTag: dtag, Holder: f.Holder,
	}, s.cfg.SigningKey)
}

// wantQR reads ?qr=: "svg" (the default) renders the QR code, "none" leaves qr_svg
// empty for clients that draw the code themselves (kipass wallet): the QR costs far
// more than the signature.
func wantQR(r *http.Request) (bool, error) {
	switch r.URL.Query().Get("qr") {
	case "", "svg":
		return true, nil
	case "none":
		return false, nil
	}
	return false, kipass.FieldErrorf("qr", "must be svg or none")
}

// currentPass mints a fresh online pass for v from its cached facts.
func (s *Service) currentPass(ctx context.Context, v *visitor, withQR bool) (*PassResponse, error) {
	f, err := s.facts.get(ctx, v.PersonID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	iat := now.Truncate(time.Second)
	exp := iat.Add(s.cfg.PassTTL)
	text, err := s.mint(v, f, iat, exp)
	if err != nil {
		return nil, err
	}
	var svg string
	if withQR {
		if svg, err = QRSVG(text); err != nil {
			return nil, err
		}
	}
	stale := s.facts.stale(f, now)
	s.metrics.minted.WithLabelValues("online").Inc()
	if stale {
		s.metrics.staleMints.Inc()
	}
	return &PassResponse{
		Pass: text, IssuedAt: iat, ExpiresAt: exp, ExpiresInMS: exp.Sub(now).Milliseconds(), Now: now,
		QRSVG: svg, FactsAsOf: f.FetchedAt, FactsStale: stale, Status: s.words.status(f, now),
	}, nil
}

func (s *Service) handlePass(w http.ResponseWriter, r *http.Request) {
	v, err := s.wallet(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	withQR, err := wantQR(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.currentPass(r.Context(), v, withQR)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// offlineParams reads ?hours= and ?window= of an offline request.
func (s *Service) offlineParams(r *http.Request) (time.Duration, time.Duration, error) {
	q := r.URL.Query()
	ahead := 12 * time.Hour
	if v := q.Get("hours"); v != "" {
		h, err := strconv.ParseFloat(v, 64)
		if err != nil || h <= 0 || time.Duration(h*float64(time.Hour)) > s.cfg.MaxOfflineAhead {
			return 0, 0, kipass.FieldErrorf("hours", "must be a number of hours above 0 and at most %g", s.cfg.MaxOfflineAhead.Hours())
		}
		ahead = time.Duration(h * float64(time.Hour))
	}
	window := 5 * time.Minute
	if v := q.Get("window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < MinOfflineWindow || d > MaxOfflineWindow || time.Hour%d != 0 || d%time.Minute != 0 {
			return 0, 0, kipass.FieldErrorf("window", "must be whole minutes that divide an hour, such as 5m, 10m or 15m")
		}
		window = d
	}
	return ahead, window, nil
}

// offlinePasses mints one pass per window from the current window's start until now
// plus ahead. Windows align to the hour, so none spans two KST days.
func (s *Service) offlinePasses(ctx context.Context, v *visitor, ahead, window time.Duration, withQR bool) (*OfflineResponse, error) {
	f, err := s.facts.get(ctx, v.PersonID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	resp := &OfflineResponse{Now: now, Window: window.String(), FactsAsOf: f.FetchedAt,
		FactsStale: s.facts.stale(f, now), Status: s.words.status(f, now)}
	end := now.Add(ahead)
	for start := now.Truncate(window); start.Before(end); start = start.Add(window) {
		text, err := s.mint(v, f, start, start.Add(window))
		if err != nil {
			return nil, err
		}
		var svg string
		if withQR {
			if svg, err = QRSVG(text); err != nil {
				return nil, err
			}
		}
		resp.Passes = append(resp.Passes, OfflinePass{Pass: text, NotBefore: start, ExpiresAt: start.Add(window), QRSVG: svg})
	}
	s.metrics.minted.WithLabelValues("offline").Add(float64(len(resp.Passes)))
	return resp, nil
}

func (s *Service) handleOffline(w http.ResponseWriter, r *http.Request) {
	v, err := s.wallet(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ahead, window, err := s.offlineParams(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	withQR, err := wantQR(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.offlinePasses(r.Context(), v, ahead, window, withQR)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
