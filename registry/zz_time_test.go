package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/kipass/kipass/registry"
)

func TestZZTime(t *testing.T) {
	st := mustOpenStore(t)
	people := synthPeople(20000, 1)
	for i := 0; i < len(people); i += 2000 {
		start := time.Now()
		if err := st.PutPersons(context.Background(), people[i:i+2000]); err != nil {
			t.Fatal(err)
		}
		t.Logf("batch %d: %v", i/2000, time.Since(start))
	}
	_ = registry.SynthAt
}
