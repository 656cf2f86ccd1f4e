package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/authority"
	"github.com/kipass/kipass/demo"
	kiphttp "github.com/kipass/kipass/http"
)

// TestDemo runs `kipass demo` in-process, takes a demo visitor's pass from the wallet
// API, scans it with the kiosk at the demo gym, and finds the visit at central.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := t.TempDir()
	var out bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	m := &demoMain{env: env}
	if err := m.ParseFlags([]string{"--data", data, "--addr", "127.0.0.1:0", "--issuer-addr", "127.0.0.1:0", "--registry-addr", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	r, err := m.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, want := range []string{"/scan/", "/wallet", "enrollment code", "김민준", "PASS        booster"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}

	// The wallet API gives 김민준 (booster) a pass.
	person := demo.People()[0]
	var p struct {
		Pass string `json:"pass"`
	}
	if err := kiphttp.NewClient(r.urls.issuer, r.wallets[person.PersonID]).Do(ctx, "GET", "/v1/pass?qr=none", nil, &p); err != nil || !strings.HasPrefix(p.Pass, "KP1:") {
		t.Fatalf("wallet pass: %v %q", err, p.Pass)
	}

	// The kiosk at the demo gym decides it on the demo clock and uploads the visit.
	state := filepath.Join(t.TempDir(), "kiosk.db")
	root := filepath.Join(data, "authority", authority.RootPubFile)
	var kout bytes.Buffer
	kenv := &Env{Stdin: strings.NewReader(""), Stdout: &kout, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	if rc := run(ctx, kenv, []string{"scan", "--enroll", r.codes["바다 피트니스"], "--central", r.urls.central, "--root-key", root, "--state", state}); rc != 0 {
		t.Fatalf("enrol: exit %d", rc)
	}
	kenv.Stdin = strings.NewReader(p.Pass + "\n")
	at := m.now().Format(time.RFC3339)
	if rc := run(ctx, kenv, []string{"scan", "--state", state, "--json", "--at", at, "--drain", "20s"}); rc != 0 {
		t.Fatalf("scan: exit %d", rc)
	}
	if !strings.Contains(kout.String(), `"decision":"PASS","basis":"booster"`) {
		t.Fatalf("kiosk said %s", kout.String())
	}

	// An investigator finds the visit at central.
	inv := kiphttp.NewClient(r.urls.central, demoInvestigatorToken)
	var facilities kiphttp.FacilityList
	admin := kiphttp.NewClient(r.urls.central, demoAdminToken)
	if err := admin.Do(ctx, "GET", "/v1/facilities", nil, &facilities); err != nil {
		t.Fatal(err)
	}
	var gym string
	for _, f := range facilities.Facilities {
		if f.Name == "바다 피트니스" {
			gym = f.ID
		}
	}
	var visits struct {
		Visits []*kipass.Visit `json:"visits"`
	}
	now := m.now()
	err = inv.Do(ctx, "POST", "/v1/trace/facility-visits", map[string]any{
		"case_id": "DEMO-1", "reason": "demo test", "facility_id": gym,
		"from": now.Add(-time.Hour), "to": now.Add(time.Hour),
	}, &visits)
	if err != nil || len(visits.Visits) != 1 || visits.Visits[0].Basis != kipass.BasisBooster {
		t.Fatalf("central holds %+v, %v", visits.Visits, err)
	}
}
