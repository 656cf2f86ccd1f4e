// Package scanner is the offline decision a venue's scanner makes from a QR text: it
// verifies the pass against the trust bundle, refuses replays, applies the rules for
// the facility and time, and makes the visit record. It does no I/O, never waits for a
// server, and builds for js/wasm so the browser scanner runs this very code.
package scanner

import (
	"errors"
	"fmt"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/policy"
	"github.com/kipass/kipass/trust"
)

// Refused is the outcome of a pass that could not be decided on: see Result.Refusal.
const Refused kipass.Outcome = "REFUSED"

// Refusal reasons.
const (
	RefusalMalformed    = "malformed"
	RefusalUnknownKey   = "unknown_key"
	RefusalRevokedKey   = "revoked_key"
	RefusalBadSignature = "bad_signature"
	RefusalExpired      = "expired"
	RefusalNotYetValid  = "not_yet_valid"
	RefusalReplayed     = "replayed"
	RefusalBadInput     = "bad_input" // the facility or party size given to the scanner is wrong
)

// ClockTolerance is how far the scanner's clock may be off from the issuer's without
// a pass being refused for its times.
const ClockTolerance = 2 * time.Minute

// maxSeen bounds the replay cache; expired entries are pruned long before.
const maxSeen = 1 << 20

// Scanner decides passes offline. It is not safe for concurrent use: a venue's scanner
// decides one pass at a time (wrap it in a mutex to share it).
type Scanner struct {
	bundle *trust.Bundle
	rules  *policy.Rules
	seen   map[string]time.Time // token id -> until when a second showing is a replay
	prune  time.Time
}

// New returns a scanner for a verified trust bundle. The rules come from the bundle.
func New(b *trust.Bundle) (*Scanner, error) {
	rules, err := policy.Parse(b.Rules)
	if err != nil {
		return nil, fmt.Errorf("scanner: rules in trust bundle: %w", err)
	}
	return &Scanner{bundle: b, rules: rules, seen: make(map[string]time.Time)}, nil
}

// Bundle returns the trust bundle the scanner uses.
func (s *Scanner) Bundle() *trust.Bundle { return s.bundle }

// Rules returns the rules the scanner applies.
func (s *Scanner) Rules() *policy.Rules { return s.rules }

// Result is the scanner's answer for one pass.
type Result struct {
	Outcome  kipass.Outcome  // PASS, FAIL, NOT_REQUIRED or REFUSED
	Decision kipass.Decision // the rules' decision, when the pass was decided on
	Refusal  string          // why the pass was refused, when Outcome is REFUSED
	Detail   string          // one English sentence for the refusal
	// ClockWarning is set when the pass's times suggest the scanner's clock is off by
	// more than ClockTolerance; Skew is then the estimated offset (scanner - issuer).
	ClockWarning bool
	Skew         time.Duration

	KeyID   string
	TokenID []byte
	SRef    []byte
	DTag    []byte
}

// Admitted reports whether the visitor may enter: the pass was met or not required.
func (r *Result) Admitted() bool {
	return r.Outcome == kipass.PASS || r.Outcome == kipass.NotRequired
}

func refuse(reason, detail string) Result {
	return Result{Outcome: Refused, Refusal: reason, Detail: detail}
}

