package base45_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kipass/kipass/base45"
)

// The examples of RFC 9285, section 4.
func TestRFCVectors(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{"AB", "BB8"},
		{"Hello!!", "%69 VD92EX0"},
		{"base-45", "UJCLQE7W581"},
		{"ietf!", "QED8WEX0"},
		{"", ""},
	} {
		t.Run(tc.out, func(t *testing.T) {
			if got := base45.Encode([]byte(tc.in)); got != tc.out {
				t.Fatalf("Encode(%q) = %q, want %q", tc.in, got, tc.out)
			}
			got, err := base45.DecodeString(tc.out)
			if err != nil || string(got) != tc.in {
				t.Fatalf("Decode(%q) = %q, %v", tc.out, got, err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	for name, in := range map[string]string{
		"ErrLength":       "GGW3",
		"ErrLowercase":    "bb8",
		"ErrTripleRange":  "GGW", // 65535 < 16+16*45+32*2025
		"ErrPairRange":    "::",
		"ErrCharacter":    "AB#",
		"ErrSingleLength": "A",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := base45.DecodeString(in); err == nil {
				t.Fatalf("DecodeString(%q) accepted", in)
			}
		})
	}
	var ce base45.CorruptInputError
	if _, err := base45.DecodeString("AB#"); !errors.As(err, &ce) || int(ce) != 2 {
		t.Fatalf("want CorruptInputError(2), got %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	for n := 0; n < 300; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*131 + n*7)
		}
		s := base45.Encode(b)
		if len(s) != base45.EncodedLen(n) {
			t.Fatalf("len %d: encoded length %d, want %d", n, len(s), base45.EncodedLen(n))
		}
		got, err := base45.DecodeString(s)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("len %d: round trip failed: %v", n, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"BB8", "%69 VD92EX0", "", "GGW", "::", "00", "KP1:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := base45.DecodeString(s)
		if err != nil {
			return
		}
		if got := base45.Encode(b); got != s {
			t.Fatalf("decode/encode of %q gave %q", s, got)
		}
	})
}
