// Package trust is the trust bundle: one versioned document, signed by the health
// authority's Ed25519 root key, that carries to every scanner the issuer keys, the
// revoked key ids, the rules, the facility categories and regions and the authority's
// contact-sealing public key. Scanners verify it offline and refuse a rollback.
// It is pure and builds for js/wasm.
package trust

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/veraison/go-cose"

	"github.com/kipass/kipass/internal/cosesign"
)

// MediaType is the HTTP content type of a signed bundle.
const MediaType = "application/cose"

// MaxSize bounds a signed bundle before any decoding work is spent on it.
const MaxSize = 1 << 20

// IssuerKey is one issuer signing key the authority trusts for a period.
type IssuerKey struct {
	KeyID     string            `json:"key_id"`
	Issuer    string            `json:"issuer"`
	PublicKey ed25519.PublicKey `json:"public_key"`
	ValidFrom time.Time         `json:"valid_from"`
	ValidTo   time.Time         `json:"valid_to"`
}

// Bundle is the content of a trust bundle.
type Bundle struct {
	Version       uint64          `json:"version"`
	MadeAt        time.Time       `json:"made_at"`
	Issuers       []IssuerKey     `json:"issuers"`
	RevokedKeyIDs []string        `json:"revoked_key_ids"`
	Rules         json.RawMessage `json:"rules"`
	Categories    []string        `json:"categories"`
	Regions       []string        `json:"regions"`
	SealingKey    []byte          `json:"sealing_key"` // X25519 public key for seal.Seal
}

// Errors of bundle verification.
var (
	ErrMalformed    = errors.New("trust bundle is malformed")
	ErrBadSignature = errors.New("trust bundle is not signed by the authority root key")
	ErrRollback     = errors.New("trust bundle is older than the one already held")
)

// Errors of issuer key look-up.
var (
	ErrUnknownKey = errors.New("unknown issuer key")
	ErrRevokedKey = errors.New("revoked issuer key")
	ErrKeyExpired = errors.New("issuer key not valid at this time")
)

// Sign returns the signed bundle bytes: a COSE_Sign1 message whose payload is the
// bundle as JSON. The same bundle and key always give the same bytes.
func Sign(b *Bundle, root ed25519.PrivateKey) ([]byte, error) {
	if b.Version == 0 {
		return nil, errors.New("trust: bundle version must be at least 1")
	}
	payload, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("trust: encode bundle: %w", err)
	}
	return cosesign.Sign(payload, root)
}

// Verify checks signed bundle bytes against the root public key and returns the bundle.
// When held is not nil it is the bundle the caller already trusts: an older version is
// refused (ErrRollback), and so is a different bundle under the same version.
func Verify(signed []byte, root ed25519.PublicKey, held *Bundle) (*Bundle, error) {
	if len(signed) > MaxSize {
		return nil, fmt.Errorf("%w: too large", ErrMalformed)
	}
	var msg cose.Sign1Message
	if err := cosesign.Decode(signed, &msg); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := cosesign.Verify(&msg, root); err != nil {
		return nil, ErrBadSignature
	}
	b := &Bundle{}
	if err := json.Unmarshal(msg.Payload, b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if b.Version == 0 || b.MadeAt.IsZero() {
		return nil, fmt.Errorf("%w: missing version or made_at", ErrMalformed)
	}
	for i, k := range b.Issuers {
		if len(k.PublicKey) != ed25519.PublicKeySize || k.KeyID == "" {
			return nil, fmt.Errorf("%w: issuers[%d]", ErrMalformed, i)
		}
	}
	if held != nil {
		switch {
		case b.Version < held.Version, b.MadeAt.Before(held.MadeAt):
			return nil, fmt.Errorf("%w: version %d made %s, held version %d made %s", ErrRollback,
				b.Version, b.MadeAt.Format(time.RFC3339), held.Version, held.MadeAt.Format(time.RFC3339))
		case b.Version == held.Version && !b.MadeAt.Equal(held.MadeAt):
			return nil, fmt.Errorf("%w: a different bundle under version %d", ErrRollback, b.Version)
		}
	}
	return b, nil
}

// ETag returns the HTTP entity tag of signed bundle bytes.
func ETag(signed []byte) string {
	sum := sha256.Sum256(signed)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// Issuer returns the issuer key with the given id if it is known, not revoked and valid
// at t.
func (b *Bundle) Issuer(keyID string, t time.Time) (*IssuerKey, error) {
	for _, r := range b.RevokedKeyIDs {
		if r == keyID {
			return nil, ErrRevokedKey
		}
	}
	for i := range b.Issuers {
		k := &b.Issuers[i]
		if k.KeyID != keyID {
			continue
		}
		if t.Before(k.ValidFrom) || (!k.ValidTo.IsZero() && !t.Before(k.ValidTo)) {
			return k, ErrKeyExpired
		}
		return k, nil
	}
	return nil, ErrUnknownKey
}

// HasCategory reports whether c is a facility category of the bundle.
func (b *Bundle) HasCategory(c string) bool { return contains(b.Categories, c) }

// HasRegion reports whether r is a region of the bundle.
func (b *Bundle) HasRegion(r string) bool { return contains(b.Regions, r) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Key files hold one raw key as base64 text: the 32-byte seed of an Ed25519 private
// key, a 32-byte Ed25519 public key, or a raw X25519 sealing key.

// EncodeKey returns the key-file text of a raw key.
func EncodeKey(raw []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(raw) + "\n")
}

// DecodeKey parses key-file text and checks the raw key's size.
func DecodeKey(text []byte, size int) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(text)))
	if err != nil || len(raw) != size {
		return nil, fmt.Errorf("not a base64 key of %d bytes", size)
	}
	return raw, nil
}

// ReadPublicKey reads an Ed25519 public key file.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	raw, err := readKey(path, ed25519.PublicKeySize)
	return ed25519.PublicKey(raw), err
}

// ReadPrivateKey reads an Ed25519 private key file (its seed).
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	raw, err := readKey(path, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(raw), nil
}

// ReadRawKey reads a key file of the given size, such as an X25519 sealing key.
func ReadRawKey(path string, size int) ([]byte, error) { return readKey(path, size) }

func readKey(path string, size int) ([]byte, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	raw, err := DecodeKey(text, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return raw, nil
}

// WriteKey writes a key file; private keys are made readable by the owner only.
func WriteKey(path string, raw []byte, private bool) error {
	mode := os.FileMode(0o644)
	if private {
		mode = 0o600
	}
	if strings.TrimSpace(path) == "" {
		return errors.New("empty key path")
	}
	return os.WriteFile(path, EncodeKey(raw), mode)
}
