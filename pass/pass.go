// Package pass is the visitor pass: the holder facts the rules need, signed by an issuer
// as a COSE_Sign1 message (RFC 9052, EdDSA/Ed25519) over a deterministic CBOR map of
// claims with integer keys, and written for a QR code as "KP1:" + Base45 (RFC 9285), so
// that the code uses the QR alphanumeric mode. It is pure and builds for js/wasm.
package pass

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/base45"
	"github.com/kipass/kipass/internal/cosesign"
)

// Prefix starts every pass text; the digit is the format version.
const Prefix = "KP1:"

// Sizes fixed by the format.
const (
	KeyIDSize   = 8  // issuer key id: the first bytes of SHA-256 of the public key
	TokenIDSize = 12 // random token id: 96 bits
	SRefSize    = 44 // sealed subject reference: nonce, subject id and tag (issuer-only AEAD)
	DTagSize    = 16 // day tag: truncated keyed hash of subject and KST day

	// MaxTextLen bounds a pass text before any decoding work is spent on it.
	MaxTextLen = 2048
)

// DefaultTTL is the default lifetime of a pass (KI-PASS used 15 s).
const DefaultTTL = 30 * time.Second

// Claims is the content of a pass.
type Claims struct {
	KeyID    string // hex of the issuer key id
	IssuedAt time.Time
	Expiry   time.Time
	TokenID  []byte
	SRef     []byte
	DTag     []byte
	Holder   kipass.Holder
}

// wire is the CBOR form of Claims. Integer keys and small integer codes keep the pass
// small enough for a version 11 QR code.
type wire struct {
	KeyID     []byte     `cbor:"1,keyasint"`
	IssuedAt  int64      `cbor:"2,keyasint"`
	Expiry    int64      `cbor:"3,keyasint"`
	TokenID   []byte     `cbor:"4,keyasint"`
	SRef      []byte     `cbor:"5,keyasint"`
	DTag      []byte     `cbor:"6,keyasint"`
	BirthDate *int64     `cbor:"7,keyasint,omitempty"`
	Doses     []wireDose `cbor:"8,keyasint,omitempty"`
	Tests     []wireTest `cbor:"9,keyasint,omitempty"`
	Recovered *int64     `cbor:"10,keyasint,omitempty"`
	Exemption uint64     `cbor:"11,keyasint,omitempty"`
}

type wireDose struct {
	_       struct{} `cbor:",toarray"`
	Date    int64
	Product uint64
}

type wireTest struct {
	_      struct{} `cbor:",toarray"`
	Kind   uint64
	Result uint64
	At     int64
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	if decMode, err = (cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthForbidden,
		MaxNestedLevels:  4,
		MaxArrayElements: 64,
		MaxMapPairs:      32,
		UTF8:             cbor.UTF8RejectInvalid,
	}).DecMode(); err != nil {
		panic(err)
	}
}

// KeyID returns the key id of an issuer public key: hex of the first KeyIDSize bytes of
// its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:KeyIDSize])
}

