package kipass

import (
	"encoding/json"
	"fmt"
	"time"
)

// KST is Korea Standard Time (UTC+9, no daylight saving). All rule dates are KST days.
// A fixed zone keeps the pure packages free of the tz database, which wasm lacks.
var KST = time.FixedZone("KST", 9*60*60)

// Date is a calendar day, counted in days since 1970-01-01. It is compact in CBOR
// (a small integer) and makes "D+14" plain arithmetic.
type Date int32

// DateOf returns the KST calendar day of t.
func DateOf(t time.Time) Date {
	y, m, d := t.In(KST).Date()
	return NewDate(y, m, d)
}

// NewDate returns the Date of the given calendar day.
func NewDate(year int, month time.Month, day int) Date {
	return Date(time.Date(year, month, day, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// ParseDate parses a YYYY-MM-DD day.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a date of the form YYYY-MM-DD", s)
	}
	return Date(t.Unix() / 86400), nil
}

// MustParseDate is ParseDate for constants; it panics on a malformed date.
func MustParseDate(s string) Date {
	d, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

// Time returns the UTC midnight of d, for calendar arithmetic.
func (d Date) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// Start returns 00:00 KST of the day d.
func (d Date) Start() time.Time {
	y, m, dd := d.Time().Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, KST)
}

// End returns 24:00 KST of the day d (00:00 of the next day), the "until day X" bound.
func (d Date) End() time.Time { return (d + 1).Start() }

// AddDays returns d+n.
func (d Date) AddDays(n int) Date { return d + Date(n) }

// String formats d as YYYY-MM-DD.
func (d Date) String() string { return d.Time().Format(time.DateOnly) }

// MarshalJSON writes d as "YYYY-MM-DD".
func (d Date) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a "YYYY-MM-DD" string.
func (d *Date) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a date must be a string of the form YYYY-MM-DD")
	}
	v, err := ParseDate(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// YearsBetween returns full years of age on day at for someone born on day born
// (international age), as Daegu's under-60 rule counts it.
func YearsBetween(born, at Date) int {
	by, bm, bd := born.Time().Date()
	ay, am, ad := at.Time().Date()
	age := ay - by
	if am < bm || (am == bm && ad < bd) {
		age--
	}
	return age
}
