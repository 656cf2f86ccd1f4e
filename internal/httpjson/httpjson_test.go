package httpjson

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

func TestFieldName(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   jsontext.Pointer
		want string
	}{
		{"Empty", "", "body"},
		{"Member", "/phone", "phone"},
		{"Nested", "/subject/phone", "subject.phone"},
		{"Index", "/visits/3/at", "visits[3].at"},
		{"TopLevelIndex", "/0", "0"},
		{"Escaped", "/a~1b/c~0d", "a/b.c~d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FieldName(tc.in); got != tc.want {
				t.Errorf("FieldName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestKindName(t *testing.T) {
	for k, want := range map[jsontext.Kind]string{
		'n': "null", 'f': "boolean", 't': "boolean", '"': "string", '0': "number",
		'{': "object", '[': "array", 0: "value",
	} {
		if got := KindName(k); got != want {
			t.Errorf("KindName(%q) = %q, want %q", k, got, want)
		}
	}
}

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		write   func(http.ResponseWriter, int, any)
		noStore bool
	}{
		{"Write", Write, false},
		{"WritePrivate", WritePrivate, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.write(rec, http.StatusCreated, map[string]int{"n": 1})
			if rec.Code != http.StatusCreated || rec.Body.String() != "{\"n\":1}\n" {
				t.Fatalf("answer %d %q", rec.Code, rec.Body.String())
			}
			h := rec.Header()
			if h.Get("Content-Type") != "application/json" || h.Get("Content-Length") != "8" {
				t.Errorf("headers %v", h)
			}
			if got := h.Get("Cache-Control") == "no-store"; got != tc.noStore {
				t.Errorf("Cache-Control = %q", h.Get("Cache-Control"))
			}
		})
	}
	rec := httptest.NewRecorder()
	Write(rec, http.StatusOK, func() {})
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("an unencodable value answers %d", rec.Code)
	}
}
