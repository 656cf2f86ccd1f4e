package trace_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/demo"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/trace"
	"github.com/kipass/kipass/trace/tracetest"
)

// world is the synthetic population shared by the scenario tests.
func world(t *testing.T) *tracetest.World {
	t.Helper()
	w := tracetest.New(t, demo.Start)
	start := time.Now()
	w.Populate(tracetest.Options{Visitors: 2000, Facilities: 200, Days: 28, VisitsPerDay: 600, CaseVisitsPerDay: 2, Seed: 7})
	t.Logf("populated %d visits in %s", len(w.Visits), time.Since(start).Round(time.Millisecond))
	return w
}

func config(w *tracetest.World) trace.Config {
	return trace.Config{
		Central: w.CentralClient(tracetest.InvestigatorToken),
		Issuer:  w.IssuerClient(tracetest.IssuerInvToken),
		SealKey: w.SealKey,
	}
}

func TestScenario(t *testing.T) {
	w := world(t)
	ctx := context.Background()
	casePerson := w.People[0]

	t.Run("ByPhone", func(t *testing.T) {
		var steps []string
		cfg := config(w)
		cfg.Progress = func(s string) { steps = append(steps, s) }
		res, err := trace.Run(ctx, cfg, trace.Case{ID: "C-2022-0001", Reason: "confirmed case: contact tracing", Phone: casePerson.Phone, Now: w.Clock.Now()})
		if err != nil {
			t.Fatal(err)
		}
		want := w.Expected(casePerson, time.Hour, 2*time.Hour)
		got := tracetest.Canonical(res.Contacts)
		if len(want) < 10 {
			t.Fatalf("the scenario has only %d contacts: too few to test anything", len(want))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("contacts differ from the ground truth: got %d, want %d", len(got), len(want))
			diff(t, got, want)
		}
		if res.Unresolved != 0 {
			t.Errorf("unresolved = %d, want 0", res.Unresolved)
		}
		if res.DayTags != 28 {
			t.Errorf("day tags = %d, want 28", res.DayTags)
		}
		methods := map[string]bool{}
		named := 0
		for _, c := range res.Contacts {
			if c.Name != "" {
				named++
			}
			for _, e := range c.Exposures {
				methods[e.Method] = true
				if e.CaseAt.IsZero() || e.Offset < -time.Hour || e.Offset >= 2*time.Hour {
					t.Errorf("exposure %s: case at %s, offset %s", e.VisitID, e.CaseAt, e.Offset)
				}
			}
		}
		for _, m := range kipass.Methods {
			if !methods[m] {
				t.Errorf("no contact by method %s: the scenario does not exercise it", m)
			}
		}
		if named == len(res.Contacts) || named == 0 {
			t.Errorf("%d of %d contacts named: want some named and some known only by phone", named, len(res.Contacts))
		}
		if len(steps) < 4 {
			t.Errorf("progress steps = %q", steps)
		}
		t.Logf("%d case visits, %d co-visits, %d contacts", len(res.CaseVisits), res.CoVisits, len(res.Contacts))
	})

	t.Run("ByPersonIDWithWindow", func(t *testing.T) {
		res, err := trace.Run(ctx, config(w), trace.Case{ID: "C-2022-0002", Reason: "confirmed case", PersonID: casePerson.PersonID,
			Before: 30 * time.Minute, After: time.Hour, Now: w.Clock.Now()})
		if err != nil {
			t.Fatal(err)
		}
		want := w.Expected(casePerson, 30*time.Minute, time.Hour)
		if got := tracetest.Canonical(res.Contacts); !reflect.DeepEqual(got, want) {
			t.Errorf("contacts differ from the ground truth: got %d, want %d", len(got), len(want))
			diff(t, got, want)
		}
	})

	t.Run("Facility", func(t *testing.T) {
		f := w.Facilities[3]
		from, to := w.Clock.Now().Add(-72*time.Hour), w.Clock.Now()
		res, err := trace.Run(ctx, config(w), trace.Case{ID: "C-2022-0003", Reason: "venue outbreak", Facility: f.ID, From: from, To: to, Now: w.Clock.Now()})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, v := range w.Visits {
			if v.FacilityID == f.ID && !v.At.Before(from) && v.At.Before(to) {
				n++
			}
		}
		got := 0
		for _, c := range res.Contacts {
			got += len(c.Exposures)
		}
		if got != n || n == 0 {
			t.Errorf("exposures = %d, want %d (every visit in the window)", got, n)
		}
	})

	t.Run("UnknownSubject", func(t *testing.T) {
		_, err := trace.Run(ctx, config(w), trace.Case{ID: "C-9", Reason: "r", Phone: "010-9999-9999", Now: w.Clock.Now()})
		if err != trace.ErrNoSubject {
			t.Errorf("err = %v, want ErrNoSubject", err)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		good := trace.Case{ID: "C-1", Reason: "r", Phone: casePerson.Phone, Now: w.Clock.Now()}
		for _, tc := range []struct {
			name   string
			mutate func(*trace.Config, *trace.Case)
			code   string
		}{
			{"WrongIssuerToken", func(c *trace.Config, _ *trace.Case) { c.Issuer = w.IssuerClient("wrong") }, kipass.EUNAUTHORIZED},
			{"MissingIssuerToken", func(c *trace.Config, _ *trace.Case) { c.Issuer = w.IssuerClient("") }, kipass.EUNAUTHORIZED},
			{"WrongCentralToken", func(c *trace.Config, _ *trace.Case) { c.Central = w.CentralClient("wrong") }, kipass.EUNAUTHORIZED},
			{"MissingCentralToken", func(c *trace.Config, _ *trace.Case) { c.Central = w.CentralClient("") }, kipass.EUNAUTHORIZED},
			{"AuditorTokenIsNotInvestigator", func(c *trace.Config, _ *trace.Case) { c.Central = w.CentralClient(tracetest.AuditorToken) }, ""},
			{"MissingCaseID", func(_ *trace.Config, c *trace.Case) { c.ID = "" }, kipass.EINVALID},
			{"MissingReason", func(_ *trace.Config, c *trace.Case) { c.Reason = "" }, kipass.EINVALID},
			{"TwentyNineDays", func(_ *trace.Config, c *trace.Case) { c.Days = 30 }, kipass.EINVALID},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cfg, c := config(w), good
				tc.mutate(&cfg, &c)
				_, err := trace.Run(ctx, cfg, c)
				if err == nil {
					t.Fatal("trace answered")
				}
				if tc.code != "" && kipass.ErrorCode(err) != tc.code {
					t.Errorf("code = %s (%v), want %s", kipass.ErrorCode(err), err, tc.code)
				}
			})
		}
		// Central refuses on its own a window 29 days back, whatever the issuer says.
		cl := w.CentralClient(tracetest.InvestigatorToken)
		err := cl.Do(ctx, "POST", "/v1/trace/facility-visits", kiphttp.TraceFacilityRequest{
			TraceCase: kiphttp.TraceCase{CaseID: "C-1", Reason: "r"}, FacilityID: w.Facilities[0].ID,
			From: w.Clock.Now().Add(-29 * 24 * time.Hour), To: w.Clock.Now()}, nil)
		if kipass.ErrorCode(err) != kipass.EINVALID {
			t.Errorf("central, 29 days back: %v, want EINVALID", err)
		}
		d29 := kipass.DateOf(w.Clock.Now()).AddDays(-29)
		today := kipass.DateOf(w.Clock.Now())
		err = w.IssuerClient(tracetest.IssuerInvToken).Do(ctx, "POST", "/v1/trace/day-tags", issuer.DayTagsRequest{
			TraceCase: issuer.TraceCase{CaseID: "C-1", Reason: "r"}, Subject: &issuer.TraceSubject{Phone: casePerson.Phone}, From: &d29, To: &today}, nil)
		if kipass.ErrorCode(err) != kipass.EINVALID {
			t.Errorf("issuer, 29 days back: %v, want EINVALID", err)
		}
	})

	t.Run("Audited", func(t *testing.T) {
		var central kiphttp.AuditList
		if err := w.CentralClient(tracetest.AuditorToken).Do(ctx, "GET", "/v1/audit", nil, &central); err != nil {
			t.Fatal(err)
		}
		var iss issuer.AuditList
		if err := w.IssuerClient(tracetest.IssuerAuditToken).Do(ctx, "GET", "/v1/audit", nil, &iss); err != nil {
			t.Fatal(err)
		}
		count := func(es []*kipass.AuditEntry) map[string]map[string]int {
			m := map[string]map[string]int{}
			for _, e := range es {
				if m[e.CaseID] == nil {
					m[e.CaseID] = map[string]int{}
				}
				m[e.CaseID][e.Action]++
				if e.Actor != tracetest.Investigator || e.Reason == "" {
					t.Errorf("entry %d: actor %q, reason %q", e.Seq, e.Actor, e.Reason)
				}
			}
			return m
		}
		c, i := count(central.Entries), count(iss.Entries)
		if c["C-2022-0001"]["visits_by_day_tags"] != 1 || c["C-2022-0001"]["co_visits"] != 1 || c["C-2022-0003"]["facility_visits"] != 1 {
			t.Errorf("central audit: %v", c)
		}
		if i["C-2022-0001"][issuer.AuditActionDayTags] != 1 || i["C-2022-0001"][issuer.AuditActionResolve] < 2 || i["C-2022-0002"][issuer.AuditActionDayTags] != 1 {
			t.Errorf("issuer audit: %v", i)
		}
		// The refused queries left nothing.
		if len(c[""]) != 0 || len(i[""]) != 0 {
			t.Errorf("refused queries audited: central %v, issuer %v", c[""], i[""])
		}
	})
}

// diff logs the first differences between two canonical contact lists.
func diff(t *testing.T, got, want []trace.Contact) {
	t.Helper()
	g := map[string]trace.Contact{}
	for _, c := range got {
		g[c.Phone] = c
	}
	n := 0
	for _, c := range want {
		if o, ok := g[c.Phone]; !ok {
			t.Logf("missing contact (%d exposures)", len(c.Exposures))
		} else if !reflect.DeepEqual(o, c) {
			t.Logf("contact differs: got %+v, want %+v", o.Exposures, c.Exposures)
		}
		delete(g, c.Phone)
		if n++; n > 10 {
			return
		}
	}
	for _, c := range g {
		t.Logf("extra contact (%d exposures)", len(c.Exposures))
	}
}
