// Package subject is the issuer's own cryptography: random subject ids, the sealed
// subject reference (sref) that a pass carries and only the issuer can open, the day
// tag (dtag) that links one visitor's visits within one KST day and no further, the
// dated key schedule behind both, and personal safe numbers (개인안심번호).
//
// It is pure (no I/O, no global state) and builds for js/wasm. The issuer keeps the
// keys in its data directory; they never appear in a pass or a log.
package subject

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/pass"
)

// IDSize is the size of a subject id.
const IDSize = 16

// Sizes of the sealed reference: nonce, sealed subject id, AEAD tag.
const (
	NonceSize = 12
	TagSize   = 16
	KeySize   = 32 // AES-256 and HMAC-SHA256 keys
)

// ID is a subject id: 16 random bytes the issuer assigns to a visitor and tells
// nobody. Passes carry it only sealed (sref) or hashed with a day (dtag).
type ID [IDSize]byte

// NewID returns a fresh random subject id.
func NewID() ID {
	var id ID
	rand.Read(id[:]) // crypto/rand.Read never returns an error
	return id
}

// IDFromBytes returns the id held in b, which must be IDSize bytes.
func IDFromBytes(b []byte) (ID, error) {
	var id ID
	if len(b) != IDSize {
		return id, fmt.Errorf("subject id must be %d bytes, not %d", IDSize, len(b))
	}
	copy(id[:], b)
	return id, nil
}

// Errors of the keyring.
var (
	// ErrNoKey: the key needed is not in the keyring (never made, or destroyed by
	// retention).
	ErrNoKey = errors.New("no key for this day or time")
	// ErrCannotOpen: no key in the keyring opens the reference: it was sealed by another
	// issuer, altered, or its key has been destroyed.
	ErrCannotOpen = errors.New("sealed reference cannot be opened")
)

// aad binds a sealed reference to its purpose, so that the AEAD key could never open
// anything else by accident.
var aad = []byte("kipass sref v1")

// SealKey is one key that seals subject references. The newest is current: it seals;
// every key still held opens.
type SealKey struct {
	Created time.Time `json:"created"`
	// Retired is when a newer key took over; zero for the current key.
	Retired time.Time `json:"retired,omitzero"`
	Key     []byte    `json:"key"`

	aead cipher.AEAD
}

// DayKey is the day-tag key in force on one KST day.
type DayKey struct {
	Day kipass.Date `json:"day"`
	Key []byte      `json:"key"`
}

// Keyring is the issuer's dated key schedule. A Keyring is immutable once made: Maintain
// returns a new one, so that readers can share it without locks.
type Keyring struct {
	SealKeys []SealKey `json:"seal_keys"` // newest first
	DayKeys  []DayKey  `json:"day_keys"`  // by day, oldest first
}

// Policy says when keys are made and destroyed.
type Policy struct {
	// Rotation is how long a seal key stays current before a new one takes over.
	Rotation time.Duration
	// Retention is how long a reference or day tag must stay resolvable after the
	// visit that recorded it (kipass.Retention).
	Retention time.Duration
	// MaxPassLife is the longest time between minting a pass and its last valid
	// moment: an offline pass for the last window of the horizon lives that long.
	MaxPassLife time.Duration
	// DaysAhead is how many days after today get their day key in advance. It must
	// cover MaxPassLife, so that the key of a day never changes once a pass for that
	// day exists.
	DaysAhead int
}

// DefaultPolicy rotates seal keys daily, keeps what the 28-day retention needs, and
// makes day keys two days ahead (offline passes reach at most 24 hours ahead).
func DefaultPolicy() Policy {
	return Policy{Rotation: 24 * time.Hour, Retention: kipass.Retention, MaxPassLife: 25 * time.Hour, DaysAhead: 2}
}

// RetentionDays is the number of whole days of kipass.Retention.
const RetentionDays = int(kipass.Retention / (24 * time.Hour))

// Report says what one Maintain call changed.
type Report struct {
	SealKeysCreated   int
	SealKeysDestroyed int
	DayKeysCreated    int
	DayKeysDestroyed  int
}

// Changed reports whether the keyring changed and must be saved.
func (r Report) Changed() bool {
	return r.SealKeysCreated+r.SealKeysDestroyed+r.DayKeysCreated+r.DayKeysDestroyed > 0
}

