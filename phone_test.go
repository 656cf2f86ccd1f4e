package kipass_test

import (
	"strings"
	"testing"

	"github.com/kipass/kipass"
)

func TestNormalizePhone(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"010-1234-5678", "01012345678", true},
		{"01012345678", "01012345678", true},
		{"+82 10 1234 5678", "01012345678", true},
		{"+82-10-1234-5678", "01012345678", true},
		{"+82 010 1234 5678", "01012345678", true},
		{"0082 10 1234 5678", "01012345678", true},
		{"(010) 1234.5678", "01012345678", true},
		{"011-123-4567", "0111234567", true},
		{"016-1234-5678", "01612345678", true},
		{"019-1234-5678", "01912345678", true},
		{"02-123-4567", "021234567", true},
		{"(02) 123-4567", "021234567", true},
		{"02-1234-5678", "0212345678", true},
		{"+82 2 1234 5678", "0212345678", true},
		{"031-123-4567", "0311234567", true},
		{"044-123-4567", "0441234567", true},
		{"055-123-4567", "0551234567", true},
		{"064-1234-5678", "06412345678", true},
		{"070-1234-5678", "07012345678", true},
		{"080-123-4567", "0801234567", true},
		{"0505-123-4567", "05051234567", true},
		{"1588-1234", "15881234", true},
		{"1688-1234", "16881234", true},
		{"010-1234-567", "", false},    // mobile numbers have 11 digits
		{"010-1234-56789", "", false},  // too long
		{"02-12-345", "", false},       // too short
		{"035-123-4567", "", false},    // no such area code
		{"045-123-4567", "", false},    // no such area code
		{"056-123-4567", "", false},    // no such area code
		{"065-123-4567", "", false},    // no such area code
		{"+1 415 555 0100", "", false}, // not Korean
		{"010-1234-5678x", "", false},  // letters
		{"010+1234+5678", "", false},   // plus inside
		{"0+10", "", false},            // plus inside
		{"12", "", false},              //
		{"", "", false},                //
		{"1234-5678", "", false},       // no prefix
		{"１０1234", "", false},          // full-width digits
		{strings.Repeat("0", 50), "", false},
	} {
		got, ok := kipass.NormalizePhone(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("NormalizePhone(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestNormalizeSafeNumber(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"1234가나", "1234가나", true},
		{" 1234 가나 ", "1234가나", true},
		{"12 34-가나", "1234가나", true},
		{"12가34나", "12가34나", true}, // digits and syllables in any order
		{"가1나234", "가1나234", true},
		{"1234ab", "", false},
		{"123가나", "", false},
		{"12345가", "", false},
		{"12345가나", "", false},
		{"1234가", "", false},
		{"1234가나다", "", false},
		{"１２３４가나", "", false}, // full-width digits
		{"1234ㄱㄴ", "", false}, // jamo, not syllables
		{"1234\xff\xfe", "", false},
		{"", "", false},
	} {
		got, ok := kipass.NormalizeSafeNumber(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeSafeNumber(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
