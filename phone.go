package kipass

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// NormalizePhone turns a Korean phone number as people write it (010-1234-5678,
// 01012345678, +82 10 1234 5678, 02-123-4567, 080-123-4567, 1588-1234) into its
// domestic digits, and reports whether it is a well-formed number. Central, the
// issuer and the browser scanner all use it, so that they agree on what a number is.
func NormalizePhone(s string) (string, bool) {
	if len(s) > 40 {
		return "", false
	}
	b := make([]byte, 0, 16)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			b = append(b, c)
		case c == '+' && len(b) == 0:
			b = append(b, c)
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", false
		}
	}
	d := string(b)
	if rest, ok := strings.CutPrefix(d, "+82"); ok {
		d = "0" + strings.TrimPrefix(rest, "0")
	} else if rest, ok := strings.CutPrefix(d, "0082"); ok {
		d = "0" + strings.TrimPrefix(rest, "0")
	} else if strings.HasPrefix(d, "+") {
		return "", false
	}
	n := len(d)
	switch {
	case n == 8 && (strings.HasPrefix(d, "15") || strings.HasPrefix(d, "16") || strings.HasPrefix(d, "18")):
		return d, true // nationwide representative numbers (대표번호)
	case n < 9 || d[0] != '0':
		return "", false
	case strings.HasPrefix(d, "010"):
		return d, n == 11
	case d[1] == '1' && strings.ContainsRune("16789", rune(d[2])):
		return d, n == 10 || n == 11 // old mobile prefixes
	case strings.HasPrefix(d, "02"):
		return d, n == 9 || n == 10 // Seoul
	case strings.HasPrefix(d, "070"):
		return d, n == 11 // internet telephony
	case strings.HasPrefix(d, "080"):
		return d, n == 10 // toll-free: what 안심콜 numbers were
	case strings.HasPrefix(d, "050"):
		return d, n == 11 || n == 12 // personal safe numbers (050x)
	case areaCode(d):
		return d, n == 10 || n == 11
	}
	return "", false
}

// areaCode reports whether d, at least 3 digits long, starts with a provincial area
// code (031-033, 041-044, 051-055, 061-064).
func areaCode(d string) bool {
	switch d[1] {
	case '3':
		return d[2] >= '1' && d[2] <= '3'
	case '4':
		return d[2] >= '1' && d[2] <= '4'
	case '5':
		return d[2] >= '1' && d[2] <= '5'
	case '6':
		return d[2] >= '1' && d[2] <= '4'
	}
	return false
}

// NormalizeSafeNumber returns a personal safe number (개인안심번호) as a person writes
// it ("1234 가나", "12-34가나") without its spaces and hyphens, and reports whether it
// is well formed: six characters, four ASCII digits and two precomposed Hangul
// syllables, in any order (any syllables, so that numbers stay valid if the issuer's
// list changes).
func NormalizeSafeNumber(s string) (string, bool) {
	if strings.IndexFunc(s, isSafeNumberSeparator) >= 0 {
		s = strings.Map(func(r rune) rune {
			if isSafeNumberSeparator(r) {
				return -1
			}
			return r
		}, s)
	}
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) != 6 {
		return "", false
	}
	digits, syllables := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r >= 0xAC00 && r <= 0xD7A3:
			syllables++
		}
	}
	if digits != 4 || syllables != 2 {
		return "", false
	}
	return s, true
}

func isSafeNumberSeparator(r rune) bool { return r == '-' || unicode.IsSpace(r) }
