// Package cosesign signs and verifies COSE_Sign1 messages (RFC 9052) with EdDSA over
// Ed25519 (RFC 9053), the one signature format of passes and trust bundles.
package cosesign

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/veraison/go-cose"
)

// ErrMalformed reports bytes that are not an EdDSA COSE_Sign1 message.
var ErrMalformed = errors.New("not an EdDSA COSE_Sign1 message")

// ErrBadSignature reports a signature that does not verify.
var ErrBadSignature = errors.New("bad signature")

// Sign returns the tagged COSE_Sign1 message of payload. Ed25519 is deterministic: the
// same payload and key give the same bytes.
func Sign(payload []byte, key ed25519.PrivateKey) ([]byte, error) {
	signer, err := cose.NewSigner(cose.AlgorithmEdDSA, key)
	if err != nil {
		return nil, fmt.Errorf("cose signer: %w", err)
	}
	msg := cose.Sign1Message{
		Headers: cose.Headers{Protected: cose.ProtectedHeader{cose.HeaderLabelAlgorithm: cose.AlgorithmEdDSA}},
		Payload: payload,
	}
	if err := msg.Sign(nil, nil, signer); err != nil {
		return nil, fmt.Errorf("cose sign: %w", err)
	}
	return msg.MarshalCBOR()
}

// Decode parses a COSE_Sign1 message and checks that it claims EdDSA. It does not verify.
func Decode(raw []byte, msg *cose.Sign1Message) error {
	if err := msg.UnmarshalCBOR(raw); err != nil {
		return ErrMalformed
	}
	if alg, err := msg.Headers.Protected.Algorithm(); err != nil || alg != cose.AlgorithmEdDSA {
		return ErrMalformed
	}
	if len(msg.Headers.Unprotected) != 0 {
		return ErrMalformed
	}
	return nil
}

// Verify checks msg's signature with pub.
func Verify(msg *cose.Sign1Message, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return ErrBadSignature
	}
	v, err := cose.NewVerifier(cose.AlgorithmEdDSA, pub)
	if err != nil {
		return ErrBadSignature
	}
	if err := msg.Verify(nil, v); err != nil {
		return ErrBadSignature
	}
	return nil
}
