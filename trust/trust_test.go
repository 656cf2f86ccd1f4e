package trust_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kipass/kipass/trust"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func key(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(label))
	return ed25519.NewKeyFromSeed(seed[:])
}

func bundle(version uint64, madeAt time.Time) *trust.Bundle {
	ik := key("issuer").Public().(ed25519.PublicKey)
	return &trust.Bundle{
		Version: version, MadeAt: madeAt,
		Issuers: []trust.IssuerKey{{KeyID: "0011223344556677", Issuer: "Test Issuer", PublicKey: ik,
			ValidFrom: time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), ValidTo: time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)}},
		RevokedKeyIDs: []string{"8899aabbccddeeff"},
		Rules:         []byte(`{"id":"test","version":1}`),
		Categories:    []string{"gym", "restaurant"},
		Regions:       []string{"seoul", "busan"},
		SealingKey:    bytes.Repeat([]byte{7}, 32),
	}
}

var made = time.Date(2022, 1, 10, 0, 0, 0, 0, time.UTC)

func TestGolden(t *testing.T) {
	signed, err := trust.Sign(bundle(3, made), key("root"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "bundle.cose")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, signed, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signed, want) {
		t.Fatalf("bundle differs from %s (go test ./trust -update if the format changed on purpose)", path)
	}
	b, err := trust.Verify(signed, key("root").Public().(ed25519.PublicKey), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != 3 || !b.MadeAt.Equal(made) || len(b.Issuers) != 1 || !b.HasCategory("gym") || b.HasCategory("bar") || !b.HasRegion("busan") {
		t.Fatalf("bundle read back wrong: %+v", b)
	}
}

func TestVerify(t *testing.T) {
	root := key("root")
	rootPub := root.Public().(ed25519.PublicKey)
	signed, _ := trust.Sign(bundle(3, made), root)
	held := bundle(3, made)
	for _, tc := range []struct {
		name   string
		signed []byte
		held   *trust.Bundle
		want   error
	}{
		{"Fresh", signed, nil, nil},
		{"SameAsHeld", signed, held, nil},
		{"Newer", signed, bundle(2, made.Add(-time.Hour)), nil},
		{"ErrRollbackVersion", signed, bundle(4, made.Add(time.Hour)), trust.ErrRollback},
		{"ErrRollbackMadeAt", mustSign(t, bundle(5, made), root), bundle(4, made.Add(time.Hour)), trust.ErrRollback},
		{"ErrSameVersionDifferent", mustSign(t, bundle(3, made.Add(time.Minute)), root), held, trust.ErrRollback},
		{"ErrOtherRoot", mustSign(t, bundle(3, made), key("impostor")), nil, trust.ErrBadSignature},
		{"ErrGarbage", []byte("hello"), nil, trust.ErrMalformed},
		{"ErrEmpty", nil, nil, trust.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := trust.Verify(tc.signed, rootPub, tc.held)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func mustSign(tb testing.TB, b *trust.Bundle, k ed25519.PrivateKey) []byte {
	tb.Helper()
	s, err := trust.Sign(b, k)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestEveryByteChangeRefused(t *testing.T) {
	root := key("root")
	signed, _ := trust.Sign(bundle(3, made), root)
	for i := range signed {
		for _, flip := range []byte{0x01, 0x80} {
			b := bytes.Clone(signed)
			b[i] ^= flip
			if _, err := trust.Verify(b, root.Public().(ed25519.PublicKey), nil); err == nil {
				t.Fatalf("byte %d ^ %#x accepted", i, flip)
			}
		}
	}
}

func TestIssuer(t *testing.T) {
	b := bundle(1, made)
	b.Issuers = append(b.Issuers, trust.IssuerKey{KeyID: "8899aabbccddeeff", Issuer: "Revoked", PublicKey: b.Issuers[0].PublicKey})
	in := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		kid  string
		at   time.Time
		want error
	}{
		{"Valid", "0011223344556677", in, nil},
		{"ErrUnknown", "ffffffffffffffff", in, trust.ErrUnknownKey},
		{"ErrRevoked", "8899aabbccddeeff", in, trust.ErrRevokedKey},
		{"ErrBeforeValidity", "0011223344556677", time.Date(2020, 12, 31, 23, 59, 59, 0, time.UTC), trust.ErrKeyExpired},
		{"ErrAtValidTo", "0011223344556677", time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), trust.ErrKeyExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := b.Issuer(tc.kid, tc.at); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	k := key("file")
	if err := trust.WriteKey(filepath.Join(dir, "k.key"), k.Seed(), true); err != nil {
		t.Fatal(err)
	}
	got, err := trust.ReadPrivateKey(filepath.Join(dir, "k.key"))
	if err != nil || !got.Equal(k) {
		t.Fatalf("read back %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bad.pub"), []byte("not base64!"), 0o644)
	if _, err := trust.ReadPublicKey(filepath.Join(dir, "bad.pub")); err == nil {
		t.Fatal("accepted a malformed key file")
	}
	if _, err := trust.ReadPublicKey(filepath.Join(dir, "k.key")); err != nil {
		t.Fatal("a 32-byte seed is also a 32-byte public key file; sizes alone decide:", err)
	}
}

func FuzzVerify(f *testing.F) {
	root := key("root")
	signed, _ := trust.Sign(bundle(3, made), root)
	f.Add(signed)
	f.Add([]byte{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xa0, 0xf6, 0x40})
	pub := root.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := trust.Verify(data, pub, nil)
		// Only the authority's own bundle can verify; whatever bytes carry it must
		// decode to exactly its content.
		if err == nil && (b.Version != 3 || !b.MadeAt.Equal(made) || len(b.Issuers) != 1 || len(b.Regions) != 2) {
			t.Fatalf("accepted bytes that decode to another bundle: %+v", b)
		}
	})
}
