package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass/demo"
	"github.com/kipass/kipass/trace"
	"github.com/kipass/kipass/trace/tracetest"
	_ "modernc.org/sqlite"
)

// runCmd runs one kipass command line in-process and returns its exit code and streams.
func runCmd(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return vars[k] }}
	code := run(context.Background(), env, args)
	return code, stdout.String(), stderr.String()
}

func TestTraceAndAuditCommands(t *testing.T) {
	w := tracetest.New(t, demo.Start)
	w.Populate(tracetest.Options{Visitors: 150, Facilities: 12, Days: 7, VisitsPerDay: 60, CaseVisitsPerDay: 2, Seed: 3})
	casePerson := w.People[0]
	csvFile := filepath.Join(t.TempDir(), "contacts.csv")
	// Tokens come from the environment, as an investigator's shell would give them.
	vars := map[string]string{"KIPASS_CENTRAL_TOKEN": tracetest.InvestigatorToken, "KIPASS_ISSUER_TOKEN": tracetest.IssuerInvToken}
	base := []string{"trace", "--central", w.CentralURL, "--issuer", w.IssuerURL, "--issuer-keys", w.IssuerKeyID + "=" + w.IssuerURL,
		"--seal-key", w.SealKeyFile}

	t.Run("Trace", func(t *testing.T) {
		args := append(append([]string{}, base...), "--case-id", "C-CLI-1", "--reason", "확진자 역학조사", "--phone", casePerson.Phone, "--csv", csvFile)
		code, stdout, stderr := runCmd(t, vars, args...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		want := w.Expected(casePerson, time.Hour, 2*time.Hour)
		if len(want) == 0 {
			t.Fatal("no contacts in the scenario")
		}
		if !strings.Contains(stderr, "issuer: day tags") || !strings.Contains(stderr, "CSV written") {
			t.Errorf("progress: %s", stderr)
		}
		if strings.Contains(stderr, tracetest.InvestigatorToken) || strings.Contains(stderr, casePerson.Phone) {
			t.Error("progress shows a token or the case's phone number")
		}
		for _, c := range want {
			if !strings.Contains(stdout, c.Phone) {
				t.Errorf("table lacks a contact")
			}
		}
		if !strings.Contains(stdout, "전화번호") {
			t.Errorf("table without its Korean header:\n%s", stdout)
		}
		// Every row of the table is aligned: the phone column starts at the same
		// screen column whatever the width of the names before it.
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		col := -1
		for _, l := range lines[1 : 1+len(want)] {
			i := strings.Index(l, "010-")
			if c := trace.Width(l[:i]); col >= 0 && c != col {
				t.Errorf("phone column at %d, then %d:\n%s", col, c, stdout)
				break
			} else {
				col = c
			}
		}
		f, err := os.Open(csvFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		recs, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(recs[0], trace.CSVHeader) {
			t.Errorf("header %q", recs[0])
		}
		var got, exp []string
		for _, r := range recs[1:] {
			got = append(got, r[2]+" "+r[3]+" "+r[4])
		}
		for _, c := range want {
			for _, e := range c.Exposures {
				exp = append(exp, c.Phone+" "+e.FacilityID+" "+e.Method)
			}
		}
		sort.Strings(got)
		sort.Strings(exp)
		if !reflect.DeepEqual(got, exp) {
			t.Errorf("CSV rows %q, want %q", got, exp)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			vars map[string]string
			args []string
			code int
		}{
			{"MissingCaseID", vars, []string{"--reason", "r", "--phone", casePerson.Phone}, 2},
			{"MissingReason", vars, []string{"--case-id", "C", "--phone", casePerson.Phone}, 2},
			{"NoSubject", vars, []string{"--case-id", "C", "--reason", "r"}, 2},
			{"WrongToken", map[string]string{"KIPASS_CENTRAL_TOKEN": "wrong", "KIPASS_ISSUER_TOKEN": "wrong"}, []string{"--case-id", "C", "--reason", "r", "--phone", casePerson.Phone}, 1},
			{"MissingToken", nil, []string{"--case-id", "C", "--reason", "r", "--phone", casePerson.Phone}, 1},
			{"TwentyNineDaysAgo", vars, []string{"--case-id", "C", "--reason", "r", "--phone", casePerson.Phone, "--days", "30"}, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, _, stderr := runCmd(t, tc.vars, append(append([]string{}, base...), tc.args...)...)
				if code != tc.code {
					t.Errorf("exit %d, want %d: %s", code, tc.code, stderr)
				}
			})
		}
	})

	audit := func(args ...string) (int, string, string) {
		return runCmd(t, nil, append(append([]string{"audit"}, args...), "--central", w.CentralURL, "--token", tracetest.AuditorToken,
			"--issuer", w.IssuerURL, "--issuer-token", tracetest.IssuerAuditToken)...)
	}
	t.Run("Report", func(t *testing.T) {
		code, stdout, stderr := audit("report", "--from", "2022-01-01", "--to", "2022-02-28")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, s := range []string{"visits_by_day_tags", "co_visits", "issuer_day_tags", "issuer_resolve", "C-CLI-1", "확진자 역학조사", tracetest.Investigator} {
			if !strings.Contains(stdout, s) {
				t.Errorf("report lacks %q:\n%s", s, stdout)
			}
		}
		if strings.Contains(stdout, casePerson.Phone) {
			t.Error("the report shows the case's phone number")
		}
	})

	t.Run("VerifyAndTamper", func(t *testing.T) {
		if code, stdout, stderr := audit("verify"); code != 0 || strings.Count(stdout, ": ok") != 2 {
			t.Fatalf("exit %d: %s %s", code, stdout, stderr)
		}
		w.StopCentral()
		db, err := sql.Open("sqlite", w.CentralDBPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"DROP TRIGGER IF EXISTS audit_log_no_update", "UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 2"} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		db.Close()
		w.StartCentral()
		code, stdout, stderr := audit("verify")
		if code != 1 || !strings.Contains(stdout, "central: BROKEN at entry 2") || !strings.Contains(stderr, "central at entry 2") {
			t.Errorf("tampered log: exit %d: %s %s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "issuer "+w.IssuerURL+": ok") {
			t.Errorf("the issuer's chain: %s", stdout)
		}
	})
}
