package http_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
)

func TestTrace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{})
		ctx := context.Background()
		fa, fb := e.MustCreateFacility("A", ""), e.MustCreateFacility("B", "")
		devA, _ := e.MustEnroll(fa.ID)
		devB, _ := e.MustEnroll(fb.ID)
		now := e.Clock.Now()

		// The case visits A at now-3h and B at now-26h; others visit around them.
		caseA := QRVisit(fa.ID, now.Add(-3*time.Hour))
		caseB := QRVisit(fb.ID, now.Add(-26*time.Hour))
		nearA := QRVisit(fa.ID, now.Add(-3*time.Hour+90*time.Minute)) // within 2 h after
		farA := QRVisit(fa.ID, now.Add(-6*time.Hour))                 // 3 h before: outside
		nearB := QRVisit(fb.ID, now.Add(-26*time.Hour-30*time.Minute))
		caseB.DTag = caseA.DTag // same day tag only for the test's sake
		for _, up := range []struct {
			dev    *kiphttp.Client
			visits []*kipass.Visit
		}{{devA, []*kipass.Visit{caseA, nearA, farA}}, {devB, []*kipass.Visit{caseB, nearB}}} {
			res, err := up.dev.UploadVisits(ctx, up.visits)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Status != kipass.VisitStored {
					t.Fatalf("%+v", r)
				}
			}
		}
		ids := func(vs []*kipass.Visit) string {
			var s []string
			for _, v := range vs {
				s = append(s, v.ID)
			}
			return strings.Join(s, ",")
		}
		trace := func(path string, req any) *kiphttp.TraceResponse {
			t.Helper()
			var out kiphttp.TraceResponse
			if err := e.Investigator.Do(ctx, "POST", path, req, &out); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if out.AuditSeq == 0 {
				t.Fatalf("%s: no audit entry", path)
			}
			return &out
		}
		tc := kiphttp.TraceCase{CaseID: "2022-서울-0001", Reason: "confirmed case interview"}

		t.Run("ByDayTags", func(t *testing.T) {
			out := trace("/v1/trace/visits-by-day-tags", kiphttp.TraceByDayTagsRequest{TraceCase: tc, DayTags: [][]byte{caseA.DTag}})
			if got, want := ids(out.Visits), caseB.ID+","+caseA.ID; got != want && got != caseA.ID+","+caseB.ID {
				t.Fatalf("got %s, want %s", got, want)
			}
			if out.Visits[0].SRef == nil || out.Visits[0].DTag == nil {
				t.Fatal("trace answers lack the sealed reference or day tag")
			}
		})

		t.Run("FacilityVisits", func(t *testing.T) {
			out := trace("/v1/trace/facility-visits", kiphttp.TraceFacilityRequest{TraceCase: tc, FacilityID: fa.ID, From: now.Add(-4 * time.Hour), To: now})
			if got, want := ids(out.Visits), caseA.ID+","+nearA.ID; got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})

		t.Run("CoVisits", func(t *testing.T) {
			out := trace("/v1/trace/co-visits", kiphttp.TraceCoVisitsRequest{TraceCase: tc, Visits: []kiphttp.CaseVisit{
				{FacilityID: fa.ID, At: caseA.At}, {FacilityID: fb.ID, At: caseB.At},
			}})
			if got, want := ids(out.Visits), nearB.ID+","+caseB.ID+","+caseA.ID+","+nearA.ID; got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
			before := kiphttp.Duration(4 * time.Hour)
			out = trace("/v1/trace/co-visits", kiphttp.TraceCoVisitsRequest{TraceCase: tc, Visits: []kiphttp.CaseVisit{{FacilityID: fa.ID, At: caseA.At}}, Before: &before})
			if got, want := ids(out.Visits), farA.ID+","+caseA.ID+","+nearA.ID; got != want {
				t.Fatalf("with before=4h: got %s, want %s", got, want)
			}
		})

		t.Run("Refusals", func(t *testing.T) {
			old := now.Add(-29 * 24 * time.Hour)
			for _, c := range []struct {
				name, path, body, field string
			}{
				{"ErrNoCaseID", "/v1/trace/facility-visits", `{"reason":"r","facility_id":"x","from":"2022-01-01T00:00:00Z","to":"2022-01-02T00:00:00Z"}`, "case_id"},
				{"ErrNoReason", "/v1/trace/visits-by-day-tags", `{"case_id":"c","day_tags":["AAAAAAAAAAAAAAAAAAAAAA=="]}`, "reason"},
				{"ErrNoDayTags", "/v1/trace/visits-by-day-tags", `{"case_id":"c","reason":"r","day_tags":[]}`, "day_tags"},
				{"ErrShortDayTag", "/v1/trace/visits-by-day-tags", `{"case_id":"c","reason":"r","day_tags":["AAAA"]}`, "day_tags[0]"},
				{"ErrTooOld", "/v1/trace/facility-visits", `{"case_id":"c","reason":"r","facility_id":"x","from":"` + old.Format(time.RFC3339) + `","to":"` + now.Format(time.RFC3339) + `"}`, "from"},
				{"ErrToBeforeFrom", "/v1/trace/facility-visits", `{"case_id":"c","reason":"r","facility_id":"x","from":"` + now.Format(time.RFC3339) + `","to":"` + now.Add(-time.Hour).Format(time.RFC3339) + `"}`, "to"},
				{"ErrOldCaseVisit", "/v1/trace/co-visits", `{"case_id":"c","reason":"r","visits":[{"facility_id":"x","at":"` + old.Format(time.RFC3339) + `"}]}`, "visits[0].at"},
				{"ErrBadWindow", "/v1/trace/co-visits", `{"case_id":"c","reason":"r","visits":[{"facility_id":"x","at":"` + now.Format(time.RFC3339) + `"}],"after":"48h"}`, "after"},
				{"ErrBadDuration", "/v1/trace/co-visits", `{"case_id":"c","reason":"r","visits":[],"before":3600}`, "before"},
				{"ErrUnknownField", "/v1/trace/co-visits", `{"case_id":"c","reason":"r","visits":[],"everything":true}`, "everything"},
			} {
				t.Run(c.name, func(t *testing.T) {
					expectError(t, e.Do("POST", c.path, investigatorToken, []byte(c.body)), 400, kipass.EINVALID, c.field)
				})
			}
		})

		t.Run("AuditLog", func(t *testing.T) {
			var list kiphttp.AuditList
			if err := e.Auditor.Do(ctx, "GET", "/v1/audit", nil, &list); err != nil {
				t.Fatal(err)
			}
			if len(list.Entries) != 4 {
				t.Fatalf("%d audit entries, want 4 (refused queries are not answered, so not audited)", len(list.Entries))
			}
			actions := []string{"visits_by_day_tags", "facility_visits", "co_visits", "co_visits"}
			for i, en := range list.Entries {
				if en.Actor != investigatorName || en.CaseID != tc.CaseID || en.Reason != tc.Reason || en.Action != actions[i] || en.Seq != int64(i+1) {
					t.Fatalf("entry %d: %+v", i, en)
				}
				if !json.Valid([]byte(en.Query)) {
					t.Fatalf("entry %d query is not JSON: %s", i, en.Query)
				}
			}
			if !strings.Contains(list.Entries[1].Query, fa.ID) {
				t.Fatalf("facility query not recorded: %s", list.Entries[1].Query)
			}
			// A window in the past selects nothing.
			q := url.Values{"from": {now.Add(-48 * time.Hour).Format(time.RFC3339)}, "to": {now.Add(-47 * time.Hour).Format(time.RFC3339)}}
			if err := e.Auditor.Do(ctx, "GET", "/v1/audit?"+q.Encode(), nil, &list); err != nil || len(list.Entries) != 0 {
				t.Fatalf("%v %d", err, len(list.Entries))
			}
			expectError(t, e.Do("GET", "/v1/audit?from=yesterday", auditorToken, nil), 400, kipass.EINVALID, "from")

			var v kiphttp.AuditVerification
			if err := e.Auditor.Do(ctx, "GET", "/v1/audit/verify", nil, &v); err != nil || !v.OK {
				t.Fatalf("verify before tampering: %v %+v", err, v)
			}
			if err := e.Store.TamperAudit(ctx, 2, "curiosity"); err != nil {
				t.Fatal(err)
			}
			if err := e.Auditor.Do(ctx, "GET", "/v1/audit/verify", nil, &v); err != nil || v.OK || v.BrokenAt != 2 {
				t.Fatalf("verify after tampering: %v %+v, want broken at 2", err, v)
			}
		})

		t.Run("SharedTokens", func(t *testing.T) {
			shared := QRVisit(fb.ID, now.Add(-time.Minute))
			shared.TokenID = caseA.TokenID // the same pass shown at A and at B
			if res, err := devB.UploadVisits(ctx, []*kipass.Visit{shared}); err != nil || res[0].Status != kipass.VisitStored {
				t.Fatalf("%v %+v", err, res)
			}
			var list kiphttp.SharedTokenList
			if err := e.Admin.Do(ctx, "GET", "/v1/shared-tokens", nil, &list); err != nil {
				t.Fatal(err)
			}
			if len(list.SharedTokens) != 1 || string(list.SharedTokens[0].TokenID) != string(caseA.TokenID) || len(list.SharedTokens[0].FacilityIDs) != 2 {
				t.Fatalf("%+v", list.SharedTokens)
			}
		})
	})
}
