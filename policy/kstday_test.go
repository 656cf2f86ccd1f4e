package policy

import (
	"testing"
	"time"

	"github.com/kipass/kipass"
)

// TestPolicyKSTDay checks the hot path's day arithmetic against kipass.DateOf, across KST
// midnight and before 1970.
func TestPolicyKSTDay(t *testing.T) {
	for _, base := range []time.Time{
		time.Date(2022, 1, 20, 0, 0, 0, 0, kipass.KST),
		time.Date(1969, 12, 31, 0, 0, 0, 0, kipass.KST),
		time.Date(1950, 2, 28, 0, 0, 0, 0, kipass.KST),
	} {
		for _, d := range []time.Duration{-time.Nanosecond, 0, time.Nanosecond, time.Second, 15 * time.Hour, 24*time.Hour - time.Nanosecond, -9 * time.Hour, 48 * time.Hour} {
			tm := base.Add(d)
			for _, in := range []time.Time{tm, tm.UTC()} {
				if got, want := kstDay(in), kipass.DateOf(in); got != want {
					t.Errorf("kstDay(%s) = %s, want %s", in.Format(time.RFC3339Nano), got, want)
				}
			}
		}
	}
}
