package seal_test

import (
	"bytes"
	"testing"

	"github.com/kipass/kipass/seal"
)

func TestSealOpen(t *testing.T) {
	pub, priv, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("010-1234-5678")
	a, err := seal.Seal(pub, seal.InfoContact, msg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := seal.Seal(pub, seal.InfoContact, msg)
	if bytes.Equal(a, b) {
		t.Fatal("two sealings of the same value are identical: linkable")
	}
	got, err := seal.Open(priv, seal.InfoContact, a)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	t.Run("ErrWrongKey", func(t *testing.T) {
		_, other, _ := seal.GenerateKey()
		if _, err := seal.Open(other, seal.InfoContact, a); err == nil {
			t.Fatal("opened with the wrong key")
		}
	})
	t.Run("ErrWrongInfo", func(t *testing.T) {
		if _, err := seal.Open(priv, "other", a); err == nil {
			t.Fatal("opened with the wrong info")
		}
	})
	t.Run("ErrTampered", func(t *testing.T) {
		for i := range a {
			c := bytes.Clone(a)
			c[i] ^= 1
			if _, err := seal.Open(priv, seal.InfoContact, c); err == nil {
				t.Fatalf("tampered byte %d accepted", i)
			}
		}
	})
	t.Run("PublicKeyOf", func(t *testing.T) {
		p, err := seal.PublicKeyOf(priv)
		if err != nil || !bytes.Equal(p, pub) {
			t.Fatal("PublicKeyOf does not match")
		}
	})
}
