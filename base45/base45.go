// Package base45 implements the Base45 encoding of RFC 9285, whose alphabet is the QR
// code alphanumeric set, so that binary data rides in the denser alphanumeric mode.
//
// It is written here rather than imported because no widely used, maintained module
// exists for it; the encoding is a page of code and is fuzzed against its own decoder.
package base45

import (
	"errors"
	"strconv"
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

var decodeMap = func() [256]int8 {
	var m [256]int8
	for i := range m {
		m[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		m[alphabet[i]] = int8(i)
	}
	return m
}()

// EncodedLen returns the length of the encoding of n bytes.
func EncodedLen(n int) int { return n/2*3 + n%2*2 }

// Encode returns the Base45 encoding of src.
func Encode(src []byte) string {
	dst := make([]byte, 0, EncodedLen(len(src)))
	return string(AppendEncode(dst, src))
}

// AppendEncode appends the Base45 encoding of src to dst.
func AppendEncode(dst, src []byte) []byte {
	for i := 0; i+1 < len(src); i += 2 {
		n := int(src[i])<<8 | int(src[i+1])
		dst = append(dst, alphabet[n%45], alphabet[n/45%45], alphabet[n/2025])
	}
	if len(src)%2 == 1 {
		n := int(src[len(src)-1])
		dst = append(dst, alphabet[n%45], alphabet[n/45])
	}
	return dst
}

// CorruptInputError reports the offset of the first invalid character or group.
type CorruptInputError int

func (e CorruptInputError) Error() string {
	return "base45: illegal data at input byte " + strconv.Itoa(int(e))
}

// ErrLength reports an input whose length leaves a single trailing character.
var ErrLength = errors.New("base45: invalid input length")

// DecodeString returns the bytes encoded by s.
func DecodeString(s string) ([]byte, error) {
	if len(s)%3 == 1 {
		return nil, ErrLength
	}
	dst := make([]byte, 0, len(s)/3*2+1)
	for i := 0; i < len(s); i += 3 {
		c, d := decodeMap[s[i]], decodeMap[s[i+1]]
		if c < 0 {
			return nil, CorruptInputError(i)
		}
		if d < 0 {
			return nil, CorruptInputError(i + 1)
		}
		if i+2 == len(s) {
			n := int(c) + int(d)*45
			if n > 0xff {
				return nil, CorruptInputError(i)
			}
			dst = append(dst, byte(n))
			break
		}
		e := decodeMap[s[i+2]]
		if e < 0 {
			return nil, CorruptInputError(i + 2)
		}
		n := int(c) + int(d)*45 + int(e)*2025
		if n > 0xffff {
			return nil, CorruptInputError(i)
		}
		dst = append(dst, byte(n>>8), byte(n))
	}
	return dst, nil
}
