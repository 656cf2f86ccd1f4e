package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/kipass/kipass"
)

// The decoder below is stricter than encoding/json, and every error names the JSON path
// of the value at fault ("suspensions[2].from", "holder.doses[0].product"), because a
// rule document or a case is written by hand and "json: unknown field" alone does not
// say where. It refuses unknown and duplicate keys (a signed document must not mean
// different things to different parsers), matches keys case-sensitively, and reads
// kipass.Date and time.Time with plain-language errors.

var (
	dateType = reflect.TypeFor[kipass.Date]()
	timeType = reflect.TypeFor[time.Time]()
)

// decodeStrict decodes the single JSON value in data into v, a pointer to a struct.
func decodeStrict(data []byte, v any) error {
	if err := json.Unmarshal(data, new(json.RawMessage)); err != nil {
		return syntaxError(data, err)
	}
	return decodeValue(bytes.TrimSpace(data), reflect.ValueOf(v).Elem(), "")
}

// syntaxError turns a JSON syntax error into one line that gives the line and column.
func syntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	if strings.Contains(err.Error(), "unexpected end of JSON input") {
		return kipass.Errorf(kipass.EINVALID, "invalid JSON: unexpected end of input")
	}
	if errors.As(err, &se) {
		// Offset counts the bytes read, the offending one included.
		pos := min(max(int(se.Offset)-1, 0), len(data))
		line := 1 + bytes.Count(data[:pos], []byte("\n"))
		col := pos - bytes.LastIndexByte(data[:pos], '\n')
		msg := strings.TrimPrefix(se.Error(), "json: ")
		return kipass.Errorf(kipass.EINVALID, "invalid JSON at line %d, column %d: %s", line, col, msg)
	}
	return kipass.Errorf(kipass.EINVALID, "invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// pathError returns a domain error naming the JSON path; the root has no name.
func pathError(path, format string, args ...any) error {
	if path == "" {
		return kipass.Errorf(kipass.EINVALID, format, args...)
	}
	return kipass.FieldErrorf(path, format, args...)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func decodeValue(raw []byte, v reflect.Value, path string) error {
	if string(raw) == "null" {
		return nil // absent: pointers stay nil, other values keep their zero
	}
	switch v.Type() {
	case dateType:
		var s string
		if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return pathError(path, "must be a date string of the form YYYY-MM-DD")
		}
		d, err := kipass.ParseDate(s)
		if err != nil {
			return pathError(path, "%q is not a date of the form YYYY-MM-DD", s)
		}
		v.Set(reflect.ValueOf(d))
		return nil
	case timeType:
		var s string
		if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return pathError(path, "must be a time string such as 2022-01-12T18:00:00+09:00")
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return pathError(path, "%q is not a time of the form 2022-01-12T18:00:00+09:00 (RFC 3339, with its offset)", s)
		}
		v.Set(reflect.ValueOf(t))
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := decodeValue(raw, p.Elem(), path); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		return decodeObject(raw, v, path)
	case reflect.Slice:
		if raw[0] != '[' {
			return pathError(path, "must be an array")
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return pathError(path, "must be an array")
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			if err := decodeValue(item, s.Index(i), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.String:
		if raw[0] != '"' || json.Unmarshal(raw, v.Addr().Interface()) != nil {
			return pathError(path, "must be a string")
		}
		return nil
	case reflect.Int:
		if json.Unmarshal(raw, v.Addr().Interface()) != nil {
			return pathError(path, "must be an integer")
		}
		return nil
	case reflect.Bool:
		if json.Unmarshal(raw, v.Addr().Interface()) != nil {
			return pathError(path, "must be true or false")
		}
		return nil
	}
	panic("policy: decodeValue cannot decode " + v.Type().String())
}

func decodeObject(raw []byte, v reflect.Value, path string) error {
	if raw[0] != '{' {
		return pathError(path, "must be an object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return pathError(path, "must be an object")
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return pathError(path, "must be an object")
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return pathError(path, "must be an object")
		}
		sub := joinPath(path, pathKey(key))
		if seen[key] {
			return pathError(sub, "duplicate field")
		}
		seen[key] = true
		idx := fieldByTag(v.Type(), key)
		if idx < 0 {
			return pathError(sub, "unknown field")
		}
		if err := decodeValue(val, v.Field(idx), sub); err != nil {
			return err
		}
	}
	return nil
}

// pathKey returns key as it appears in a path: as is when it is a plain name, quoted
// otherwise, so that an error message stays on one line.
func pathKey(key string) string {
	for i := range len(key) {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return strconv.Quote(key)
		}
	}
	if key == "" {
		return `""`
	}
	return key
}

// fieldByTag returns the index of the field whose json tag name is exactly key, or -1.
func fieldByTag(t reflect.Type, key string) int {
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == key && name != "" && name != "-" {
			return i
		}
	}
	return -1
}
