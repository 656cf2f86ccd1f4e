// Command tracewasm is the investigator console's WebAssembly module: it opens sealed
// contacts (phone check-ins and manual entries) in the investigator's browser with the
// authority's private sealing key, using the very seal package of the CLI, so that the
// key never leaves the investigator's machine. It exposes the global object
// kipassTrace with openContact(privateKeyBase64, sealedBase64) -> {phone} or {error}.
// Build it with `go generate ./web/console` (see web/console/generate.go).
package main

import (
	"encoding/base64"
	"errors"

	"github.com/kipass/kipass/seal"
)

// openContact opens one sealed phone number with a base64 raw private key.
func openContact(privB64, sealedB64 string) (string, error) {
	key, err := base64.StdEncoding.DecodeString(privB64)
	if err != nil || len(key) != seal.KeySize {
		return "", errors.New("the private key is not 32 bytes of base64")
	}
	sealed, err := base64.StdEncoding.DecodeString(sealedB64)
	if err != nil {
		return "", errors.New("the sealed contact is not base64")
	}
	phone, err := seal.Open(key, seal.InfoContact, sealed)
	if err != nil {
		return "", errors.New("the sealed contact does not open with this key")
	}
	return string(phone), nil
}
