package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/demo"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/registry"
	regsqlite "github.com/kipass/kipass/registry/sqlite"
	"github.com/kipass/kipass/trust"
)

// startDemoRegistry runs the real registry on 127.0.0.1 with the demo people and
// returns its URL and the issuer token it accepts.
func startDemoRegistry(t *testing.T, now func() time.Time) (string, string) {
	t.Helper()
	store, err := regsqlite.OpenOptions(filepath.Join(t.TempDir(), regsqlite.FileName), regsqlite.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := registry.NewServer(store, registry.Config{AdminTokens: []string{"admin"}, IssuerTokens: map[string]string{"issuer": "issuer-token"},
		Now: now, Logger: slog.New(slog.DiscardHandler)})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-done
		store.Close()
	})
	url := "http://" + ln.Addr().String()
	admin := registry.NewClient(url, "admin", nil)
	for _, p := range demo.People() {
		rp := &registry.Person{PersonID: p.PersonID, BirthDate: *p.Holder.BirthDate, Doses: p.Holder.Doses, Tests: p.Holder.Tests}
		if p.Holder.RecoveredOn != nil {
			rp.Recoveries = []kipass.Date{*p.Holder.RecoveredOn}
		}
		if p.Holder.Exemption != "" {
			rp.Exemptions = []registry.Exemption{{Kind: p.Holder.Exemption}}
		}
		if _, err := admin.PutPerson(context.Background(), rp); err != nil {
			t.Fatal(err)
		}
	}
	return url, "issuer-token"
}

// codeCatcher is a Verifier that remembers the console verifier's codes.
type codeCatcher struct {
	issuer.ConsoleVerifier
	mu    sync.Mutex
	codes map[string]string
}

func newCodeCatcher() *codeCatcher {
	c := &codeCatcher{codes: map[string]string{}}
	c.OnCode = func(id, code string) {
		c.mu.Lock()
		c.codes[id] = code
		c.mu.Unlock()
	}
	return c
}

func (c *codeCatcher) code(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.codes[id]
}

// TestServeIssuerAndWallet starts `kipass serve issuer` in-process on 127.0.0.1:0 with
// the real registry, enrols through the API, then runs `kipass wallet`.
func TestServeIssuerAndWallet(t *testing.T) {
	clock := demo.Clock(demo.Start)
	regURL, regToken := startDemoRegistry(t, clock)
	dir := t.TempDir()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	keyFile := filepath.Join(dir, "issuer.key")
	if err := trust.WriteKey(keyFile, key.Seed(), true); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	env := &Env{Stdout: io.Discard, Stderr: &stderr, Getenv: func(name string) string {
		return map[string]string{"KIPASS_ISSUER_KEY": keyFile, "KIPASS_REGISTRY_TOKEN": regToken}[name]
	}}
	m := newIssuerMain(env)
	if err := m.ParseFlags([]string{"--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--registry", regURL,
		"--investigator-tokens", "epi:inv-token", "--auditor-token", "aud-token", "--pass-ttl", "20s"}); err != nil {
		t.Fatal(err)
	}
	if m.KeyPath != keyFile || m.Investigators["epi"] != "inv-token" {
		t.Fatalf("flags and environment: key %q investigators %v", m.KeyPath, m.Investigators)
	}
	codes := newCodeCatcher()
	m.Now, m.Verifier = clock, codes
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	url := m.URL()

	post := func(path string, body any, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := http.Post(url+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			data, _ := io.ReadAll(resp.Body)
			t.Fatalf("POST %s: HTTP %d %s", path, resp.StatusCode, data)
		}
		json.NewDecoder(resp.Body).Decode(out)
	}
	p := demo.People()[0]
	var started issuer.EnrolmentStarted
	post("/v1/enrolments", map[string]string{"name": p.Name, "phone": "01000000001", "birth_date": p.Holder.BirthDate.String(), "person_id": p.PersonID}, &started)
	var cred issuer.WalletCredential
	post("/v1/enrolments/"+started.EnrolmentID+"/verify", map[string]string{"code": codes.code(started.EnrolmentID)}, &cred)

	wallet := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }},
			append([]string{"wallet", "--issuer", url, "--token", cred.WalletToken}, args...))
		return code, out.String(), errb.String()
	}
	code, out, errs := wallet()
	if code != 0 {
		t.Fatalf("kipass wallet: exit %d: %s", code, errs)
	}
	for _, want := range []string{"▀", "초 남음", "까지 유효", "3차 접종 완료", "KP1:"} {
		if !strings.Contains(out, want) {
			t.Errorf("kipass wallet output lacks %q:\n%s", want, out)
		}
	}
	// Base45 has spaces: the pass is the whole line.
	text := regexp.MustCompile(`(?m)^KP1:.*$`).FindString(out)
	pp, err := pass.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if err := pp.Verify(pub); err != nil || pp.Claims.Expiry.Sub(pp.Claims.IssuedAt) != 20*time.Second {
		t.Fatalf("the printed pass: %v, life %s", err, pp.Claims.Expiry.Sub(pp.Claims.IssuedAt))
	}

	if _, out, _ = wallet("--lang", "en"); !strings.Contains(out, "Valid for") || !strings.Contains(out, "Booster dose received") {
		t.Errorf("kipass wallet --lang en:\n%s", out)
	}
	code, out, errs = wallet("--offline")
	m1 := regexp.MustCompile(`: (\d+) \(5m0s windows`).FindStringSubmatch(out)
	if code != 0 || m1 == nil {
		t.Fatalf("kipass wallet --offline: exit %d %q %s", code, out, errs)
	}
	if n, _ := strconv.Atoi(m1[1]); n < 144 || n > 145 {
		t.Errorf("kipass wallet --offline fetched %d passes, want 144 or 145 for 12 h of 5-minute windows", n)
	}
	if strings.Contains(stderr.String(), p.Name) || strings.Contains(stderr.String(), cred.WalletToken) {
		t.Error("the service log holds a name or a token")
	}
}

func TestIssuerAndWalletFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"ServeNoData", []string{"serve", "issuer", "--key", "k", "--registry", "http://x"}},
		{"ServeNoKey", []string{"serve", "issuer", "--data", "d", "--registry", "http://x"}},
		{"ServeNoRegistry", []string{"serve", "issuer", "--data", "d", "--key", "k"}},
		{"ServeBadTTL", []string{"serve", "issuer", "--data", "d", "--key", "k", "--registry", "http://x", "--pass-ttl", "0s"}},
		{"ServeBadTokens", []string{"serve", "issuer", "--data", "d", "--key", "k", "--registry", "http://x", "--investigator-tokens", "nocolon"}},
		{"WalletNoToken", []string{"wallet", "--issuer", "http://127.0.0.1:1"}},
		{"WalletBadLang", []string{"wallet", "--token", "t", "--lang", "fr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, tc.args)
			if code != 2 {
				t.Fatalf("exit %d, want 2: %s", code, errb.String())
			}
		})
	}
	t.Run("WalletIssuerDown", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := run(context.Background(), &Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }},
			[]string{"wallet", "--issuer", "http://127.0.0.1:1", "--token", "t"})
		if code != 1 || !strings.Contains(errb.String(), "issuer unreachable") {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	})
}