// Decide verifies text and applies the rules for place, the visitor's party size and
// the scanner's time now.
func (s *Scanner) Decide(text string, place kipass.Place, party int, now time.Time) Result {
	p, err := pass.Parse(text)
	if err != nil {
		return refuse(RefusalMalformed, "This is not a kipass pass: "+err.Error()+".")
	}
	c := &p.Claims
	key, err := s.bundle.Issuer(c.KeyID, c.IssuedAt)
	switch {
	case errors.Is(err, trust.ErrRevokedKey):
		return refuse(RefusalRevokedKey, "The issuer key of this pass has been revoked.")
	case errors.Is(err, trust.ErrUnknownKey):
		return refuse(RefusalUnknownKey, "The pass is signed by an issuer this scanner does not know; update the trust bundle.")
	case errors.Is(err, trust.ErrKeyExpired):
		return refuse(RefusalUnknownKey, "The pass was signed by an issuer key outside its validity period.")
	}
	if err := p.Verify(key.PublicKey); err != nil {
		return refuse(RefusalBadSignature, "The pass's signature does not verify: it was altered or forged.")
	}
	r := Result{KeyID: c.KeyID, TokenID: c.TokenID, SRef: c.SRef, DTag: c.DTag}
	if now.Before(c.IssuedAt.Add(-ClockTolerance)) {
		r.Outcome, r.Refusal = Refused, RefusalNotYetValid
		r.ClockWarning, r.Skew = true, now.Sub(c.IssuedAt)
		r.Detail = fmt.Sprintf("The pass is not valid yet; the scanner's clock seems %s behind.", roundSkew(-r.Skew))
		return r
	}
	if now.After(c.Expiry.Add(ClockTolerance)) {
		r.Outcome, r.Refusal = Refused, RefusalExpired
		r.Detail = "The pass has expired; ask the visitor to refresh it."
		// A pass shown at once is at most its lifetime old; a far older one on a
		// fresh-looking screen may be a scanner whose clock runs ahead.
		if life := c.Expiry.Sub(c.IssuedAt); now.Sub(c.IssuedAt) > life+ClockTolerance && life <= 10*time.Minute {
			r.Skew = now.Sub(c.Expiry)
			r.Detail += fmt.Sprintf(" If it was just refreshed, the scanner's clock may be %s ahead.", roundSkew(r.Skew))
		}
		return r
	}
	if until, ok := s.seen[string(c.TokenID)]; ok && now.Before(until) {
		r.Outcome, r.Refusal = Refused, RefusalReplayed
		r.Detail = "This pass was already shown here; ask the visitor to refresh it."
		return r
	}
	// The issuer vouched for the facts as of the issue time; a scanner clock up to
	// ClockTolerance behind must not make a test notified just before look "future".
	at := now
	if c.IssuedAt.After(at) {
		at = c.IssuedAt
	}
	d, err := s.rules.Evaluate(policy.Case{At: at, Place: place, PartySize: party, Holder: c.Holder})
	if err != nil {
		if kipass.ErrorField(err) == "facility.category" || kipass.ErrorField(err) == "facility.region" || kipass.ErrorField(err) == "party_size" {
			r.Outcome, r.Refusal, r.Detail = Refused, RefusalBadInput, kipass.ErrorMessage(err)
			return r
		}
		r.Outcome, r.Refusal, r.Detail = Refused, RefusalMalformed, "The pass carries facts the rules cannot use: "+kipass.ErrorMessage(err)
		return r
	}
	s.remember(c.TokenID, c.Expiry.Add(ClockTolerance), now)
	r.Outcome, r.Decision = d.Outcome, d
	return r
}

func (s *Scanner) remember(token []byte, until, now time.Time) {
	if len(s.seen) >= maxSeen || now.After(s.prune) {
		for k, v := range s.seen {
			if !now.Before(v) {
				delete(s.seen, k)
			}
		}
		s.prune = now.Add(time.Minute)
		if len(s.seen) >= maxSeen {
			// Every entry is still live: forget an arbitrary one rather than grow without
			// bound. Only a flood of distinct valid passes within minutes can get here.
			for k := range s.seen {
				delete(s.seen, k)
				break
			}
		}
	}
	s.seen[string(token)] = until
}

func roundSkew(d time.Duration) time.Duration {
	if d < 0 {
		d = -d
	}
	return d.Round(time.Second)
}

// Visit returns the visit record of an admitted or failed scan. It carries what a
// trace needs and never the holder's facts.
func (r *Result) Visit(id, facilityID, deviceID string, at time.Time) *kipass.Visit {
	return &kipass.Visit{
		ID: id, FacilityID: facilityID, DeviceID: deviceID, At: at, Method: kipass.MethodQR,
		IssuerKeyID: r.KeyID, TokenID: r.TokenID, SRef: r.SRef, DTag: r.DTag,
		Outcome: r.Decision.Outcome, Basis: r.Decision.Basis,
	}
}
