package main

import (
	"encoding/base64"
	"testing"

	"github.com/kipass/kipass/seal"
)

func TestOpenContact(t *testing.T) {
	pub, priv, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := seal.Seal(pub, seal.InfoContact, []byte("01012345678"))
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	if got, err := openContact(b64(priv), b64(sealed)); err != nil || got != "01012345678" {
		t.Errorf("openContact = %q, %v", got, err)
	}
	_, other, _ := seal.GenerateKey()
	for name, args := range map[string][2]string{
		"WrongKey":     {b64(other), b64(sealed)},
		"ShortKey":     {b64(priv[:31]), b64(sealed)},
		"NotBase64":    {"!!", b64(sealed)},
		"Tampered":     {b64(priv), b64(append(append([]byte{}, sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1))},
		"SealedNotB64": {b64(priv), "%%"},
	} {
		if _, err := openContact(args[0], args[1]); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
}
