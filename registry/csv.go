package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kipass/kipass"
)

// CSVColumns are the columns of the CSV format, in the order synth writes them. A file
// may order them as it likes and leave out all but person_id and birth_date; the
// header names them ("exemption" is accepted for "exemptions"). Cells that hold lists
// separate the items with ';':
//
//	person_id   R-0001
//	birth_date  1984-03-02
//	doses       2021-06-10:pfizer;2021-07-22:pfizer      DATE:PRODUCT
//	tests       pcr:negative:2022-01-20T10:00:00+09:00   KIND:RESULT:RFC 3339 time
//	recoveries  2021-12-20                                days of release from isolation
//	exemptions  medical or medical:2021-12-01             KIND or KIND:FROM
var CSVColumns = []string{"person_id", "birth_date", "doses", "tests", "recoveries", "exemptions"}

const (
	colID = iota
	colBirth
	colDoses
	colTests
	colRecoveries
	colExemptions
)

// csvLayout is where each column is in a row, from the header.
type csvLayout struct {
	n      int   // fields per row
	col    []int // index in a row of each CSVColumns entry, -1 when absent
	fields []string
}

// parseHeader reads the header row. Its errors end the import: without the header no
// row can be read.
func parseHeader(ln line) (*csvLayout, error) {
	names, err := splitCSV(string(ln.text), nil)
	if err != nil {
		return nil, fmt.Errorf("line %d: the header: %w", ln.number, err)
	}
	l := &csvLayout{n: len(names), col: make([]int, len(CSVColumns))}
	for i := range l.col {
		l.col[i] = -1
	}
	for i, name := range names {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "exemption" {
			name = "exemptions"
		}
		k := slices.Index(CSVColumns, name)
		if k < 0 {
			return nil, fmt.Errorf("line %d: unknown column %q: the first line must be the header, with the columns %s", ln.number, name, strings.Join(CSVColumns, ","))
		}
		if l.col[k] >= 0 {
			return nil, fmt.Errorf("line %d: the header names the column %q twice", ln.number, name)
		}
		l.col[k] = i
	}
	if l.col[colID] < 0 || l.col[colBirth] < 0 {
		return nil, fmt.Errorf("line %d: the header must name the columns person_id and birth_date", ln.number)
	}
	return l, nil
}

// person parses one data row. It does not validate the values beyond their syntax.
func (l *csvLayout) person(text string) (*Person, error) {
	fields, err := splitCSV(text, l.fields[:0])
	l.fields = fields
	if err != nil {
		return nil, kipass.Errorf(kipass.EINVALID, "%v", err)
	}
	if len(fields) != l.n {
		return nil, kipass.Errorf(kipass.EINVALID, "%d fields, but the header has %d", len(fields), l.n)
	}
	cell := func(col int) string {
		if i := l.col[col]; i >= 0 {
			return strings.TrimSpace(fields[i])
		}
		return ""
	}
	p := &Person{PersonID: cell(colID)}
	if p.BirthDate, err = parseDateCell("birth_date", cell(colBirth)); err != nil {
		return nil, err
	}
	for i, item := range items(cell(colDoses)) {
		f := indexField("doses", i)
		date, product, ok := strings.Cut(item, ":")
		if !ok {
			return nil, kipass.FieldErrorf(f, "%q: want DATE:PRODUCT, e.g. 2021-06-10:pfizer", item)
		}
		d := kipass.Dose{Product: strings.TrimSpace(product)}
		if d.Date, err = parseDateCell(f+".date", date); err != nil {
			return nil, err
		}
		p.Doses = append(p.Doses, d)
	}
	for i, item := range items(cell(colTests)) {
		f := indexField("tests", i)
		kind, rest, ok1 := strings.Cut(item, ":")
		result, at, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			return nil, kipass.FieldErrorf(f, "%q: want KIND:RESULT:TIME, e.g. pcr:negative:2022-01-20T10:00:00+09:00", item)
		}
		t := kipass.Test{Kind: strings.TrimSpace(kind), Result: strings.TrimSpace(result)}
		if t.At, err = time.Parse(time.RFC3339, strings.TrimSpace(at)); err != nil {
			return nil, kipass.FieldErrorf(f+".at", "%q is not an RFC 3339 time such as 2022-01-20T10:00:00+09:00", strings.TrimSpace(at))
		}
		p.Tests = append(p.Tests, t)
	}
	for i, item := range items(cell(colRecoveries)) {
		d, err := parseDateCell(indexField("recoveries", i), item)
		if err != nil {
			return nil, err
		}
		p.Recoveries = append(p.Recoveries, d)
	}
	for i, item := range items(cell(colExemptions)) {
		kind, from, hasFrom := strings.Cut(item, ":")
		e := Exemption{Kind: strings.TrimSpace(kind)}
		if hasFrom {
			d, err := parseDateCell(indexField("exemptions", i)+".from", from)
			if err != nil {
				return nil, err
			}
			e.From = &d
		}
		p.Exemptions = append(p.Exemptions, e)
	}
	return p, nil
}

func parseDateCell(field, s string) (kipass.Date, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, kipass.FieldErrorf(field, "missing")
	}
	d, err := kipass.ParseDate(s)
	if err != nil {
		return 0, kipass.FieldErrorf(field, "%q is not a date of the form YYYY-MM-DD", s)
	}
	return d, nil
}

// items splits a list cell at ';', trimming each item and skipping empty ones.
func items(cell string) []string {
	if cell == "" {
		return nil
	}
	var out []string
	for item := range strings.SplitSeq(cell, ";") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// splitCSV splits one line into fields by RFC 4180: fields are separated by commas
// and may be quoted, with "" for a quote inside. A record never spans lines here, so
// that a stray quote spoils one row, not the rest of the file.
func splitCSV(s string, out []string) ([]string, error) {
	for {
		if len(s) > 0 && s[0] == '"' {
			var b strings.Builder
			i := 1
			for {
				j := strings.IndexByte(s[i:], '"')
				if j < 0 {
					return out, errors.New("a quoted field has no closing quote")
				}
				b.WriteString(s[i : i+j])
				i += j + 1
				if i < len(s) && s[i] == '"' {
					b.WriteByte('"')
					i++
					continue
				}
				break
			}
			out = append(out, b.String())
			s = s[i:]
			if s == "" {
				return out, nil
			}
			if s[0] != ',' {
				return out, errors.New("text after a closing quote")
			}
			s = s[1:]
			continue
		}
		j := strings.IndexByte(s, ',')
		field := s
		if j >= 0 {
			field = s[:j]
		}
		if strings.IndexByte(field, '"') >= 0 {
			return out, errors.New("a quote inside an unquoted field")
		}
		out = append(out, field)
		if j < 0 {
			return out, nil
		}
		s = s[j+1:]
	}
}
