package http

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/kipass/kipass"
	"github.com/kipass/kipass/internal/httpjson"
)

// writeJSON writes v with the status. Encoding errors cannot reach the client any more.
func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

// decodeJSON decodes a request body of at most limit bytes into v, refusing unknown
// fields, duplicate names, trailing data and malformed values with an error that names
// the field.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	return decodeOptionalJSON(w, r, limit, v, false)
}

// decodeOptionalJSON is decodeJSON for a body that may also be left out (optional set).
func decodeOptionalJSON(w http.ResponseWriter, r *http.Request, limit int64, v any, optional bool) error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return jsonError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return kipass.Errorf(kipass.EINVALID, "the body is empty: want a JSON object")
	}
	if err := jsonv2.Unmarshal(body, v, strictJSON); err != nil {
		return jsonError(err)
	}
	return nil
}

// strictJSON is how every request body is decoded: unknown members are refused.
var strictJSON = jsonv2.RejectUnknownMembers(true)

// jsonError turns a decoding error into a domain error that names the field.
func jsonError(err error) error {
	var (
		maxErr *http.MaxBytesError
		semErr *jsonv2.SemanticError
		synErr *jsontext.SyntacticError
		domErr *kipass.Error
	)
	switch {
	case errors.As(err, &maxErr):
		return kipass.Errorf(kipass.EINVALID, "the body is larger than %d bytes", maxErr.Limit)
	case errors.As(err, &semErr):
		field := httpjson.FieldName(semErr.JSONPointer)
		var perr *time.ParseError
		switch {
		case errors.Is(semErr.Err, jsonv2.ErrUnknownName):
			return kipass.FieldErrorf(field, "unknown field")
		case errors.As(semErr.Err, &perr):
			return kipass.FieldErrorf(field, "a time must be RFC 3339, e.g. 2022-01-06T12:00:00+09:00")
		case semErr.Err != nil && strings.Contains(semErr.Err.Error(), "base64"):
			return kipass.FieldErrorf(field, "malformed base64")
		case errors.As(semErr.Err, &domErr):
			return kipass.FieldErrorf(field, "%s", domErr.Message)
		case semErr.GoType != nil && semErr.JSONKind != 0:
			return kipass.FieldErrorf(field, "must be %s, not a JSON %s", jsonTypeName(semErr.GoType.String()), httpjson.KindName(semErr.JSONKind))
		}
		return kipass.FieldErrorf(field, "malformed value")
	case errors.As(err, &synErr):
		if errors.Is(synErr.Err, jsontext.ErrDuplicateName) {
			return kipass.FieldErrorf(httpjson.FieldName(synErr.JSONPointer), "given twice")
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return kipass.Errorf(kipass.EINVALID, "the body ends in the middle of a JSON value")
		}
		return kipass.Errorf(kipass.EINVALID, "malformed JSON at byte %d", synErr.ByteOffset)
	case errors.As(err, &domErr):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return kipass.Errorf(kipass.EINVALID, "the body ends in the middle of a JSON value")
	}
	return kipass.Errorf(kipass.EINVALID, "malformed JSON")
}

func jsonTypeName(goType string) string {
	switch {
	case goType == "[]uint8":
		return "a base64 string"
	case goType == "string", goType == "time.Time", strings.HasSuffix(goType, "Duration"), strings.HasSuffix(goType, "Date"):
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "a boolean"
	}
	return "an object"
}
