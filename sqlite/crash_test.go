package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/sqlite"
	"github.com/kipass/kipass/storetest"
)

// crashEnv names the database file when the test binary runs as the crash child.
const crashEnv = "KIPASS_SQLITE_CRASH_CHILD"

// TestCrashKeepsAcknowledged runs ingest in a child process, kills it with SIGKILL
// while it commits, and checks that every visit the child saw acknowledged is stored
// exactly once after reopening.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "central.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsAcknowledged$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(20 * time.Second)
	for sc.Scan() && len(acked) < 20000 && time.Now().Before(deadline) {
		if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked[id] = true
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(acked) < 1000 {
		t.Fatalf("the child acknowledged only %d visits before the deadline", len(acked))
	}

	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer db.Close()
	count := map[string]int{}
	for w := range 8 {
		vs, err := db.FindVisitsAtFacility(context.Background(), fmt.Sprintf("fac-%d", w), time.Unix(0, 0), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			count[v.ID]++
		}
	}
	for id := range acked {
		if count[id] != 1 {
			t.Fatalf("acknowledged visit %s stored %d times after SIGKILL", id, count[id])
		}
	}
	t.Logf("%d acknowledged visits all present after SIGKILL (%d stored)", len(acked), len(count))
}

// crashChild stores visits from 8 goroutines forever, printing each acknowledged id.
func crashChild(path string) {
	db, err := sqlite.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	for g := range 8 {
		go func() {
			for {
				vs := storetest.BenchVisits(50)
				for _, v := range vs {
					v.FacilityID = fmt.Sprintf("fac-%d", g)
				}
				st, err := db.StoreVisits(context.Background(), vs)
				if err != nil {
					continue
				}
				mu.Lock()
				for _, s := range st {
					if s.Status == kipass.VisitStored {
						fmt.Fprintf(w, "ack %s\n", s.ID)
					}
				}
				w.Flush()
				mu.Unlock()
			}
		}()
	}
	select {}
}