// Maintain returns the keyring as it must be at now under p: a current seal key no
// older than p.Rotation, day keys from today to today+p.DaysAhead, and neither a seal key
// retired more than p.Retention+p.MaxPassLife ago nor a day key of a day more than
// p.Retention before today. A day key, once made, is never replaced. k may be nil.
func (k *Keyring) Maintain(now time.Time, p Policy) (*Keyring, Report, error) {
	var rep Report
	if p.Rotation <= 0 || p.Retention <= 0 || p.MaxPassLife < 0 || p.DaysAhead < 1 {
		return nil, rep, errors.New("subject: invalid key policy")
	}
	n := &Keyring{}
	if k != nil {
		n.SealKeys = slices.Clone(k.SealKeys)
		n.DayKeys = slices.Clone(k.DayKeys)
	}
	if len(n.SealKeys) == 0 || !now.Before(n.SealKeys[0].Created.Add(p.Rotation)) {
		key, err := newSealKey(now)
		if err != nil {
			return nil, rep, err
		}
		if len(n.SealKeys) > 0 {
			n.SealKeys[0].Retired = now
		}
		n.SealKeys = append([]SealKey{key}, n.SealKeys...)
		rep.SealKeysCreated++
	}
	keep := n.SealKeys[:0]
	for i, sk := range n.SealKeys {
		if i > 0 && !sk.Retired.IsZero() && now.Sub(sk.Retired) > p.Retention+p.MaxPassLife {
			// Readers may still hold k and its key bytes: the key is dropped here and
			// gone from the key file once the caller saves the new keyring.
			rep.SealKeysDestroyed++
			continue
		}
		keep = append(keep, sk)
	}
	n.SealKeys = keep

	today := kipass.DateOf(now)
	oldest := today.AddDays(-int(p.Retention / (24 * time.Hour)))
	days := n.DayKeys[:0]
	for _, dk := range n.DayKeys {
		if dk.Day < oldest {
			rep.DayKeysDestroyed++
			continue
		}
		days = append(days, dk)
	}
	n.DayKeys = days
	for d := today; d <= today.AddDays(p.DaysAhead); d++ {
		if _, ok := n.dayKey(d); ok {
			continue
		}
		n.DayKeys = append(n.DayKeys, DayKey{Day: d, Key: randomKey()})
		rep.DayKeysCreated++
	}
	slices.SortFunc(n.DayKeys, func(a, b DayKey) int { return int(a.Day - b.Day) })
	return n, rep, nil
}

func randomKey() []byte {
	b := make([]byte, KeySize)
	rand.Read(b)
	return b
}

func newSealKey(now time.Time) (SealKey, error) {
	k := SealKey{Created: now.UTC(), Key: randomKey()}
	return k, k.init()
}

func (k *SealKey) init() error {
	if len(k.Key) != KeySize {
		return fmt.Errorf("subject: seal key of %d bytes", len(k.Key))
	}
	block, err := aes.NewCipher(k.Key)
	if err != nil {
		return err
	}
	k.aead, err = cipher.NewGCM(block)
	return err
}

func (k *Keyring) dayKey(d kipass.Date) ([]byte, bool) {
	i, ok := slices.BinarySearchFunc(k.DayKeys, d, func(dk DayKey, d kipass.Date) int { return int(dk.Day - d) })
	if !ok {
		return nil, false
	}
	return k.DayKeys[i].Key, true
}

// Seal returns a fresh sealed reference to id under the current seal key: a random
// nonce, then AES-256-GCM of the id, pass.SRefSize bytes in all. Two references to the
// same id share no bytes an outsider could link.
func (k *Keyring) Seal(id ID) ([]byte, error) {
	if k == nil || len(k.SealKeys) == 0 {
		return nil, ErrNoKey
	}
	out := make([]byte, NonceSize, pass.SRefSize)
	rand.Read(out)
	return k.SealKeys[0].aead.Seal(out, out, id[:], aad), nil
}

// Open returns the subject id sealed in sref, trying the current key and then each
// older key still held.
func (k *Keyring) Open(sref []byte) (ID, error) {
	var id ID
	if len(sref) != pass.SRefSize {
		return id, ErrCannotOpen
	}
	if k == nil {
		return id, ErrCannotOpen
	}
	for i := range k.SealKeys {
		pt, err := k.SealKeys[i].aead.Open(id[:0], sref[:NonceSize], sref[NonceSize:], aad)
		if err == nil && len(pt) == IDSize {
			return id, nil
		}
	}
	return ID{}, ErrCannotOpen
}

// DayTag returns the day tag of id on the KST day d: HMAC-SHA256 under the day's key of
// the id and the day as YYYY-MM-DD, truncated to pass.DTagSize bytes. It is ErrNoKey
// for a day whose key was never made or has been destroyed.
func (k *Keyring) DayTag(id ID, d kipass.Date) ([]byte, error) {
	if k == nil {
		return nil, ErrNoKey
	}
	key, ok := k.dayKey(d)
	if !ok {
		return nil, ErrNoKey
	}
	m := hmac.New(sha256.New, key)
	m.Write(id[:])
	m.Write([]byte(d.String()))
	return m.Sum(nil)[:pass.DTagSize], nil
}

// HasDay reports whether the keyring holds the day key of d.
func (k *Keyring) HasDay(d kipass.Date) bool {
	if k == nil {
		return false
	}
	_, ok := k.dayKey(d)
	return ok
}

// Marshal returns the keyring as JSON, for the issuer's key file.
func (k *Keyring) Marshal() ([]byte, error) { return json.MarshalIndent(k, "", " ") }

// ParseKeyring reads a keyring written by Marshal.
func ParseKeyring(data []byte) (*Keyring, error) {
	k := &Keyring{}
	if err := json.Unmarshal(data, k); err != nil {
		return nil, fmt.Errorf("subject: keyring: %w", err)
	}
	for i := range k.SealKeys {
		if err := k.SealKeys[i].init(); err != nil {
			return nil, err
		}
	}
	for i, dk := range k.DayKeys {
		if len(dk.Key) != KeySize {
			return nil, fmt.Errorf("subject: day key %s of %d bytes", dk.Day, len(dk.Key))
		}
		if i > 0 && dk.Day <= k.DayKeys[i-1].Day {
			return nil, errors.New("subject: day keys out of order")
		}
	}
	return k, nil
}
