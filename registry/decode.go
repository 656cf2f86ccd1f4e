package registry

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/kipass/kipass"
	"github.com/kipass/kipass/internal/httpjson"
)

// personDoc is a person record as a request body or a JSON line carries it. Pointers
// tell a missing value from a zero one.
type personDoc struct {
	PersonID   *string       `json:"person_id"`
	BirthDate  *kipass.Date  `json:"birth_date"`
	Doses      []doseDoc     `json:"doses"`
	Tests      []testDoc     `json:"tests"`
	Recoveries []kipass.Date `json:"recoveries"`
	Exemptions []Exemption   `json:"exemptions"`
	UpdatedAt  *time.Time    `json:"updated_at"` // accepted so that a record read can be written back; ignored
}

type doseDoc struct {
	Date    *kipass.Date `json:"date"`
	Product string       `json:"product"`
}

type testDoc struct {
	Kind   string     `json:"kind"`
	Result string     `json:"result"`
	At     *time.Time `json:"at"`
}

// recoveryDoc is the body of POST /v1/persons/{id}/recoveries.
type recoveryDoc struct {
	Date *kipass.Date `json:"date"`
}

// person turns the document into a record, refusing missing required values. It does
// not validate the values: Person.Validate does.
func (d *personDoc) person() (*Person, error) {
	p := &Person{}
	if d.PersonID != nil {
		p.PersonID = *d.PersonID
	}
	if d.BirthDate == nil {
		return nil, kipass.FieldErrorf("birth_date", "missing")
	}
	p.BirthDate = *d.BirthDate
	for i, dd := range d.Doses {
		dose, err := dd.dose(indexField("doses", i))
		if err != nil {
			return nil, err
		}
		p.Doses = append(p.Doses, dose)
	}
	for i, td := range d.Tests {
		t, err := td.test(indexField("tests", i))
		if err != nil {
			return nil, err
		}
		p.Tests = append(p.Tests, t)
	}
	p.Recoveries = d.Recoveries
	p.Exemptions = d.Exemptions
	return p, nil
}

func (d *doseDoc) dose(prefix string) (kipass.Dose, error) {
	if d.Date == nil {
		return kipass.Dose{}, kipass.FieldErrorf(join(prefix, "date"), "missing")
	}
	return kipass.Dose{Date: *d.Date, Product: d.Product}, nil
}

func (d *testDoc) test(prefix string) (kipass.Test, error) {
	if d.At == nil {
		return kipass.Test{}, kipass.FieldErrorf(join(prefix, "at"), "missing")
	}
	return kipass.Test{Kind: d.Kind, Result: d.Result, At: *d.At}, nil
}

// decodeStrict decodes one JSON value into v, refusing unknown members, duplicate
// names, trailing data and malformed values with an EINVALID error naming the field.
func decodeStrict(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return kipass.Errorf(kipass.EINVALID, "empty: want a JSON object")
	}
	if err := jsonv2.Unmarshal(data, v, strictJSON); err != nil {
		return jsonError(err)
	}
	return nil
}

// strictJSON refuses unknown members and reads dates with a message that names the
// expected form.
var strictJSON = jsonv2.JoinOptions(
	jsonv2.RejectUnknownMembers(true),
	jsonv2.WithUnmarshalers(jsonv2.UnmarshalFunc(func(b []byte, d *kipass.Date) error {
		s, err := strconv.Unquote(string(b))
		if err != nil || len(b) == 0 || b[0] != '"' {
			return kipass.Errorf(kipass.EINVALID, "must be a date string of the form YYYY-MM-DD")
		}
		v, err := kipass.ParseDate(s)
		if err != nil {
			return kipass.Errorf(kipass.EINVALID, "%q is not a date of the form YYYY-MM-DD", s)
		}
		*d = v
		return nil
	})),
)

// jsonError turns a decoding error into an EINVALID error that names the field.
func jsonError(err error) error {
	var (
		semErr *jsonv2.SemanticError
		synErr *jsontext.SyntacticError
		domErr *kipass.Error
		tErr   *time.ParseError
	)
	switch {
	case errors.As(err, &semErr):
		field := httpjson.FieldName(semErr.JSONPointer)
		switch {
		case errors.Is(semErr.Err, jsonv2.ErrUnknownName):
			return kipass.FieldErrorf(field, "unknown field")
		case errors.As(semErr.Err, &domErr):
			return kipass.FieldErrorf(field, "%s", domErr.Message)
		case errors.As(semErr.Err, &tErr):
			return kipass.FieldErrorf(field, "%q is not an RFC 3339 time such as 2022-01-20T10:00:00+09:00", tErr.Value)
		case semErr.GoType != nil && semErr.JSONKind != 0:
			return kipass.FieldErrorf(field, "must be %s, not a JSON %s", typeName(semErr.GoType.String()), httpjson.KindName(semErr.JSONKind))
		}
		return kipass.FieldErrorf(field, "malformed value")
	case errors.As(err, &synErr):
		if errors.Is(synErr.Err, jsontext.ErrDuplicateName) {
			return kipass.FieldErrorf(httpjson.FieldName(synErr.JSONPointer), "given twice")
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return kipass.Errorf(kipass.EINVALID, "the JSON ends in the middle of a value")
		}
		return kipass.Errorf(kipass.EINVALID, "malformed JSON at byte %d", synErr.ByteOffset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return kipass.Errorf(kipass.EINVALID, "the JSON ends in the middle of a value")
	}
	return kipass.Errorf(kipass.EINVALID, "malformed JSON")
}

func typeName(goType string) string {
	goType = strings.TrimPrefix(goType, "*")
	switch {
	case goType == "string", goType == "time.Time", goType == "kipass.Date":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return "an object"
}
