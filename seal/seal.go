// Package seal seals contact data (a visitor's phone number) to the health authority
// with HPKE (RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305), so
// that only an investigator holding the authority's private key can open it. It is pure
// and builds for js/wasm, so the browser scanner seals with the same code.
package seal

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
)

// KeySize is the size of a raw X25519 public or private key.
const KeySize = 32

// Info strings bind a sealed value to its use, so a value sealed for one purpose cannot
// be passed off as another.
const (
	InfoContact = "kipass/v1/contact"
)

func suite() (hpke.KEM, hpke.KDF, hpke.AEAD) {
	return hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.ChaCha20Poly1305()
}

// GenerateKey returns a new authority sealing key pair as raw X25519 bytes.
func GenerateKey() (public, private []byte, err error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate sealing key: %w", err)
	}
	return k.PublicKey().Bytes(), k.Bytes(), nil
}

// PublicKeyOf returns the public half of a raw private key.
func PublicKeyOf(private []byte) ([]byte, error) {
	k, err := ecdh.X25519().NewPrivateKey(private)
	if err != nil {
		return nil, errors.New("seal: malformed private key")
	}
	return k.PublicKey().Bytes(), nil
}

// Seal encrypts plaintext to the holder of the private half of public. The result is
// the HPKE encapsulated key followed by the ciphertext; every call gives a different
// result, so two sealings of one phone number cannot be linked.
func Seal(public []byte, info string, plaintext []byte) ([]byte, error) {
	pk, err := ecdh.X25519().NewPublicKey(public)
	if err != nil {
		return nil, errors.New("seal: malformed public key")
	}
	hpk, err := hpke.NewDHKEMPublicKey(pk)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	_, kdf, aead := suite()
	return hpke.Seal(hpk, kdf, aead, []byte(info), plaintext)
}

// Open decrypts a value made by Seal with the matching private key and info.
func Open(private []byte, info string, sealed []byte) ([]byte, error) {
	sk, err := ecdh.X25519().NewPrivateKey(private)
	if err != nil {
		return nil, errors.New("seal: malformed private key")
	}
	hsk, err := hpke.NewDHKEMPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	_, kdf, aead := suite()
	pt, err := hpke.Open(hsk, kdf, aead, []byte(info), sealed)
	if err != nil {
		return nil, errors.New("seal: cannot open: wrong key or tampered data")
	}
	return pt, nil
}
