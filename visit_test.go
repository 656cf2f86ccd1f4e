package kipass

import (
	"regexp"
	"testing"
	"time"
)

func TestNewVisitIDOrdered(t *testing.T) {
	form := regexp.MustCompile(`^[0-9a-f]{32}$`)
	t0 := time.Date(2022, 1, 27, 3, 0, 0, 0, time.UTC)
	prev := NewVisitID(t0)
	seen := map[string]bool{prev: true}
	for i := 1; i <= 1000; i++ {
		id := NewVisitID(t0.Add(time.Duration(i) * time.Millisecond))
		if !form.MatchString(id) {
			t.Fatalf("id %q is not 32 lowercase hex digits", id)
		}
		if id <= prev {
			t.Fatalf("id %q made 1 ms after %q does not sort after it", id, prev)
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id], prev = true, id
	}
	// The same millisecond gives different ids (80 random bits).
	if NewVisitID(t0) == NewVisitID(t0) {
		t.Fatal("two ids made in one millisecond are equal")
	}
	if got := NewVisitID(t0)[:12]; got != "017e9979bf80" {
		t.Fatalf("time prefix %q, want the unix milliseconds 017e9979bf80", got)
	}
}
