package main

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/scanner"
)

// refusalTexts are the words the scanner screen shows for each refusal: Korean and
// English. The English detail of the scanner package is more precise and is used when
// there is one.
var refusalTexts = map[string][2]string{
	scanner.RefusalMalformed:    {"키패스 QR이 아닙니다.", "This is not a kipass pass."},
	scanner.RefusalUnknownKey:   {"알 수 없는 발급기관의 QR입니다. 신뢰 목록을 갱신해 주세요.", "The pass is signed by an issuer this scanner does not know; update the trust bundle."},
	scanner.RefusalRevokedKey:   {"폐기된 발급기관 키로 서명된 QR입니다.", "The issuer key of this pass has been revoked."},
	scanner.RefusalBadSignature: {"서명이 올바르지 않습니다. 위조되었거나 변조된 QR입니다.", "The pass's signature does not verify: it was altered or forged."},
	scanner.RefusalExpired:      {"유효시간이 지난 QR입니다. QR을 새로 고쳐 다시 보여 주세요.", "The pass has expired; ask the visitor to refresh it."},
	scanner.RefusalNotYetValid:  {"아직 유효하지 않은 QR입니다. 스캐너의 시계를 확인해 주세요.", "The pass is not valid yet; check the scanner's clock."},
	scanner.RefusalReplayed:     {"이미 사용된 QR입니다. QR을 새로 고쳐 다시 보여 주세요.", "This pass was already shown here; ask the visitor to refresh it."},
	scanner.RefusalBadInput:     {"시설 정보가 올바르지 않습니다. 기기를 다시 등록해 주세요.", "The facility's category or region is wrong; enrol the device again."},
	RefusalNoBundle:             {"신뢰 목록이 없습니다. 인터넷에 연결해 신뢰 목록을 받아 주세요.", "No trust bundle yet: connect once to download it."},
}

// refusalText returns the words for a refusal in lang ("ko" or English); detail, when
// given, is the scanner's own English sentence.
func refusalText(refusal, lang, detail string) string {
	t, ok := refusalTexts[refusal]
	switch {
	case lang == "ko" && ok:
		return t[0]
	case lang != "ko" && detail != "":
		return detail
	case ok:
		return t[1]
	case lang == "ko":
		return "확인할 수 없는 QR입니다."
	}
	return "The pass could not be checked."
}

// untilText writes the end of a basis in KST as the scanner shows it: "01-28 24:00까지"
// for the end of 28 January, which the rules store as 00:00 of the 29th.
func untilText(t time.Time, lang string) string {
	k := t.In(kipass.KST)
	var s string
	if k.Hour() == 0 && k.Minute() == 0 && k.Second() == 0 {
		s = k.AddDate(0, 0, -1).Format("01-02") + " 24:00"
	} else {
		s = k.Format("01-02 15:04")
	}
	if lang == "ko" {
		return s + "까지"
	}
	return "until " + s
}

// normalizePhone turns a Korean phone number as people write it into its domestic
// digits and reports whether it is well formed. It agrees with central's
// http.NormalizePhone (a test checks), which the module cannot import: that package
// pulls the whole server into the browser.
func normalizePhone(s string) (string, bool) {
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
		return d, true
	case n < 9 || d[0] != '0':
		return "", false
	case strings.HasPrefix(d, "010"):
		return d, n == 11
	case d[1] == '1' && strings.ContainsRune("16789", rune(d[2])):
		return d, n == 10 || n == 11
	case strings.HasPrefix(d, "02"):
		return d, n == 9 || n == 10
	case strings.HasPrefix(d, "070"):
		return d, n == 11
	case strings.HasPrefix(d, "080"):
		return d, n == 10
	case strings.HasPrefix(d, "050"):
		return d, n == 11 || n == 12
	case areaCode(d):
		return d, n == 10 || n == 11
	}
	return "", false
}

// areaCode reports whether d starts with a provincial area code (031-033, 041-044,
// 051-055, 061-064).
func areaCode(d string) bool {
	last := map[byte]byte{'3': '3', '4': '4', '5': '5', '6': '4'}[d[1]]
	return last != 0 && d[2] >= '1' && d[2] <= last
}

// checkSafeNumber returns a personal safe number (개인안심번호) without the spaces and
// hyphens staff may type, or "" when it is not four ASCII digits and two Hangul
// syllables, the check central applies.
func checkSafeNumber(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) != 6 {
		return ""
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
		return ""
	}
	return s
}
