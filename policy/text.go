package policy

import (
	"strings"

	"github.com/kipass/kipass"
)

// basisTexts holds the words a scanner screen shows for each basis: Korean, English.
var basisTexts = map[string][2]string{
	kipass.BasisBooster:             {"추가접종(부스터)", "booster dose"},
	kipass.BasisVaccinated:          {"접종 완료", "vaccinated"},
	kipass.BasisRecovered:           {"완치자", "recovered"},
	kipass.BasisNegativePCR:         {"PCR 음성확인", "negative PCR test"},
	kipass.BasisNegativeRAT:         {"신속항원검사 음성확인", "negative rapid antigen test"},
	kipass.BasisMinor:               {"미성년자", "minor"},
	kipass.BasisMedicalExemption:    {"접종 예외자(의학적 사유)", "medical exemption"},
	kipass.BasisRestaurantException: {"미접종자 이용 예외(식당·카페)", "restaurant exception"},

	BasisNotVaccinated:    {"미접종", "not vaccinated"},
	BasisSeriesIncomplete: {"기본접종 미완료", "primary series not complete"},
	BasisTooEarly:         {"접종 후 대기 기간 중", "waiting period after vaccination not over"},
	BasisExpired:          {"접종 유효기간 만료", "vaccination expired"},
	BasisRecoveryExpired:  {"완치 후 유효기간 만료", "recovery no longer valid"},
	BasisNoValidTest:      {"유효한 음성확인 없음", "no valid negative test"},

	BasisCategoryNotCovered: {"방역패스 적용 시설 아님", "pass not required at this facility"},
	BasisNotYetInForce:      {"방역패스 시행 전", "pass not yet in force"},
	BasisSuspended:          {"방역패스 적용 중단", "pass suspended"},
}

// BasisText returns the short words for a decision's basis that a scanner screen shows,
// in Korean for lang "ko" and in English otherwise. A basis that a rule document adds
// (a new test kind or exemption) gets a generic text; an unknown one is returned as is.
func BasisText(basis, lang string) string {
	i := 1
	if lang == "ko" {
		i = 0
	}
	if t, ok := basisTexts[basis]; ok {
		return t[i]
	}
	if kind, ok := strings.CutPrefix(basis, "negative_"); ok {
		return [2]string{kind + " 음성확인", "negative " + kind + " test"}[i]
	}
	if kind, ok := strings.CutSuffix(basis, "_exemption"); ok {
		return [2]string{"접종 예외자(" + kind + ")", kind + " exemption"}[i]
	}
	return basis
}
