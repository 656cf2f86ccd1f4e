package chaos

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/demo"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/scanner"
)

// surgeNodeArgs make the node under test shed on its capacity, not on the per-device
// fairness limit: one upload committing at a time, a short queue, and a device rate
// that no simulated kiosk reaches.
var surgeNodeArgs = []string{"--max-inflight", "1", "--queue-size", "200", "--device-rate", "1000", "--device-burst", "1000"}

// surgeDBDelay puts the database a few milliseconds away from the node (as in another
// zone), so that one node's capacity is small enough for a generator on the same
// two-core machine to offer five times it; with the database next door, a node takes
// thousands of single-visit uploads a second and the generator runs out of CPU first.
const surgeDBDelay = 500 * time.Microsecond

// measureCapacity hammers one node with single-visit uploads from many devices for d
// and returns the visits it accepted per second: its capacity with these flags.
func measureCapacity(t *testing.T, w *world, url string, d time.Duration) float64 {
	t.Helper()
	ctx := context.Background()
	// A real decision gives the template of the visits.
	sc, err := scanner.New(w.bundle)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	text, err := pass.Sign(&pass.Claims{KeyID: pass.KeyID(w.issuer.Public().(ed25519.PublicKey)), IssuedAt: now,
		Expiry: now.Add(pass.DefaultTTL), TokenID: pass.NewTokenID(), SRef: make([]byte, pass.SRefSize),
		DTag: make([]byte, pass.DTagSize), Holder: demo.People()[0].Holder}, w.issuer)
	if err != nil {
		t.Fatal(err)
	}
	decided := sc.Decide(text, kipass.Place{Category: "restaurant", Region: "seoul"}, 1, now)
	if !decided.Admitted() {
		t.Fatalf("template pass not admitted: %+v", decided)
	}
	admin := kiphttp.NewClient(url, adminToken)
	const workers = 32
	var accepted, shed atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for i := 0; i < workers; i++ {
		f, err := admin.CreateFacility(ctx, &kiphttp.CreateFacilityRequest{Name: fmt.Sprintf("용량 %d", i),
			BusinessNumber: businessNumber(i), Category: "restaurant", Region: "seoul"})
		if err != nil {
			t.Fatal(err)
		}
		code, err := admin.CreateEnrollmentCode(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		e, err := kiphttp.NewClient(url, "").Enroll(ctx, code.Code, "")
		if err != nil {
			t.Fatal(err)
		}
		dev := kiphttp.NewClient(url, e.Token)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				id := make([]byte, 16)
				rand.Read(id)
				v := decided.Visit(hex.EncodeToString(id), f.ID, e.Device.ID, time.Now())
				v.TokenID = pass.NewTokenID()
				res, err := dev.UploadVisits(ctx, []*kipass.Visit{v})
				switch {
				case err == nil && res[0].Status == kipass.VisitStored:
					accepted.Add(1)
				case err == nil:
					t.Errorf("capacity probe: visit not stored: %+v", res[0])
					return
				case kipass.ErrorCode(err) != "":
					shed.Add(1)
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	c := float64(accepted.Load()) / d.Seconds()
	t.Logf("capacity probe: %d accepted, %d refused in %v: %.0f visits/s in single-visit uploads", accepted.Load(), shed.Load(), d, c)
	return c
}

// TestSurge: a lunchtime surge at 5 times the measured capacity of a node. The node
// sheds with 429 and Retry-After, the accepted requests stay fast (p99 < 100 ms), its
// memory stays bounded, and the outboxes drain after the surge.
func TestSurge(t *testing.T) {
	w := mustCluster(t, 1, surgeNodeArgs...)
	node := w.c.Nodes[0]
	// Restart the node behind a delaying proxy to the database servers.
	dsn := w.c.PG.DSN()
	for _, port := range w.c.PG.Ports {
		p := mustProxy(t, fmt.Sprintf("127.0.0.1:%d", port))
		p.Delay = surgeDBDelay
		dsn = strings.Replace(dsn, fmt.Sprintf("127.0.0.1:%d", port), strings.TrimPrefix(p.URL(), "http://"), 1)
	}
	node.Stop()
	node.Args = append(node.Args, "--postgres", dsn)
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	capacity := measureCapacity(t, w, node.URL(), 2*time.Second)
	cfg := w.config(t)
	cfg.Rate = 5 * capacity
	cfg.Duration = envDuration("KIPASS_CHAOS_SURGE", 30*time.Second)
	cfg.NotifyEvery = true // a kiosk uploads each scan at once; a backlog goes in batches
	cfg.Batch = 20
	cfg.Dir = shmDir(t) // outboxes on tmpfs, so that the generator keeps up

	var maxRSS atomic.Int64
	rep := w.run(t, cfg, func(ctx context.Context, _ time.Time) {
		for sleepCtx(ctx, 200*time.Millisecond) {
			if rss, err := node.RSS(); err == nil && rss > maxRSS.Load() {
				maxRSS.Store(rss)
			}
		}
	})
	offered := float64(rep.Decided) / rep.Elapsed.Seconds()
	t.Logf("surge: capacity %.0f/s, offered %.0f/s (%.1fx), node RSS max %d MiB", capacity, offered, offered/capacity, maxRSS.Load()>>20)
	if offered < 2.5*capacity {
		t.Errorf("the generator offered only %.1fx the capacity", offered/capacity)
	}
	if rep.HTTP.Shed == 0 {
		t.Error("the node shed nothing with 429")
	}
	if p99 := rep.HTTP.AcceptedP99; p99 >= 100*time.Millisecond {
		t.Errorf("p99 of accepted uploads %v, want < 100ms", p99)
	}
	if rss := maxRSS.Load(); rss == 0 || rss > 512<<20 {
		t.Errorf("node RSS max %d bytes, want measured and under 512 MiB", rss)
	}
}

// shmDir is a directory on tmpfs when there is one, removed after the test.
func shmDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "kipass-surge-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// businessNumber returns a valid business registration number for test facility i.
func businessNumber(i int) string {
	d := fmt.Sprintf("%09d", 300000000+i)
	sum := 0
	for k, w := range []int{1, 3, 7, 1, 3, 7, 1, 3, 5} {
		sum += int(d[k]-'0') * w
	}
	sum += int(d[8]-'0') * 5 / 10
	return d + fmt.Sprint((10-sum%10)%10)
}
