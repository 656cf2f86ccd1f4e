package issuer_test

import (
	"bytes"
	"database/sql"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/pass"
)

func TestTraceDayTags(t *testing.T) {
	h := newHarness(t)
	p := person("R-0001")
	tok := h.enrol(p)
	h.enrol(person("R-0002"))
	day1 := mustParse(t, h.pass(tok).Pass)
	h.clock.Advance(24 * time.Hour)
	day2 := mustParse(t, h.pass(tok).Pass)
	today := kipass.DateOf(h.clock.Now())

	for _, sub := range []map[string]string{{"phone": "+82 10 0000 0001"}, {"person_id": p.PersonID}} {
		var res issuer.DayTagsResponse
		h.mustCall("POST", "/v1/trace/day-tags", investigator, map[string]any{
			"case_id": "C-10", "reason": "confirmed case", "subject": sub, "from": today - 1, "to": today,
		}, http.StatusOK, &res)
		if res.Subjects != 1 || len(res.DayTags) != 2 || res.AuditSeq == 0 {
			t.Fatalf("%v: %+v", sub, res)
		}
		if res.DayTags[0].Date != today-1 || !bytes.Equal(res.DayTags[0].DayTag, day1.DTag) {
			t.Fatalf("%v: yesterday's tag does not match yesterday's pass", sub)
		}
		if res.DayTags[1].Date != today || !bytes.Equal(res.DayTags[1].DayTag, day2.DTag) {
			t.Fatalf("%v: today's tag does not match today's pass", sub)
		}
	}
	if bytes.Equal(day1.DTag, day2.DTag) {
		t.Fatal("one person's day tags are equal on two days")
	}

	t.Run("ErrNotFound", func(t *testing.T) {
		status, _ := h.call("POST", "/v1/trace/day-tags", investigator, map[string]any{
			"case_id": "C-11", "reason": "r", "subject": map[string]string{"phone": "010-9876-5432"}, "from": today, "to": today})
		if status != http.StatusNotFound {
			t.Fatalf("unknown subject: HTTP %d", status)
		}
	})
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"ErrNoCase", map[string]any{"reason": "r", "subject": map[string]string{"person_id": "R-0001"}, "from": today, "to": today}, "case_id"},
		{"ErrNoReason", map[string]any{"case_id": "C", "subject": map[string]string{"person_id": "R-0001"}, "from": today, "to": today}, "reason"},
		{"ErrNoSubject", map[string]any{"case_id": "C", "reason": "r", "from": today, "to": today}, "subject"},
		{"ErrBothSubjects", map[string]any{"case_id": "C", "reason": "r", "subject": map[string]string{"person_id": "R-0001", "phone": p.Phone}, "from": today, "to": today}, "subject"},
		{"ErrTooOld", map[string]any{"case_id": "C", "reason": "r", "subject": map[string]string{"person_id": "R-0001"}, "from": today - 29, "to": today}, "from"},
		{"ErrFuture", map[string]any{"case_id": "C", "reason": "r", "subject": map[string]string{"person_id": "R-0001"}, "from": today, "to": today + 1}, "to"},
		{"ErrUnknownField", map[string]any{"case_id": "C", "reason": "r", "subject": map[string]string{"email": "x"}, "from": today, "to": today}, "subject.email"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.call("POST", "/v1/trace/day-tags", investigator, tc.body)
			if e := errorOf(t, body); status != http.StatusBadRequest || e.Field != tc.field {
				t.Fatalf("HTTP %d %+v, want 400 naming %s", status, e, tc.field)
			}
		})
	}
	t.Run("ErrUnauthorized", func(t *testing.T) {
		for _, tok := range []string{"", "wrong", auditorToken, tok} {
			status, _ := h.call("POST", "/v1/trace/day-tags", tok, map[string]any{"case_id": "C", "reason": "r"})
			if status != http.StatusUnauthorized {
				t.Fatalf("token %q: HTTP %d", tok, status)
			}
		}
	})
}

