package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kipass/kipass/authority"
	"github.com/kipass/kipass/demo"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/outbox"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/trust"
)

// kioskFixture is an authority with one issuer, and a central serving its bundle with
// one facility enrolled at a kiosk.
type kioskFixture struct {
	dir, data, bundle, root, addr, state string
	issuer                               ed25519.PrivateKey
	central                              *centralProcess
}

func freeAddr(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newKioskFixture(t *testing.T) *kioskFixture {
	t.Helper()
	f := &kioskFixture{dir: t.TempDir()}
	f.data, f.state, f.addr = filepath.Join(f.dir, "central"), filepath.Join(f.dir, "kiosk.db"), freeAddr(t)
	a, err := authority.Init(filepath.Join(f.dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(f.dir, "issuer.key")
	if _, _, err := a.AddIssuer("Test", nil, time.Now().Add(-time.Hour), time.Time{}, keyFile); err != nil {
		t.Fatal(err)
	}
	signed, _, err := a.SignBundle(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.bundle, f.root = filepath.Join(f.dir, "bundle.cose"), filepath.Join(f.dir, "auth", authority.RootPubFile)
	os.WriteFile(f.bundle, signed, 0o644)
	if f.issuer, err = trust.ReadPrivateKey(keyFile); err != nil {
		t.Fatal(err)
	}
	f.startCentral(t)
	ctx := context.Background()
	admin := kiphttp.NewClient(f.central.url, testAdminToken)
	fac, err := admin.CreateFacility(ctx, &kiphttp.CreateFacilityRequest{Name: "바다 피트니스", BusinessNumber: benchBusinessNumber(11), Category: "gym", Region: "busan"})
	if err != nil {
		t.Fatal(err)
	}
	code, err := admin.CreateEnrollmentCode(ctx, fac.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	// The first URL is down: enrolment fails over to the second.
	urls := "http://" + freeAddr(t) + "," + f.central.url
	if rc := run(ctx, env, []string{"scan", "--enroll", code.Code, "--central", urls, "--root-key", f.root, "--state", f.state}); rc != 0 {
		t.Fatalf("enrol exited %d: %s", rc, out.String())
	}
	if !strings.Contains(out.String(), "enrolled at 바다 피트니스") {
		t.Fatalf("enrol said %q", out.String())
	}
	return f
}

func (f *kioskFixture) startCentral(t *testing.T) {
	f.central = startCentral(t, "--addr", f.addr, "--data", f.data, "--bundle", f.bundle, "--root-key", f.root,
		"--device-rate", "1000", "--device-burst", "1000")
}

func (f *kioskFixture) stopCentral(t *testing.T) {
	f.central.cmd.Process.Signal(syscall.SIGTERM)
	<-f.central.done
}

// passes mints n passes of the demo visitors, each with its own token.
func (f *kioskFixture) passes(t *testing.T, n int) []string {
	kid := pass.KeyID(f.issuer.Public().(ed25519.PublicKey))
	people := demo.People()
	out := make([]string, n)
	now := time.Now().Truncate(time.Second)
	for i := range out {
		text, err := pass.Sign(&pass.Claims{KeyID: kid, IssuedAt: now, Expiry: now.Add(time.Hour), TokenID: pass.NewTokenID(),
			SRef: make([]byte, pass.SRefSize), DTag: make([]byte, pass.DTagSize), Holder: people[i%len(people)].Holder}, f.issuer)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = text
	}
	return out
}

// storedVisits reads central's database file (central stopped) and returns the number
// of visit rows and of distinct visit ids.
func storedVisits(t *testing.T, data string) (rows, distinct int) {
	db, err := sql.Open("sqlite", filepath.Join(data, CentralDBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT id) FROM visits`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	return rows, distinct
}

func outboxLen(t *testing.T, path string) int {
	o, err := outbox.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	n, err := o.Len(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestScanOffline: with central stopped the kiosk goes on deciding and keeps every
// admitted visit; once central is back the outbox drains and central holds each visit
// exactly once.
func TestScanOffline(t *testing.T) {
	f := newKioskFixture(t)
	f.stopCentral(t)
	ctx := context.Background()
	texts := f.passes(t, 6)
	texts = append(texts, texts[0], "KP1:NOT A PASS") // a replay and garbage: refused, not recorded
	var out bytes.Buffer
	env := &Env{Stdin: strings.NewReader(strings.Join(texts, "\n") + "\n"), Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	if rc := run(ctx, env, []string{"scan", "--state", f.state, "--drain", "500ms", "--json"}); rc != 0 {
		t.Fatalf("scan exited %d", rc)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 8 {
		t.Fatalf("want 8 decisions, got %d:\n%s", len(lines), out.String())
	}
	// In 2026 every rule is suspended: the six passes are admitted as NOT_REQUIRED.
	for i, l := range lines[:6] {
		if !strings.Contains(l, `"decision":"NOT_REQUIRED"`) {
			t.Fatalf("decision %d: %s", i, l)
		}
	}
	if !strings.Contains(lines[6], `"refusal":"replayed"`) || !strings.Contains(lines[7], `"refusal":"malformed"`) {
		t.Fatalf("refusals: %s / %s", lines[6], lines[7])
	}
	if n := outboxLen(t, f.state); n != 6 {
		t.Fatalf("outbox holds %d, want 6", n)
	}

	f.startCentral(t)
	env = &Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	if rc := run(ctx, env, []string{"scan", "--state", f.state, "--drain", "20s"}); rc != 0 {
		t.Fatalf("drain exited %d", rc)
	}
	if n := outboxLen(t, f.state); n != 0 {
		t.Fatalf("outbox not drained: %d left", n)
	}
	f.stopCentral(t)
	if rows, distinct := storedVisits(t, f.data); rows != 6 || distinct != 6 {
		t.Fatalf("central holds %d rows (%d distinct), want 6 once each", rows, distinct)
	}
}

// TestScanKill9: a kiosk process killed with SIGKILL in the middle of syncing loses no
// admitted visit, and the restarted kiosk finishes the upload with no duplicates.
func TestScanKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	f := newKioskFixture(t)
	bin, err := buildKipass()
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	texts := f.passes(t, n)
	cmd := exec.Command(bin, "scan", "--state", f.state, "--json")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	decided, half := make(chan int), make(chan struct{})
	go func() {
		sc, count := bufio.NewScanner(stdout), 0
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"decision":"NOT_REQUIRED"`) {
				if count++; count == n/2 {
					close(half)
				}
			}
		}
		decided <- count
	}()
	go func() {
		w := bufio.NewWriter(stdin)
		for _, text := range texts {
			w.WriteString(text + "\n")
		}
		w.Flush()
	}()
	// Kill it half-way through deciding, while its syncer is uploading.
	select {
	case <-half:
	case <-time.After(30 * time.Second):
		t.Fatal("the kiosk did not decide half of the passes in 30 s")
	}
	cmd.Process.Kill()
	cmd.Wait()
	admitted := <-decided
	left := outboxLen(t, f.state)
	t.Logf("killed after %d decisions printed; %d visits still in the outbox", admitted, left)

	// Restart with no input: it drains what it kept.
	ctx := context.Background()
	env := &Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	if rc := run(ctx, env, []string{"scan", "--state", f.state, "--drain", "30s"}); rc != 0 {
		t.Fatalf("drain exited %d", rc)
	}
	if left := outboxLen(t, f.state); left != 0 {
		t.Fatalf("outbox not drained: %d left", left)
	}
	f.stopCentral(t)
	rows, distinct := storedVisits(t, f.data)
	if rows != distinct {
		t.Fatalf("duplicates at central: %d rows, %d distinct ids", rows, distinct)
	}
	// Every decision printed was admitted and made durable before it was printed.
	if rows < admitted {
		t.Fatalf("central holds %d visits but the kiosk printed %d admissions: visits were lost", rows, admitted)
	}
	if rows > n {
		t.Fatalf("central holds %d visits for %d passes", rows, n)
	}
}
