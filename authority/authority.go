// Package authority is the health authority's tooling: its root signing key, its
// contact-sealing key pair, the issuers it trusts, and the trust bundles it signs.
// State lives in a directory the authority keeps offline.
package authority

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/policy"
	"github.com/kipass/kipass/seal"
	"github.com/kipass/kipass/trust"
)

// File names inside an authority directory.
const (
	RootKeyFile    = "root.key" // Ed25519 seed: signs trust bundles
	RootPubFile    = "root.pub" // built into scanners
	SealKeyFile    = "seal.key" // X25519 private: opens sealed contacts; investigators only
	SealPubFile    = "seal.pub"
	StateFile      = "authority.json"
	DefaultBundle  = "bundle.cose"
	issuerKeyFmt   = "issuer-%s.key"
	defaultKeyLife = 2 * 365 * 24 * time.Hour
)

// State is what the authority remembers between bundles.
type State struct {
	Version       uint64            `json:"version"` // of the last signed bundle
	Issuers       []trust.IssuerKey `json:"issuers"`
	RevokedKeyIDs []string          `json:"revoked_key_ids"`
}

// Dir is an authority directory.
type Dir struct{ Path string }

// Init creates the keys and an empty state in a new (or empty) directory. It refuses to
// overwrite an existing authority.
func Init(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, err
	}
	d := &Dir{Path: path}
	if _, err := os.Stat(d.file(RootKeyFile)); err == nil {
		return nil, fmt.Errorf("%s already holds an authority; refusing to overwrite its keys", path)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	spub, spriv, err := seal.GenerateKey()
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name    string
		raw     []byte
		private bool
	}{{RootKeyFile, priv.Seed(), true}, {RootPubFile, pub, false}, {SealKeyFile, spriv, true}, {SealPubFile, spub, false}} {
		if err := trust.WriteKey(d.file(f.name), f.raw, f.private); err != nil {
			return nil, err
		}
	}
	return d, d.save(&State{})
}

// Open opens an existing authority directory.
func Open(path string) (*Dir, error) {
	d := &Dir{Path: path}
	if _, err := os.Stat(d.file(StateFile)); err != nil {
		return nil, fmt.Errorf("%s is not an authority directory (run kipass authority init)", path)
	}
	return d, nil
}

func (d *Dir) file(name string) string { return filepath.Join(d.Path, name) }

// State reads the directory's state.
func (d *Dir) State() (*State, error) {
	b, err := os.ReadFile(d.file(StateFile))
	if err != nil {
		return nil, err
	}
	s := &State{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %w", StateFile, err)
	}
	return s, nil
}

func (d *Dir) save(s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := d.file(StateFile + ".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, d.file(StateFile))
}

// RootPublicKey returns the root public key that scanners build in.
func (d *Dir) RootPublicKey() (ed25519.PublicKey, error) {
	return trust.ReadPublicKey(d.file(RootPubFile))
}

// SealPrivateKey returns the sealing private key (investigators' tooling only).
func (d *Dir) SealPrivateKey() ([]byte, error) {
	return trust.ReadRawKey(d.file(SealKeyFile), seal.KeySize)
}

// AddIssuer trusts an issuer's public key from validFrom to validTo. When pub is nil a
// new key pair is made and its private half written to keyOut (or the directory).
// It returns the key id and the path of the private key, if one was made.
func (d *Dir) AddIssuer(name string, pub ed25519.PublicKey, validFrom, validTo time.Time, keyOut string) (string, string, error) {
	if name == "" {
		return "", "", errors.New("issuer name is empty")
	}
	s, err := d.State()
	if err != nil {
		return "", "", err
	}
	var written string
	if pub == nil {
		p, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", "", err
		}
		pub = p
		if keyOut == "" {
			keyOut = d.file(fmt.Sprintf(issuerKeyFmt, pass.KeyID(pub)))
		}
		if err := trust.WriteKey(keyOut, priv.Seed(), true); err != nil {
			return "", "", err
		}
		written = keyOut
	}
	if validTo.IsZero() {
		validTo = validFrom.Add(defaultKeyLife)
	}
	kid := pass.KeyID(pub)
	for _, k := range s.Issuers {
		if k.KeyID == kid {
			return "", "", fmt.Errorf("issuer key %s is already trusted", kid)
		}
	}
	s.Issuers = append(s.Issuers, trust.IssuerKey{KeyID: kid, Issuer: name, PublicKey: pub, ValidFrom: validFrom.UTC(), ValidTo: validTo.UTC()})
	return kid, written, d.save(s)
}

// Revoke adds an issuer key id to the revoked list of the next bundle.
func (d *Dir) Revoke(keyID string) error {
	s, err := d.State()
	if err != nil {
		return err
	}
	for _, k := range s.RevokedKeyIDs {
		if k == keyID {
			return nil
		}
	}
	s.RevokedKeyIDs = append(s.RevokedKeyIDs, keyID)
	return d.save(s)
}

// SignBundle signs the next bundle version with the current issuers and the given rules
// (nil for the default kr-2022), made at now, and returns its bytes.
func (d *Dir) SignBundle(rules *policy.Rules, now time.Time) ([]byte, *trust.Bundle, error) {
	if rules == nil {
		rules = policy.Default()
	}
	s, err := d.State()
	if err != nil {
		return nil, nil, err
	}
	root, err := trust.ReadPrivateKey(d.file(RootKeyFile))
	if err != nil {
		return nil, nil, err
	}
	spub, err := trust.ReadRawKey(d.file(SealPubFile), seal.KeySize)
	if err != nil {
		return nil, nil, err
	}
	b := &trust.Bundle{
		Version: s.Version + 1, MadeAt: now.UTC().Truncate(time.Second),
		Issuers: s.Issuers, RevokedKeyIDs: s.RevokedKeyIDs,
		Rules: rules.Document(), Categories: rules.Categories(), Regions: rules.Regions(),
		SealingKey: spub,
	}
	if b.RevokedKeyIDs == nil {
		b.RevokedKeyIDs = []string{}
	}
	signed, err := trust.Sign(b, root)
	if err != nil {
		return nil, nil, err
	}
	s.Version = b.Version
	return signed, b, d.save(s)
}