func TestTraceResolveAndAudit(t *testing.T) {
	h := newHarness(t)
	a, b := person("R-0001"), person("R-0006")
	pa := mustParse(t, h.pass(h.enrol(a)).Pass)
	pb := mustParse(t, h.pass(h.enrol(b)).Pass)
	foreign := make([]byte, pass.SRefSize) // sealed by nobody
	var res issuer.ResolveResponse
	h.mustCall("POST", "/v1/trace/resolve", investigator, map[string]any{
		"case_id": "C-20", "reason": "co-visitors of case C-20",
		"srefs":        [][]byte{pa.SRef, foreign, pb.SRef, pa.SRef[:10]},
		"safe_numbers": []string{"9999하하", "not a number"},
	}, http.StatusOK, &res)
	want := []struct {
		found bool
		name  string
	}{{true, a.Name}, {false, ""}, {true, b.Name}, {false, ""}, {false, ""}, {false, ""}}
	if len(res.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(res.Results), len(want))
	}
	for i, w := range want {
		if r := res.Results[i]; r.Found != w.found || r.Name != w.name {
			t.Errorf("result %d: %+v, want found=%v name=%q", i, r, w.found, w.name)
		}
	}
	if res.Results[4].SafeNumber != "9999하하" || !bytes.Equal(res.Results[0].SRef, pa.SRef) {
		t.Error("results do not echo what they answer")
	}

	t.Run("ErrMissingCase", func(t *testing.T) {
		status, body := h.call("POST", "/v1/trace/resolve", investigator, map[string]any{"reason": "r", "srefs": [][]byte{pa.SRef}})
		if e := errorOf(t, body); status != http.StatusBadRequest || e.Field != "case_id" {
			t.Fatalf("HTTP %d %+v", status, e)
		}
	})
	t.Run("ErrBadBase64", func(t *testing.T) {
		status, body := h.call("POST", "/v1/trace/resolve", investigator, `{"case_id":"C","reason":"r","srefs":["!!"]}`)
		if e := errorOf(t, body); status != http.StatusBadRequest || e.Field != "srefs[0]" {
			t.Fatalf("HTTP %d %+v", status, e)
		}
	})

	// The audit log has one entry per answered query, chained.
	var list issuer.AuditList
	h.mustCall("GET", "/v1/audit", auditorToken, nil, http.StatusOK, &list)
	if len(list.Entries) != 1 {
		t.Fatalf("%d audit entries, want 1 (refused queries are not answered)", len(list.Entries))
	}
	e := list.Entries[0]
	if e.Actor != "epi-1" || e.Action != issuer.AuditActionResolve || e.CaseID != "C-20" || e.Reason != "co-visitors of case C-20" || e.Seq != 1 {
		t.Fatalf("audit entry: %+v", e)
	}
	if res.AuditSeq != e.Seq {
		t.Fatalf("answer names audit seq %d, the log has %d", res.AuditSeq, e.Seq)
	}
	today := kipass.DateOf(h.clock.Now())
	h.mustCall("POST", "/v1/trace/day-tags", investigator, map[string]any{
		"case_id": "C-20", "reason": "case", "subject": map[string]string{"person_id": a.PersonID}, "from": today, "to": today,
	}, http.StatusOK, nil)
	var v issuer.AuditVerification
	h.mustCall("GET", "/v1/audit/verify", auditorToken, nil, http.StatusOK, &v)
	if !v.OK || v.Entries != 2 {
		t.Fatalf("verify: %+v", v)
	}
	if status, _ := h.call("GET", "/v1/audit", investigator, nil); status != http.StatusUnauthorized {
		t.Fatalf("investigator read the audit log: HTTP %d", status)
	}

	// Tamper with the first entry behind the service's back.
	db, err := sql.Open("sqlite", filepath.Join(h.cfg.DataDir, issuer.DBFile)+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_log SET reason = 'routine check' WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	h.mustCall("GET", "/v1/audit/verify", auditorToken, nil, http.StatusOK, &v)
	if v.OK || v.BrokenAt != 1 {
		t.Fatalf("tampered log verifies: %+v", v)
	}
}

// TestKeyRotationThroughService: a pass's sref resolves 27 days later, with keys
// rotated daily and the issuer restarted, and no longer once retention and the longest
// pass life have passed.
func TestKeyRotationThroughService(t *testing.T) {
	h := newHarness(t)
	p := person("R-0001")
	first := mustParse(t, h.pass(h.enrol(p)).Pass)
	resolves := func() bool {
		t.Helper()
		var res issuer.ResolveResponse
		h.mustCall("POST", "/v1/trace/resolve", investigator, map[string]any{"case_id": "C-30", "reason": "r", "srefs": [][]byte{first.SRef}}, http.StatusOK, &res)
		return res.Results[0].Found
	}
	for day := 1; day <= 27; day++ {
		h.clock.Advance(24 * time.Hour)
		if _, err := h.svc.RunRetention(t.Context()); err != nil {
			t.Fatal(err)
		}
		if day == 14 {
			h.close()
			h.open()
		}
	}
	if !resolves() {
		t.Fatal("27 days later, the sref no longer resolves")
	}
	// The first seal key was retired on day 1; it goes 28 days plus the longest pass
	// life (25 h) later.
	h.clock.Advance(4 * 24 * time.Hour)
	rep, err := h.svc.RunRetention(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.SealKeys == 0 || rep.DayKeys == 0 {
		t.Fatalf("retention destroyed no keys: %+v", rep)
	}
	if resolves() {
		t.Fatal("31 days later, the sref still resolves")
	}
}
