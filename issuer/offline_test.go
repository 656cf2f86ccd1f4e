package issuer_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/scanner"
)

// TestOfflinePasses: each pre-issued pass is valid in its own window and refused
// before and after it.
func TestOfflinePasses(t *testing.T) {
	h := newHarness(t)
	tok := h.enrol(person("R-0001"))
	var res issuer.OfflineResponse
	h.mustCall("GET", "/v1/passes/offline?hours=1&window=5m", tok, nil, http.StatusOK, &res)
	now := res.Now
	first := now.Truncate(5 * time.Minute)
	want := int(now.Add(time.Hour).Sub(first)/(5*time.Minute)) + 1
	if now.Add(time.Hour).Sub(first)%(5*time.Minute) == 0 {
		want--
	}
	if len(res.Passes) != want {
		t.Fatalf("%d passes for 1 h of 5-minute windows, want %d", len(res.Passes), want)
	}
	if res.Window != "5m0s" || len(res.Status) == 0 || res.FactsStale {
		t.Fatalf("answer: window %q status %v stale %v", res.Window, res.Status, res.FactsStale)
	}
	tol := scanner.ClockTolerance
	var srefs [][]byte
	for i, op := range res.Passes {
		start := first.Add(time.Duration(i) * 5 * time.Minute)
		c := mustParse(t, op.Pass)
		if !c.IssuedAt.Equal(start) || !c.Expiry.Equal(start.Add(5*time.Minute)) || !op.NotBefore.Equal(start) || !op.ExpiresAt.Equal(c.Expiry) {
			t.Fatalf("pass %d: %s to %s, want the window %s to %s", i, c.IssuedAt, c.Expiry, start, start.Add(5*time.Minute))
		}
		if !bytes.Equal(c.DTag, mustParse(t, res.Passes[0].Pass).DTag) && kipass.DateOf(start) == kipass.DateOf(first) {
			t.Fatalf("pass %d: another day tag on the same day", i)
		}
		for _, s := range srefs {
			if bytes.Equal(s, c.SRef) {
				t.Fatalf("pass %d repeats an sref", i)
			}
		}
		srefs = append(srefs, c.SRef)
		for _, tc := range []struct {
			at   time.Time
			want kipass.Outcome
			why  string
		}{
			{start.Add(2 * time.Minute), kipass.PASS, ""},
			{start.Add(-tol - time.Second), scanner.Refused, scanner.RefusalNotYetValid},
			{start.Add(5*time.Minute + tol + time.Second), scanner.Refused, scanner.RefusalExpired},
		} {
			if r := h.scanAt(op.Pass, tc.at); r.Outcome != tc.want || r.Refusal != tc.why {
				t.Fatalf("pass %d at %s: %s %s, want %s %s", i, tc.at.Sub(start), r.Outcome, r.Refusal, tc.want, tc.why)
			}
		}
		if len(op.QRSVG) < 100 {
			t.Fatalf("pass %d: no QR", i)
		}
	}

	for _, tc := range []struct{ query, field string }{
		{"hours=25", "hours"},
		{"hours=0", "hours"},
		{"hours=x", "hours"},
		{"window=7m", "window"},
		{"window=30s", "window"},
		{"window=2h", "window"},
	} {
		t.Run("Err_"+tc.query, func(t *testing.T) {
			status, body := h.call("GET", "/v1/passes/offline?"+tc.query, tok, nil)
			if e := errorOf(t, body); status != http.StatusBadRequest || e.Field != tc.field {
				t.Fatalf("HTTP %d %+v, want 400 naming %s", status, e, tc.field)
			}
		})
	}
}

// TestOfflineAcrossMidnight: passes of windows after midnight carry the next day's tag,
// the one an investigator computes for that day.
func TestOfflineAcrossMidnight(t *testing.T) {
	h := newHarness(t)
	tok := h.enrol(person("R-0002"))
	// Move the clock to 23:30 KST.
	now := h.clock.Now()
	midnight := (kipass.DateOf(now) + 1).Start()
	h.clock.Advance(midnight.Add(-30 * time.Minute).Sub(now))
	var res issuer.OfflineResponse
	h.mustCall("GET", "/v1/passes/offline?hours=1&window=15m", tok, nil, http.StatusOK, &res)
	var res2 issuer.DayTagsResponse
	next := kipass.DateOf(midnight)
	h.mustCall("POST", "/v1/trace/day-tags", investigator, map[string]any{
		"case_id": "C-40", "reason": "r", "subject": map[string]string{"person_id": "R-0002"}, "from": next - 1, "to": next - 1,
	}, http.StatusOK, &res2)
	before := res2.DayTags[0].DayTag
	for _, op := range res.Passes {
		c := mustParse(t, op.Pass)
		if want := kipass.DateOf(c.IssuedAt) == next-1; bytes.Equal(c.DTag, before) != want {
			t.Fatalf("window %s: day tag of the wrong day", c.IssuedAt.In(kipass.KST))
		}
	}
	// Tomorrow, the investigator's tag for that day matches the passes after midnight.
	h.clock.Advance(time.Hour)
	h.mustCall("POST", "/v1/trace/day-tags", investigator, map[string]any{
		"case_id": "C-40", "reason": "r", "subject": map[string]string{"person_id": "R-0002"}, "from": next, "to": next,
	}, http.StatusOK, &res2)
	last := mustParse(t, res.Passes[len(res.Passes)-1].Pass)
	if kipass.DateOf(last.IssuedAt) != next || !bytes.Equal(last.DTag, res2.DayTags[0].DayTag) {
		t.Fatal("the pass after midnight does not carry the next day's tag")
	}
}

// TestWithoutQR: ?qr=none leaves the SVG out, for clients that draw the code.
func TestWithoutQR(t *testing.T) {
	h := newHarness(t)
	tok := h.enrol(person("R-0001"))
	var p issuer.PassResponse
	h.mustCall("GET", "/v1/pass?qr=none", tok, nil, http.StatusOK, &p)
	if p.QRSVG != "" || h.scanAt(p.Pass, h.clock.Now()).Outcome != kipass.PASS {
		t.Fatalf("qr=none: svg %d bytes", len(p.QRSVG))
	}
	var res issuer.OfflineResponse
	h.mustCall("GET", "/v1/passes/offline?hours=1&qr=none", tok, nil, http.StatusOK, &res)
	if len(res.Passes) < 12 || res.Passes[0].QRSVG != "" {
		t.Fatalf("offline qr=none: %d passes", len(res.Passes))
	}
	if status, body := h.call("GET", "/v1/pass?qr=png", tok, nil); status != http.StatusBadRequest || errorOf(t, body).Field != "qr" {
		t.Fatalf("qr=png: HTTP %d %s", status, body)
	}
}
