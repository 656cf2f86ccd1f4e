package main

import (
	"time"

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

// checkSafeNumber returns a personal safe number (개인안심번호) without the spaces and
// hyphens staff may type, or "" when it is not four ASCII digits and two Hangul
// syllables: kipass.NormalizeSafeNumber, the check central applies.
func checkSafeNumber(s string) string {
	n, _ := kipass.NormalizeSafeNumber(s)
	return n
}
