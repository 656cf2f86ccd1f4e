package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
)

// instantStore answers every visit stored at once: it isolates the HTTP path (auth,
// limits, decoding, checks, answer) from the database in BenchmarkUploadHTTPPath.
type instantStore struct{ kipass.VisitService }

func (instantStore) StoreVisits(ctx context.Context, vs []*kipass.Visit) ([]kipass.VisitStatus, error) {
	out := make([]kipass.VisitStatus, len(vs))
	for i, v := range vs {
		out[i] = kipass.VisitStatus{ID: v.ID, Status: kipass.VisitStored}
	}
	return out, nil
}

// BenchmarkUploadHTTPPath is the cost of POST /v1/visits without the database, per
// batch of 100 over loopback, client included: what the HTTP side adds to a commit.
func BenchmarkUploadHTTPPath(b *testing.B) {
	e := MustOpenEnv(b, backends[0], envOptions{server: func(s *kiphttp.Server) {
		s.VisitService = instantStore{s.VisitService}
	}})
	f := e.MustCreateFacility("bench", "")
	dev, _ := e.MustEnroll(f.ID)
	batch := make([]*kipass.Visit, 100)
	for i := range batch {
		batch[i] = QRVisit(f.ID, e.Clock.Now().Add(-time.Minute))
	}
	body, _ := json.Marshal(kiphttp.UploadRequest{Visits: batch})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(16) // many devices at once, as in production
	b.ResetTimer()
	cpu := cpuSeconds()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", e.URL+"/v1/visits", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+dev.Token)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "visits/s")
	b.ReportMetric((cpuSeconds()-cpu)/float64(b.N*len(batch))*1e6, "cpu-us/visit")
}

// cpuSeconds returns the CPU time this process has used so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
