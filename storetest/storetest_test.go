package storetest

import (
	"testing"
	"time"
)

func TestBenchVisits(t *testing.T) {
	vs := BenchVisits(5000)
	ids := map[string]bool{}
	for _, v := range vs {
		if len(v.ID) != 32 || ids[v.ID] {
			t.Fatalf("id %q: want 32 characters, unique", v.ID)
		}
		ids[v.ID] = true
		if len(v.TokenID) != 16 || len(v.DTag) != 16 || len(v.SRef) != 60 || v.FacilityID == "" {
			t.Fatalf("visit %+v not shaped like a QR scan", v)
		}
		if d := time.Since(v.At); d < 0 || d > time.Hour+time.Minute {
			t.Fatalf("visit at %v, want within the last hour", v.At)
		}
	}
}
