package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/seal"
	"github.com/kipass/kipass/trust"
)

const testAdminToken = "central-test-admin"

// writeBundleFiles writes a signed trust bundle and its root public key into dir and
// returns their paths.
func writeBundleFiles(tb testing.TB, dir string) (bundlePath, rootPath string) {
	tb.Helper()
	sealPub, _, err := seal.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	rootPub, rootPriv, _ := ed25519.GenerateKey(rand.Reader)
	b := &trust.Bundle{Version: 1, MadeAt: time.Now().UTC().Truncate(time.Second), Rules: json.RawMessage(`{}`),
		Categories: []string{"restaurant", "cafe"}, Regions: []string{"seoul", "busan"}, SealingKey: sealPub}
	signed, err := trust.Sign(b, rootPriv)
	if err != nil {
		tb.Fatal(err)
	}
	bundlePath, rootPath = filepath.Join(dir, "bundle.cose"), filepath.Join(dir, "root.pub")
	if err := os.WriteFile(bundlePath, signed, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := trust.WriteKey(rootPath, rootPub, false); err != nil {
		tb.Fatal(err)
	}
	return bundlePath, rootPath
}

// testEnv returns an Env with the given variables and captured streams.
func testEnv(vars map[string]string) (*Env, *bytes.Buffer) {
	var stderr bytes.Buffer
	return &Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &lockedWriter{w: &stderr},
		Getenv: func(k string) string { return vars[k] }}, &stderr
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// MustRunCentral runs `kipass serve central` in-process on 127.0.0.1:0 with data in dir.
func MustRunCentral(tb testing.TB, dir string, extra ...string) *centralMain {
	tb.Helper()
	bundle, root := writeBundleFiles(tb, tb.TempDir())
	env, _ := testEnv(map[string]string{"KIPASS_ADMIN_TOKEN": testAdminToken})
	m := newCentralMain(env)
	args := append([]string{"--addr", "127.0.0.1:0", "--data", dir, "--bundle", bundle, "--root-key", root}, extra...)
	if err := m.ParseFlags(args); err != nil {
		tb.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestCentralInProcess(t *testing.T) {
	dir := t.TempDir()
	m := MustRunCentral(t, dir)
	ctx := context.Background()
	admin := kiphttp.NewClient(m.URL(), testAdminToken)
	f, err := admin.CreateFacility(ctx, &kiphttp.CreateFacilityRequest{Name: "식당", BusinessNumber: benchBusinessNumber(1), Category: "cafe", Region: "busan"})
	if err != nil {
		t.Fatal(err)
	}
	code, err := admin.CreateEnrollmentCode(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	enrol, err := kiphttp.NewClient(m.URL(), "").Enroll(ctx, code.Code, "")
	if err != nil {
		t.Fatal(err)
	}
	dev := kiphttp.NewClient(m.URL(), enrol.Token)
	gen := newBatchGen(f.ID, 1)
	v := gen.visit(time.Now())
	if res, err := dev.UploadVisits(ctx, []*kipass.Visit{v}); err != nil || res[0].Status != kipass.VisitStored {
		t.Fatalf("%v %+v", err, res)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// The same data directory after a restart: the visit is still there, once.
	m = MustRunCentral(t, dir)
	defer m.Close()
	dev = kiphttp.NewClient(m.URL(), enrol.Token)
	if res, err := dev.UploadVisits(ctx, []*kipass.Visit{v}); err != nil || res[0].Status != kipass.VisitDuplicate {
		t.Fatalf("after restart: %v %+v", err, res)
	}
	st, err := dev.Status(ctx)
	if err != nil || st.State != kiphttp.StateOK {
		t.Fatalf("%v %+v", err, st)
	}
}

func TestCentralFlags(t *testing.T) {
	bundle, root := writeBundleFiles(t, t.TempDir())
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		want string // in the error; "" for success
	}{
		{"OK", []string{"--data", "d", "--bundle", bundle, "--root-key", root}, nil, ""},
		{"ErrNoStore", []string{"--bundle", bundle, "--root-key", root}, nil, "exactly one of --data"},
		{"ErrBothStores", []string{"--data", "d", "--postgres", "postgres://x", "--bundle", bundle, "--root-key", root}, nil, "exactly one of --data"},
		{"ErrNoBundle", []string{"--data", "d"}, nil, "--bundle and --root-key"},
		{"ErrInvestigators", []string{"--data", "d", "--bundle", bundle, "--root-key", root, "--investigator-tokens", "nocolon"}, nil, "--investigator-tokens"},
		{"ErrEnvNumber", []string{"--data", "d", "--bundle", bundle, "--root-key", root}, map[string]string{"KIPASS_MAX_INFLIGHT": "many"}, "KIPASS_MAX_INFLIGHT"},
		{"ErrLogLevel", []string{"--data", "d", "--bundle", bundle, "--root-key", root, "--log-level", "loud"}, nil, "--log-level"},
		{"ErrDeviceRate", []string{"--data", "d", "--bundle", bundle, "--root-key", root, "--device-rate", "-1"}, nil, "--device-rate"},
		{"EnvSelectsStore", []string{"--bundle", bundle, "--root-key", root}, map[string]string{"KIPASS_DATA": "d"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := testEnv(tc.vars)
			err := newCentralMain(env).ParseFlags(tc.args)
			if tc.want == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want one about %q", err, tc.want)
			}
		})
	}

	t.Run("EnvAndFlagPrecedence", func(t *testing.T) {
		env, _ := testEnv(map[string]string{"KIPASS_ADMIN_TOKEN": "a,b", "KIPASS_INVESTIGATOR_TOKENS": "kim:t1,lee:t2", "KIPASS_DATA": "from-env"})
		m := newCentralMain(env)
		if err := m.ParseFlags([]string{"--data", "from-flag", "--bundle", bundle, "--root-key", root, "--max-inflight", "7"}); err != nil {
			t.Fatal(err)
		}
		if m.DataDir != "from-flag" || len(m.AdminTokens) != 2 || m.Investigators["lee"] != "t2" || m.Config.MaxInflightIngest != 7 {
			t.Fatalf("%+v", m)
		}
	})

	t.Run("ErrBadBundle", func(t *testing.T) {
		_, otherRoot := writeBundleFiles(t, t.TempDir())
		env, _ := testEnv(nil)
		m := newCentralMain(env)
		if err := m.ParseFlags([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--bundle", bundle, "--root-key", otherRoot}); err != nil {
			t.Fatal(err)
		}
		if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "--bundle") {
			m.Close()
			t.Fatalf("a bundle under another root key: %v", err)
		}
	})

	t.Run("ErrPortTaken", func(t *testing.T) {
		m := MustRunCentral(t, t.TempDir())
		defer m.Close()
		env, _ := testEnv(nil)
		m2 := newCentralMain(env)
		addr := strings.TrimPrefix(m.URL(), "http://")
		if err := m2.ParseFlags([]string{"--addr", addr, "--data", t.TempDir(), "--bundle", bundle, "--root-key", root}); err != nil {
			t.Fatal(err)
		}
		if err := m2.Run(context.Background()); err == nil {
			m2.Close()
			t.Fatal("a taken port was not reported")
		}
	})
}

// centralProcess is `kipass serve central` running as a child process.
type centralProcess struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	done   chan error
}

// buildKipass builds the kipass binary once per test binary run.
var buildKipass = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "kipass-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kipass")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// startCentral starts the binary and waits until it listens.
func startCentral(tb testing.TB, args ...string) *centralProcess {
	tb.Helper()
	bin, err := buildKipass()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "central", "--addr", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "KIPASS_ADMIN_TOKEN="+testAdminToken)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &centralProcess{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	urls := make(chan string, 1)
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			p.stderr.WriteString(line + "\n")
			mu.Unlock()
			var rec struct {
				Msg string `json:"msg"`
				URL string `json:"url"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "central listening" {
				urls <- rec.URL
			}
		}
	}()
	go func() { p.done <- cmd.Wait(); pw.Close() }()
	select {
	case p.url = <-urls:
	case err := <-p.done:
		tb.Fatalf("central exited at start: %v\n%s", err, p.stderr)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		tb.Fatalf("central did not start\n%s", p.stderr)
	}
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// TestCentralCrash uploads from several devices at once, kills the server with
// SIGKILL mid-load, restarts it on the same data directory, and checks in the database
// file that every visit it acknowledged is there exactly once.
func TestCentralCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bundle, root := writeBundleFiles(t, t.TempDir())
	args := []string{"--data", dir, "--bundle", bundle, "--root-key", root, "--device-rate", "1000", "--device-burst", "1000"}
	p := startCentral(t, args...)
	ctx := context.Background()
	admin := kiphttp.NewClient(p.url, testAdminToken)
	f, err := admin.CreateFacility(ctx, &kiphttp.CreateFacilityRequest{Name: "충돌 식당", BusinessNumber: benchBusinessNumber(7), Category: "restaurant", Region: "seoul"})
	if err != nil {
		t.Fatal(err)
	}
	const devices = 6
	tokens := make([]string, devices)
	for i := range tokens {
		code, err := admin.CreateEnrollmentCode(ctx, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		e, err := kiphttp.NewClient(p.url, "").Enroll(ctx, code.Code, "")
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = e.Token
	}

	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		sent  [devices][]*kipass.Visit
		wg    sync.WaitGroup
	)
	deadline := time.Now().Add(20 * time.Second) // bounded, whatever happens
	for i := 0; i < devices; i++ {
		wg.Go(func() {
			dev := kiphttp.NewClient(p.url, tokens[i])
			gen := newBatchGen(f.ID, 1)
			for time.Now().Before(deadline) {
				batch := make([]*kipass.Visit, 50)
				for j := range batch {
					batch[j] = gen.visit(time.Now())
				}
				mu.Lock()
				sent[i] = append(sent[i], batch...)
				mu.Unlock()
				res, err := dev.UploadVisits(ctx, batch)
				if err != nil {
					if kipass.ErrorCode(err) == kipass.ETOOMANY {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					return // the server is gone
				}
				mu.Lock()
				for _, r := range res {
					if r.Status == kipass.VisitStored || r.Status == kipass.VisitDuplicate {
						acked[r.ID] = true
					}
				}
				mu.Unlock()
			}
		})
	}
	// Kill once enough is acknowledged, with uploads still in flight.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 3000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	wg.Wait()
	mu.Lock()
	ackedAtKill := len(acked)
	mu.Unlock()
	if ackedAtKill < 100 {
		t.Fatalf("only %d visits acknowledged before the kill", ackedAtKill)
	}

	// Restart on the same data: every visit sent, acknowledged or not, uploads again
	// as stored (lost in flight, never acknowledged) or duplicate.
	p = startCentral(t, args...)
	stored, dups, total := 0, 0, 0
	for i, visits := range sent {
		dev := kiphttp.NewClient(p.url, tokens[i])
		total += len(visits)
		for batch := range chunks(visits, 500) {
			res, err := dev.UploadVisits(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				switch {
				case r.Status == kipass.VisitDuplicate:
					dups++
				case r.Status == kipass.VisitStored && !acked[r.ID]:
					stored++
				default:
					t.Fatalf("after restart, visit %s (acknowledged: %v) answers %+v", r.ID, acked[r.ID], r)
				}
			}
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("central did not exit within 10 s of SIGTERM")
	}

	// Count in the file itself.
	db, err := sql.Open("sqlite", filepath.Join(dir, CentralDBFile)+"?_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	counts := map[string]int{}
	rows, err := db.Query(`SELECT id, COUNT(*) FROM visits GROUP BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		counts[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id := range acked {
		if counts[id] != 1 {
			t.Errorf("acknowledged visit %s is in the database %d times", id, counts[id])
		}
	}
	t.Logf("acknowledged before SIGKILL: %d; sent: %d; after restart: %d duplicates, %d newly stored; rows: %d",
		ackedAtKill, total, dups, stored, len(counts))
}

func chunks[T any](s []T, n int) func(yield func([]T) bool) {
	return func(yield func([]T) bool) {
		for i := 0; i < len(s); i += n {
			if !yield(s[i:min(i+n, len(s))]) {
				return
			}
		}
	}
}
