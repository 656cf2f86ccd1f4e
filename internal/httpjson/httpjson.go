// Package httpjson holds the JSON plumbing that central (http), the issuer and the
// registry share: writing a JSON answer, and naming the field a decoding error is
// about. Each server keeps its own error messages and error body shape.
package httpjson

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// Write writes v as a JSON answer with the status. Encoding errors cannot reach the
// client any more: they answer a generic internal error instead.
func Write(w http.ResponseWriter, status int, v any) { write(w, status, v, false) }

// WritePrivate is Write for an answer that must never be cached (Cache-Control:
// no-store), as it carries passes, personal data or credentials.
func WritePrivate(w http.ResponseWriter, status int, v any) { write(w, status, v, true) }

func write(w http.ResponseWriter, status int, v any, noStore bool) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"code":"internal","message":"internal error"}}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if noStore {
		h.Set("Cache-Control", "no-store")
	}
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// FieldName turns the JSON pointer of a decoding error ("/visits/3/at") into the field
// path an error message names ("visits[3].at"); the empty pointer is "body".
func FieldName(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.ParseUint(tok, 10, 32); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	if b.Len() == 0 {
		return "body"
	}
	return b.String()
}

// KindName names a JSON kind as an error message does: "null", "boolean", "string",
// "number", "object", "array", or "value" for any other.
func KindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 'f', 't':
		return "boolean"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "value"
}
