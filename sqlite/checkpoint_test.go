package sqlite

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kipass/kipass"
)

// Commits never checkpoint; the checkpointer does, and under back-to-back commits it
// keeps the WAL from growing past its limit for long.
func TestCheckpointerBoundsWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "central.db")
	const limit = 256 // pages: 1 MB
	db, err := OpenOptions(path, Options{WALLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var auto int
	if err := db.writer.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("writer's wal_autocheckpoint = %d (%v), want 0", auto, err)
	}

	// 16 writers storing 120 000 visits (about 45 MB of pages) back to back.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for b := range 75 {
				vs := make([]*kipass.Visit, 100)
				for i := range vs {
					raw := make([]byte, 68)
					rand.Read(raw)
					vs[i] = &kipass.Visit{ID: fmt.Sprintf("v-%02d-%02d-%03d", w, b, i), FacilityID: "f", DeviceID: "d", At: time.Now(),
						Method: kipass.MethodQR, IssuerKeyID: "k", TokenID: raw[:12], DTag: raw[12:28], SRef: raw[28:], Outcome: kipass.PASS, Basis: kipass.BasisBooster}
				}
				if _, err := db.StoreVisits(context.Background(), vs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if db.ckpt.checkpoints.Load() == 0 {
		t.Fatal("no checkpoint under load")
	}
	// Once the load stops the checkpointer catches up, and the next commit starts the
	// WAL again: without checkpoints it would hold every page written (45 MB).
	time.Sleep(300 * time.Millisecond)
	if _, err := db.StoreVisits(context.Background(), []*kipass.Visit{{ID: "last", FacilityID: "f", DeviceID: "d", At: time.Now(),
		Method: kipass.MethodQR, IssuerKeyID: "k", Outcome: kipass.PASS, Basis: kipass.BasisBooster}}); err != nil {
		t.Fatal(err)
	}
	busy, frames, copied := 1, 0, 0
	for busy != 0 { // the checkpointer is at work: -1 pages
		if err := db.writer.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if frames > limit {
		t.Fatalf("WAL holds %d pages after the load, limit %d", frames, limit)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("WAL: %d pages after the load, file %d KB at most; %d passive and %d restarting checkpoints",
		frames, fi.Size()>>10, db.ckpt.checkpoints.Load(), db.ckpt.restarts.Load())
}
