package issuer_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/issuer"
)

// TestMintWithRegistryStopped stops the real registry server and mints: the pass
// comes from the cached facts, says they are stale and how old, and still verifies,
// also after an issuer restart (the cache is kept in the issuer's database).
func TestMintWithRegistryStopped(t *testing.T) {
	h := newHarness(t, func(c *issuer.Config) { c.FactsTTL = time.Minute })
	p := person("R-0001")
	tok := h.enrol(p)
	fresh := h.pass(tok)
	if fresh.FactsStale {
		t.Fatal("fresh facts reported stale")
	}

	h.reg.Stop()
	h.clock.Advance(10 * time.Minute)
	start := time.Now()
	got := h.pass(tok)
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("minting with the registry down took %s", elapsed)
	}
	if !got.FactsStale || !got.FactsAsOf.Equal(fresh.FactsAsOf) {
		t.Fatalf("facts_stale=%v facts_as_of=%s, want stale as of %s", got.FactsStale, got.FactsAsOf, fresh.FactsAsOf)
	}
	if r := h.scanAt(got.Pass, h.clock.Now()); r.Outcome != kipass.PASS {
		t.Fatalf("stale pass: %s %s", r.Outcome, r.Detail)
	}
	// The background refresh tried the registry and failed; the metrics say so.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := h.call("GET", "/metrics", "", nil)
		m := string(body)
		if strings.Contains(m, "kipass_issuer_stale_mints_total 1") && !strings.Contains(m, "kipass_issuer_registry_failures_total 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics do not show the stale mint and the registry failure:\n%s", grepLines(m, "kipass_issuer_"))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Restart the issuer while the registry is still down.
	h.close()
	h.open()
	again := h.pass(tok)
	if !again.FactsStale || !again.FactsAsOf.Equal(fresh.FactsAsOf) {
		t.Fatalf("after restart: facts_stale=%v facts_as_of=%s", again.FactsStale, again.FactsAsOf)
	}
	if status, _ := h.call("GET", "/readyz", "", nil); status != http.StatusOK {
		t.Fatalf("readyz with the registry down: HTTP %d, want 200 (the issuer mints from cache)", status)
	}
	// The failed look-ups were logged without the person id their URL carried.
	if logs := h.logs.String(); !strings.Contains(logs, "registry look-up failed") || strings.Contains(logs, p.PersonID) {
		t.Errorf("registry failures not logged, or logged with the person id:\n%s", grepLines(logs, "registry"))
	}
}

// TestEmptyCacheRegistryStopped: with no usable facts for a visitor and the registry
// stopped, the issuer answers a clear 503 with a stable reason at once.
func TestEmptyCacheRegistryStopped(t *testing.T) {
	h := newHarness(t, func(c *issuer.Config) { c.MaxFactsAge = time.Hour })
	tok := h.enrol(person("R-0002"))
	h.reg.Stop()
	// The cached facts age past the point where the issuer mints from them, and
	// retention destroys them: the cache is empty for this visitor.
	h.clock.Advance(2 * time.Hour)
	rep, err := h.svc.RunRetention(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Facts != 1 {
		t.Fatalf("retention destroyed %d facts, want 1", rep.Facts)
	}
	for _, path := range []string{"/v1/pass", "/v1/passes/offline"} {
		start := time.Now()
		status, body := h.call("GET", path, tok, nil)
		elapsed := time.Since(start)
		e := errorOf(t, body)
		if status != http.StatusServiceUnavailable || e.Code != kipass.EUNAVAILABLE || e.Reason != issuer.ReasonRegistryUnavailable {
			t.Fatalf("%s: HTTP %d %+v, want 503 %s", path, status, e, issuer.ReasonRegistryUnavailable)
		}
		if elapsed > time.Second {
			t.Errorf("%s: the 503 took %s", path, elapsed)
		}
	}
	// A new enrolment cannot be checked either, and says so.
	p := person("R-0003")
	status, body := h.call("POST", "/v1/enrolments", "", map[string]string{
		"name": p.Name, "phone": p.Phone, "birth_date": p.Holder.BirthDate.String(), "person_id": p.PersonID})
	if e := errorOf(t, body); status != http.StatusServiceUnavailable || e.Reason != issuer.ReasonRegistryUnavailable {
		t.Fatalf("enrolment with the registry down: HTTP %d %+v", status, e)
	}
}

// TestRegistryCooldown: after a failure, look-ups fail fast without calling the
// registry until the cooldown passes.
func TestRegistryCooldown(t *testing.T) {
	h := newHarness(t, func(c *issuer.Config) { c.RegistryCooldown = time.Minute; c.MaxFactsAge = time.Hour })
	tok := h.enrol(person("R-0002"))
	h.reg.Stop()
	h.clock.Advance(2 * time.Hour)
	for range 3 {
		if status, _ := h.call("GET", "/v1/pass", tok, nil); status != http.StatusServiceUnavailable {
			t.Fatalf("HTTP %d, want 503", status)
		}
	}
	_, body := h.call("GET", "/metrics", "", nil)
	// One call at enrolment, one failed call; the other two were refused by the breaker.
	if m := string(body); !strings.Contains(m, "kipass_issuer_registry_calls_total 2") || !strings.Contains(m, "kipass_issuer_registry_failures_total 1") {
		t.Fatalf("metrics:\n%s", grepLines(m, "kipass_issuer_registry"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestSingleflight: a burst of mints for a visitor with no usable cached facts makes
// one registry call, which every request waits for.
func TestSingleflight(t *testing.T) {
	h := newHarness(t, func(c *issuer.Config) { c.MaxFactsAge = time.Hour })
	tok := h.enrol(person("R-0006")) // registry call 1
	h.clock.Advance(2 * time.Hour)   // the cached facts are now too old to mint from
	const n = 40
	errs := make(chan error, n)
	for range n {
		go func() {
			req, _ := http.NewRequest("GET", h.URL+"/v1/pass", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("HTTP %d", resp.StatusCode)
				}
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	_, body := h.call("GET", "/metrics", "", nil)
	if m := string(body); !strings.Contains(m, "kipass_issuer_registry_calls_total 2") {
		t.Fatalf("%d concurrent mints made more than one registry call:\n%s", n, grepLines(m, "kipass_issuer_registry_calls"))
	}
}
