package subject

import (
	"crypto/rand"
	"math/big"
	"strconv"
	"strings"

	"github.com/kipass/kipass"
)

// CommonSyllables are the Hangul syllables safe numbers draw from: common, plain
// syllables (no final consonant) that are hard to misread when handwritten.
var CommonSyllables = strings.Fields(`
	가 나 다 라 마 바 사 아 자 차 카 타 파 하
	거 너 더 러 머 버 서 어 저 처 커 터 퍼 허
	고 노 도 로 모 보 소 오 조 초 코 토 포 호
	구 누 두 루 무 부 수 우 주 추 쿠 투 푸 후
	그 느 드 르 므 브 스 으 즈 츠 크 트 프 흐
	기 니 디 리 미 비 시 이 지 치 키 티 피 히`)

// SafeNumbers makes personal safe numbers (개인안심번호): 4 digits then 2 Hangul
// syllables, such as "1234가나". The zero value uses every 4-digit value and
// CommonSyllables: 10⁴ × 84² ≈ 7 × 10⁷ numbers. Tests shrink the space to force
// collisions.
type SafeNumbers struct {
	Syllables []string // default CommonSyllables
	Values    int      // how many 4-digit values are used, from 0000 (default and at most 10000)
}

// New returns a random safe number. Uniqueness is the caller's: retry on a collision.
func (s SafeNumbers) New() string {
	syl := s.Syllables
	if len(syl) == 0 {
		syl = CommonSyllables
	}
	values := s.Values
	if values <= 0 || values > 10000 {
		values = 10000
	}
	digits := strconv.Itoa(10000 + randInt(values))[1:]
	return digits + syl[randInt(len(syl))] + syl[randInt(len(syl))]
}

// Space returns how many distinct numbers s can make.
func (s SafeNumbers) Space() int {
	n := len(s.Syllables)
	if n == 0 {
		n = len(CommonSyllables)
	}
	v := s.Values
	if v <= 0 || v > 10000 {
		v = 10000
	}
	return v * n * n
}

func randInt(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return int(v.Int64())
}

// NormalizeSafeNumber returns the canonical form of a safe number as a person writes it
// ("1234 가나", " 1234가나 ") and whether it is well formed (kipass.NormalizeSafeNumber)
// in the form this issuer makes: the 4 digits first, then the 2 syllables.
func NormalizeSafeNumber(s string) (string, bool) {
	s, ok := kipass.NormalizeSafeNumber(s)
	if !ok || strings.IndexFunc(s[:4], func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return "", false
	}
	return s, true
}
