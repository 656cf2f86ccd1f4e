package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kipass/kipass"
)

// BenchVisits returns n visits shaped like real QR scans (a time-ordered id made
// every 20 µs as scanners make them, 16-byte token and day tag, a 60-byte sealed
// reference) at 1000 facilities within the hour before now, for benchmarks.
func BenchVisits(n int) []*kipass.Visit {
	now := time.Now()
	vs := make([]*kipass.Visit, n)
	buf := make([]byte, n*(16+16+60+16))
	rand.Read(buf)
	for i := range vs {
		b := buf[i*108 : (i+1)*108 : (i+1)*108]
		fac := i % 1000
		vs[i] = &kipass.Visit{
			ID:          kipass.NewVisitID(now.Add(time.Duration(i-n) * 20 * time.Microsecond)), // as scanners make them
			FacilityID:  fmt.Sprintf("fac-%04d", fac),
			DeviceID:    fmt.Sprintf("dev-%04d-1", fac),
			At:          now.Add(-time.Duration(i%3600) * time.Second),
			Method:      kipass.MethodQR,
			IssuerKeyID: "naver-2022-01",
			TokenID:     b[0:16],
			DTag:        b[16:32],
			SRef:        b[32:92],
			Outcome:     kipass.PASS,
			Basis:       kipass.BasisBooster,
		}
	}
	return vs
}

// BenchStoreVisits stores b.N fresh visits through s.StoreVisits from workers
// goroutines in batches of batch, retrying a shed batch after a millisecond as a
// scanner would, and reports visits/s, shed batches and commit figures.
func BenchStoreVisits(b *testing.B, s Store, workers, batch int) {
	b.Helper()
	visits := BenchVisits(b.N)
	batches := slices.Collect(slices.Chunk(visits, batch))
	ctx := context.Background()
	var next, shed atomic.Int64
	var failed atomic.Value
	before := s.IngestStats()
	b.ResetTimer()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(batches) {
					return
				}
				for {
					st, err := s.StoreVisits(ctx, batches[i])
					if isTooMany(err) {
						shed.Add(1)
						time.Sleep(time.Millisecond)
						continue
					}
					if err != nil {
						failed.Store(err)
						return
					}
					if st[0].Status != kipass.VisitStored {
						failed.Store(fmt.Errorf("visit %s: %+v", st[0].ID, st[0]))
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportCPU(b, cpu0)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	after := s.IngestStats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "visits/s")
	b.ReportMetric(float64(shed.Load()), "shed")
	if commits := after.Commits - before.Commits; commits > 0 {
		b.ReportMetric(float64(after.Visits-before.Visits)/float64(commits), "visits/commit")
	}
	b.ReportMetric(float64(after.MaxCommitLatency.Microseconds())/1000, "max-commit-ms")
}

// BenchRawInsert inserts b.N fresh visits with insert, the backend's RawInsert, and
// reports visits/s.
func BenchRawInsert(b *testing.B, insert func(ctx context.Context, visits []*kipass.Visit) error) {
	b.Helper()
	visits := BenchVisits(b.N)
	b.ResetTimer()
	cpu0 := cpuTime()
	if err := insert(context.Background(), visits); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	reportCPU(b, cpu0)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "visits/s")
}

// reportCPU reports the process's CPU time per visit since cpu0 (for PostgreSQL this
// leaves out the server's own work).
func reportCPU(b *testing.B, cpu0 time.Duration) {
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/1000/float64(b.N), "cpu-us/visit")
	}
}