// NewTokenID returns a fresh random token id.
func NewTokenID() []byte {
	b := make([]byte, TokenIDSize)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

// Sign returns the pass text of c signed with the issuer's key. Ed25519 signatures are
// deterministic, so the same claims and key give the same text.
func Sign(c *Claims, key ed25519.PrivateKey) (string, error) {
	payload, err := Marshal(c)
	if err != nil {
		return "", err
	}
	msg, err := cosesign.Sign(payload, key)
	if err != nil {
		return "", err
	}
	return Prefix + base45.Encode(msg), nil
}

// Marshal returns the deterministic CBOR encoding of c after checking its fields.
func Marshal(c *Claims) ([]byte, error) {
	kid, err := hex.DecodeString(c.KeyID)
	if err != nil || len(kid) != KeyIDSize {
		return nil, kipass.FieldErrorf("key_id", "must be %d hex bytes", KeyIDSize)
	}
	switch {
	case len(c.TokenID) != TokenIDSize:
		return nil, kipass.FieldErrorf("token_id", "must be %d bytes", TokenIDSize)
	case len(c.SRef) != SRefSize:
		return nil, kipass.FieldErrorf("sref", "must be %d bytes", SRefSize)
	case len(c.DTag) != DTagSize:
		return nil, kipass.FieldErrorf("dtag", "must be %d bytes", DTagSize)
	case !c.Expiry.After(c.IssuedAt):
		return nil, kipass.FieldErrorf("expiry", "must be after issued_at")
	}
	if err := c.Holder.Validate(time.Time{}); err != nil {
		return nil, err
	}
	w := wire{
		KeyID: kid, IssuedAt: c.IssuedAt.Unix(), Expiry: c.Expiry.Unix(),
		TokenID: c.TokenID, SRef: c.SRef, DTag: c.DTag,
	}
	h := &c.Holder
	if h.BirthDate != nil {
		v := int64(*h.BirthDate)
		w.BirthDate = &v
	}
	if h.RecoveredOn != nil {
		v := int64(*h.RecoveredOn)
		w.Recovered = &v
	}
	for _, d := range h.Doses {
		w.Doses = append(w.Doses, wireDose{Date: int64(d.Date), Product: uint64(kipass.IndexOf(kipass.Products, d.Product) + 1)})
	}
	for _, t := range h.Tests {
		w.Tests = append(w.Tests, wireTest{
			Kind:   uint64(kipass.IndexOf(kipass.TestKinds, t.Kind) + 1),
			Result: uint64(kipass.IndexOf(kipass.TestResults, t.Result) + 1),
			At:     t.At.Unix(),
		})
	}
	if h.Exemption != "" {
		w.Exemption = uint64(kipass.IndexOf(kipass.Exemptions, h.Exemption) + 1)
	}
	return encMode.Marshal(&w)
}

// ErrMalformed is returned, wrapped with detail, for any text that is not a
// well-formed pass.
var ErrMalformed = errors.New("malformed pass")

// ErrBadSignature is returned when a pass's signature does not verify.
var ErrBadSignature = errors.New("bad signature")

// Pass is a decoded, not yet verified, pass.
type Pass struct {
	Claims Claims
	msg    cose.Sign1Message
}

// Parse decodes a pass text without verifying its signature. Any error wraps
// ErrMalformed.
func Parse(text string) (*Pass, error) {
	text = strings.TrimSpace(text)
	if len(text) > MaxTextLen {
		return nil, fmt.Errorf("%w: too long", ErrMalformed)
	}
	if !strings.HasPrefix(text, Prefix) {
		return nil, fmt.Errorf("%w: does not start with %s", ErrMalformed, Prefix)
	}
	raw, err := base45.DecodeString(text[len(Prefix):])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	p := &Pass{}
	if err := cosesign.Decode(raw, &p.msg); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := unmarshal(p.msg.Payload, &p.Claims); err != nil {
		return nil, err
	}
	return p, nil
}

func unmarshal(payload []byte, c *Claims) error {
	var w wire
	if err := decMode.Unmarshal(payload, &w); err != nil {
		return fmt.Errorf("%w: claims are not valid CBOR", ErrMalformed)
	}
	switch {
	case len(w.KeyID) != KeyIDSize:
		return fmt.Errorf("%w: key id", ErrMalformed)
	case len(w.TokenID) != TokenIDSize:
		return fmt.Errorf("%w: token id", ErrMalformed)
	case len(w.SRef) != SRefSize:
		return fmt.Errorf("%w: sref", ErrMalformed)
	case len(w.DTag) != DTagSize:
		return fmt.Errorf("%w: day tag", ErrMalformed)
	case w.Expiry <= w.IssuedAt:
		return fmt.Errorf("%w: expiry before issue", ErrMalformed)
	}
	c.KeyID = hex.EncodeToString(w.KeyID)
	c.IssuedAt = time.Unix(w.IssuedAt, 0)
	c.Expiry = time.Unix(w.Expiry, 0)
	c.TokenID, c.SRef, c.DTag = w.TokenID, w.SRef, w.DTag
	h := &c.Holder
	if w.BirthDate != nil {
		d, err := dateOf(*w.BirthDate)
		if err != nil {
			return err
		}
		h.BirthDate = &d
	}
	if w.Recovered != nil {
		d, err := dateOf(*w.Recovered)
		if err != nil {
			return err
		}
		h.RecoveredOn = &d
	}
	for _, wd := range w.Doses {
		d, err := dateOf(wd.Date)
		if err != nil {
			return err
		}
		p, err := code(kipass.Products, wd.Product, "product")
		if err != nil {
			return err
		}
		h.Doses = append(h.Doses, kipass.Dose{Date: d, Product: p})
	}
	for _, wt := range w.Tests {
		k, err := code(kipass.TestKinds, wt.Kind, "test kind")
		if err != nil {
			return err
		}
		r, err := code(kipass.TestResults, wt.Result, "test result")
		if err != nil {
			return err
		}
		h.Tests = append(h.Tests, kipass.Test{Kind: k, Result: r, At: time.Unix(wt.At, 0)})
	}
	if w.Exemption != 0 {
		e, err := code(kipass.Exemptions, w.Exemption, "exemption")
		if err != nil {
			return err
		}
		h.Exemption = e
	}
	return nil
}

// Dates in a pass lie between 1900 and 2200; anything else is malformed, which also
// keeps date arithmetic far from overflow.
const minDay, maxDay = -25567, 84006

func dateOf(v int64) (kipass.Date, error) {
	if v < minDay || v > maxDay {
		return 0, fmt.Errorf("%w: date out of range", ErrMalformed)
	}
	return kipass.Date(v), nil
}

func code(list []string, v uint64, what string) (string, error) {
	if v == 0 || v > uint64(len(list)) {
		return "", fmt.Errorf("%w: unknown %s code %d", ErrMalformed, what, v)
	}
	return list[v-1], nil
}

// Verify checks the pass's signature with the issuer's public key. It does not check
// times, keys' validity or rules: that is the scanner's decision.
func (p *Pass) Verify(pub ed25519.PublicKey) error {
	if err := cosesign.Verify(&p.msg, pub); err != nil {
		return ErrBadSignature
	}
	return nil
}
