// Package chaos holds the resilience scenarios of issue 6 as Go tests: each starts a
// real cluster (PostgreSQL primary and synchronous standby, `kipass serve central`
// processes), drives it with loadgen's simulated scanners, breaks something on
// purpose, and ends with the loadgen report and the checks that every admitted visit
// is stored exactly once.
//
// Durations are short by default so that the suite fits in CI; operators run longer
// ones with KIPASS_CHAOS_LOAD=5m, KIPASS_CHAOS_SCANNERS, KIPASS_CHAOS_RATE and
// KIPASS_CHAOS_PARTITION (see docs/operations.md).
package chaos

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass/authority"
	"github.com/kipass/kipass/cluster"
	"github.com/kipass/kipass/loadgen"
	"github.com/kipass/kipass/trust"
)

const adminToken = "chaos-admin-token"

// kipassBin is the kipass binary built once for the whole suite.
var kipassBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kipass-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kipassBin = filepath.Join(dir, "kipass")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	build := exec.Command(gobin, "build", "-o", kipassBin, "github.com/kipass/kipass/cmd/kipass")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kipass:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// envDuration reads a duration from the environment, or def.
func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// loadDuration is each scenario's load phase.
func loadDuration() time.Duration { return envDuration("KIPASS_CHAOS_LOAD", 20*time.Second) }

// world is a running cluster with its authority material.
type world struct {
	c      *cluster.Cluster
	bundle *trust.Bundle
	issuer ed25519.PrivateKey
	dir    string
}

// mustCluster starts a cluster of n central nodes for the test and tears it down after.
func mustCluster(t *testing.T, n int, nodeArgs ...string) *world {
	t.Helper()
	dir, err := os.MkdirTemp("", "kipass-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() {
		if t.Failed() {
			for i := 0; i < n; i++ {
				if b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d.log", i))); err == nil {
					t.Logf("node %d log (tail):\n%s", i, tail(b, 3000))
				}
			}
		}
		os.RemoveAll(dir)
	})
	w := &world{dir: dir}
	bundlePath, rootPath := w.mustAuthority(t)
	ctx := context.Background()
	c, err := cluster.Up(ctx, cluster.Config{Dir: dir, Bin: kipassBin, Nodes: n, Bundle: bundlePath, RootKey: rootPath,
		AdminToken: adminToken, NodeArgs: nodeArgs, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Down)
	w.c = c
	return w
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// mustAuthority makes an authority with one issuer and writes the signed bundle.
func (w *world) mustAuthority(t *testing.T) (bundlePath, rootPath string) {
	t.Helper()
	adir := filepath.Join(w.dir, "authority")
	a, err := authority.Init(adir)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(adir, "issuer.key")
	now := time.Now()
	if _, _, err := a.AddIssuer("chaos issuer", nil, now.Add(-24*time.Hour), now.Add(365*24*time.Hour), keyFile); err != nil {
		t.Fatal(err)
	}
	signed, _, err := a.SignBundle(nil, now)
	if err != nil {
		t.Fatal(err)
	}
	bundlePath, rootPath = filepath.Join(adir, authority.DefaultBundle), filepath.Join(adir, authority.RootPubFile)
	if err := os.WriteFile(bundlePath, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := trust.ReadPublicKey(rootPath)
	if err != nil {
		t.Fatal(err)
	}
	if w.bundle, err = trust.Verify(signed, root, nil); err != nil {
		t.Fatal(err)
	}
	if w.issuer, err = trust.ReadPrivateKey(keyFile); err != nil {
		t.Fatal(err)
	}
	return bundlePath, rootPath
}

// config is the default load of a scenario: 200 scanners uploading to every node.
func (w *world) config(t *testing.T) loadgen.Config {
	return loadgen.Config{
		Centrals:     w.c.URLs(),
		AdminToken:   adminToken,
		Scanners:     envInt("KIPASS_CHAOS_SCANNERS", 200),
		Rate:         float64(envInt("KIPASS_CHAOS_RATE", 200)),
		Profile:      loadgen.Steady,
		Duration:     loadDuration(),
		Dir:          t.TempDir(),
		Bundle:       w.bundle,
		IssuerKey:    w.issuer,
		HTTPTimeout:  5 * time.Second,
		DrainTimeout: 90 * time.Second,
		Checker:      loadgen.PostgresChecker{DSN: w.c.PG.DSN()},
	}
}

// run runs the load and, beside it, chaos(ctx) with ctx ending with the load phase.
// It logs the report and fails the test on any broken promise.
func (w *world) run(t *testing.T, cfg loadgen.Config, chaos func(ctx context.Context, start time.Time)) *loadgen.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Duration)
	defer cancel()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		if chaos != nil {
			chaos(ctx, start)
		}
	}()
	rep, err := loadgen.Run(context.Background(), cfg)
	cancel()
	<-done
	if rep != nil {
		t.Logf("\n%s", rep)
	}
	if err != nil {
		t.Fatal(err)
	}
	assertReport(t, rep)
	return rep
}

// assertReport fails the test unless every admitted visit is stored exactly once, the
// outboxes drained and no decision waited for the network.
func assertReport(t *testing.T, rep *loadgen.Report) {
	t.Helper()
	if !rep.Checked {
		t.Fatal("the database was not checked")
	}
	if rep.Admitted == 0 {
		t.Fatal("no visits were admitted: the load did nothing")
	}
	if rep.StoredDistinct != rep.Admitted {
		t.Errorf("stored %d distinct visits, want decided-admitted %d", rep.StoredDistinct, rep.Admitted)
	}
	if rep.Duplicates != 0 {
		t.Errorf("duplicates = %d, want 0", rep.Duplicates)
	}
	for _, p := range rep.Problems() {
		t.Error(p)
	}
}

// sleepCtx sleeps d or until ctx ends; it reports whether the full time passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type proxy = cluster.Proxy

// mustProxy starts a dropping TCP proxy in front of a node's base URL.
func mustProxy(t *testing.T, url string) *proxy {
	t.Helper()
	p, err := cluster.NewProxy(strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
