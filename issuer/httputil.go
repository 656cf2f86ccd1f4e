package issuer

import (
	"crypto/sha256"
	"crypto/subtle"
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

// MaxBodySize bounds every request body.
const MaxBodySize = 64 << 10

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is a domain error as a client sees it. Reason, when present, is a stable
// machine-readable refinement of Code, such as "registry_unavailable".
type ErrorBody struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
}

// reasonError is a domain error with a stable reason.
type reasonError struct {
	err    *kipass.Error
	reason string
}

// Error implements the error interface.
func (e *reasonError) Error() string { return e.err.Error() + " reason=" + e.reason }

// Unwrap returns the domain error, so that kipass.ErrorCode finds its code.
func (e *reasonError) Unwrap() error { return e.err }

// statuses maps domain error codes to HTTP statuses: the one place in the issuer that
// does.
var statuses = map[string]int{
	kipass.EINVALID:      http.StatusBadRequest,
	kipass.EUNAUTHORIZED: http.StatusUnauthorized,
	kipass.EFORBIDDEN:    http.StatusForbidden,
	kipass.ENOTFOUND:     http.StatusNotFound,
	kipass.ECONFLICT:     http.StatusConflict,
	kipass.ETOOMANY:      http.StatusTooManyRequests,
	kipass.EUNAVAILABLE:  http.StatusServiceUnavailable,
	kipass.EINTERNAL:     http.StatusInternalServerError,
}

// writeError answers err as JSON. Internal errors are logged and answered with a
// generic message. Error texts never carry a personal datum, so logging them is safe.
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := kipass.ErrorCode(err), kipass.ErrorMessage(err)
	switch code {
	case kipass.EINTERNAL:
		s.log.Error("internal error", "route", r.Pattern, "err", err)
	case kipass.EUNAVAILABLE:
		s.log.Warn("unavailable", "route", r.Pattern, "err", err)
	}
	status, ok := statuses[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "5")
	}
	body := ErrorBody{Code: code, Field: kipass.ErrorField(err), Message: msg}
	var re *reasonError
	if errors.As(err, &re) {
		body.Reason = re.reason
	}
	writeJSON(w, status, &ErrorResponse{Error: body})
}

// writeJSON writes v with the status; answers are never cached, as they carry passes
// and personal data.
func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.WritePrivate(w, status, v) }

// strictJSON refuses unknown members.
var strictJSON = jsonv2.RejectUnknownMembers(true)

// decodeJSON decodes a request body of at most MaxBodySize bytes into v, refusing
// unknown fields, duplicates, trailing data and malformed values with an error that
// names the field.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeJSONLimit(w, r, MaxBodySize, v)
}

// decodeJSONLimit is decodeJSON with another size limit.
func decodeJSONLimit(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return jsonError(err)
	}
	if len(body) == 0 {
		return kipass.Errorf(kipass.EINVALID, "the body is empty: want a JSON object")
	}
	if err := jsonv2.Unmarshal(body, v, strictJSON); err != nil {
		return jsonError(err)
	}
	return nil
}

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
		switch {
		case errors.Is(semErr.Err, jsonv2.ErrUnknownName):
			return kipass.FieldErrorf(field, "unknown field")
		case errors.As(semErr.Err, &domErr):
			return kipass.FieldErrorf(field, "%s", domErr.Message)
		case semErr.Err != nil && strings.Contains(semErr.Err.Error(), "base64"):
			return kipass.FieldErrorf(field, "malformed base64")
		case semErr.Err != nil && strings.Contains(semErr.Err.Error(), "YYYY-MM-DD"):
			return kipass.FieldErrorf(field, "a date must be of the form YYYY-MM-DD")
		case semErr.JSONKind != 0:
			return kipass.FieldErrorf(field, "wrong type: a JSON %s is not accepted here", httpjson.KindName(semErr.JSONKind))
		}
		return kipass.FieldErrorf(field, "malformed value")
	case errors.As(err, &synErr):
		if errors.Is(synErr.Err, jsontext.ErrDuplicateName) {
			return kipass.FieldErrorf(httpjson.FieldName(synErr.JSONPointer), "given twice")
		}
		return kipass.Errorf(kipass.EINVALID, "malformed JSON at byte %d", synErr.ByteOffset)
	case errors.As(err, &domErr):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return kipass.Errorf(kipass.EINVALID, "the body ends in the middle of a JSON value")
	}
	return kipass.Errorf(kipass.EINVALID, "malformed JSON")
}

// bearerToken returns the bearer credential of r, or "".
func bearerToken(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// tokenEqual compares two secrets in time independent of where they differ.
func tokenEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

func errUnauthorized(what string) error {
	return kipass.Errorf(kipass.EUNAUTHORIZED, "missing or unknown %s: send Authorization: Bearer <token>", what)
}

// queryTime parses an optional RFC 3339 query parameter.
func queryTime(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return def, kipass.FieldErrorf(name, "a time must be RFC 3339, e.g. 2022-01-27T12:00:00+09:00")
	}
	return t, nil
}
