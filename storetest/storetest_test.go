package storetest

import (
	"testing"
	"time"
)

func TestBenchVisits(t *testing.T) {
	vs := BenchVisits(5000)
	ids := map[string]bool{}
	for _, v := range vs {
		if len(v.ID) != 26 || ids[v.ID] {
			t.Fatalf("id %q: want 26 characters, unique", v.ID)
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

func TestULIDLikeSortsByTime(t *testing.T) {
	tests := []struct {
		name         string
		early, later time.Time
	}{
		{"Millisecond", time.UnixMilli(1641430800000), time.UnixMilli(1641430800001)},
		{"Day", time.UnixMilli(1641430800000), time.UnixMilli(1641430800000).Add(24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max, zero := make([]byte, 16), make([]byte, 16)
			for i := range max {
				max[i] = 0xff
			}
			if a, b := ulidLike(tt.early, max), ulidLike(tt.later, zero); a >= b {
				t.Fatalf("%s sorts after %s", a, b)
			}
		})
	}
}
