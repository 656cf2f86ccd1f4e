package loadgen

import (
	"fmt"
	"testing"
	"time"
)

func TestRateAt(t *testing.T) {
	c := &Config{Rate: 100, Profile: Lunch, Peak: 5, Duration: 100 * time.Second}
	for _, tc := range []struct {
		name string
		at   time.Duration
		want float64
	}{
		{"Start", 0, 100},
		{"HalfwayUp", 20 * time.Second, 300},
		{"Plateau", 50 * time.Second, 500},
		{"HalfwayDown", 80 * time.Second, 300},
		{"End", 100 * time.Second, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.RateAt(tc.at); got < tc.want-0.001 || got > tc.want+0.001 {
				t.Fatalf("RateAt(%v) = %v, want %v", tc.at, got, tc.want)
			}
		})
	}
	steady := &Config{Rate: 100, Profile: Steady, Duration: time.Minute}
	if got := steady.RateAt(30 * time.Second); got != 100 {
		t.Fatalf("steady RateAt = %v, want 100", got)
	}
}

func TestBusinessNumberCheckDigit(t *testing.T) {
	for i := 0; i < 1000; i++ {
		n := businessNumber(i * 7919)
		if len(n) != 10 {
			t.Fatalf("businessNumber(%d) = %q: want 10 digits", i, n)
		}
		if businessNumber(i*7919) != n {
			t.Fatal("not deterministic")
		}
	}
	// Known valid numbers of the demo facilities.
	for _, want := range []string{"1018100340", "2118100012", "3128100014"} {
		var n int
		fmt.Sscan(want[:9], &n)
		if got := businessNumber(n - 100000000); got != want {
			t.Errorf("businessNumber for %s = %s", want, got)
		}
	}
}

func TestReportProblems(t *testing.T) {
	ok := &Report{Checked: true, Drained: true, Admitted: 10, Stored: 10, StoredDistinct: 10}
	if p := ok.Problems(); len(p) != 0 {
		t.Fatalf("clean report has problems: %v", p)
	}
	bad := &Report{Checked: true, Drained: true, Admitted: 10, Stored: 11, StoredDistinct: 9, Duplicates: 2, Missing: 1, WaitedForNetwork: 1}
	if p := bad.Problems(); len(p) != 3 {
		t.Fatalf("want 3 problems (stored, duplicates, waited), got %v", p)
	}
}
