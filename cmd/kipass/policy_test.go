package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kipass/kipass/policy"
)

// runPolicyCLI runs `kipass args...` in-process with stdin and returns the exit code
// and both output streams.
func runPolicyCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &Env{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	code := run(context.Background(), env, args)
	return code, stdout.String(), stderr.String()
}

func TestPolicyEval(t *testing.T) {
	for _, c := range []struct {
		name, stdin, want string
	}{
		{"NegativePCR",
			`{"at":"2022-01-21T18:00:00+09:00","facility":{"category":"gym","region":"busan"},"holder":{"tests":[{"kind":"pcr","result":"negative","at":"2022-01-20T10:00:00+09:00"}]}}`,
			`{"decision":"PASS","basis":"negative_pcr","valid_until":"2022-01-23T00:00:00+09:00","grace":false,"reason":"The visitor has a negative PCR test result, valid until 24:00 of the day 48 hours after it."}`},
		{"VaccinatedUntil",
			`{"at":"2022-01-03T09:00:00+09:00","facility":{"category":"restaurant","region":"seoul"},"party_size":3,"holder":{"doses":[{"date":"2021-06-19","product":"pfizer"},{"date":"2021-07-10","product":"astrazeneca"}]}}`,
			`{"decision":"PASS","basis":"vaccinated","valid_until":"2022-01-07T00:00:00+09:00","grace":false,"reason":"The visitor completed the primary vaccination series at least 14 days ago."}`},
		{"UTCInputGivesKSTOutput",
			`{"at":"2022-01-21T09:00:00Z","facility":{"category":"gym","region":"busan"},"holder":{"tests":[{"kind":"pcr","result":"negative","at":"2022-01-20T01:00:00Z"}]}}`,
			`{"decision":"PASS","basis":"negative_pcr","valid_until":"2022-01-23T00:00:00+09:00","grace":false,"reason":"The visitor has a negative PCR test result, valid until 24:00 of the day 48 hours after it."}`},
		{"ExpiredInGrace",
			`{"at":"2022-01-07T00:00:00+09:00","facility":{"category":"gym","region":"ulsan"},"holder":{"birth_date":"1970-05-05","doses":[{"date":"2021-06-19","product":"pfizer"},{"date":"2021-07-10","product":"pfizer"}]}}`,
			`{"decision":"FAIL","basis":"expired","valid_until":null,"grace":true,"reason":"The primary vaccination series was completed more than 180 days ago and there is no booster dose."}`},
		{"PartyDefaultsToOne",
			`{"at":"2021-12-20T12:00:00+09:00","facility":{"category":"restaurant","region":"jeju"}}`,
			`{"decision":"PASS","basis":"restaurant_exception","valid_until":null,"grace":false,"reason":"Without the pass, a visitor may be admitted here alone."}`},
		{"PartyOfTwo",
			`{"at":"2021-12-20T12:00:00+09:00","facility":{"category":"restaurant","region":"jeju"},"party_size":2,"holder":{}}`,
			`{"decision":"FAIL","basis":"not_vaccinated","valid_until":null,"grace":false,"reason":"The visitor has no vaccination, recovery, negative test or exemption that meets the pass; without the pass a visitor may only be admitted here alone."}`},
		{"Suspended",
			`{"at":"2022-02-23T12:00:00+09:00","facility":{"category":"restaurant","region":"daegu"},"party_size":4,"holder":{"birth_date":"1962-02-24"}}`,
			`{"decision":"NOT_REQUIRED","basis":"suspended","valid_until":null,"grace":false,"reason":"A court order suspended the pass at restaurants and cafes in Daegu for visitors under 60 from 2022-02-23."}`},
		{"NotCovered",
			`{"at":"2022-01-12T12:00:00+09:00","facility":{"category":"wedding_hall","region":"gyeonggi"}}`,
			`{"decision":"NOT_REQUIRED","basis":"category_not_covered","valid_until":null,"grace":false,"reason":"The pass is not required at this kind of facility."}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runPolicyCLI(t, c.stdin, "policy", "eval")
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if stdout != c.want+"\n" {
				t.Errorf("stdout = %s\n  want %s", stdout, c.want)
			}
		})
	}
}

func TestPolicyEvalBadInput(t *testing.T) {
	const facility = `"facility":{"category":"gym","region":"busan"}`
	for _, c := range []struct {
		name  string
		args  []string
		stdin string
		field string // what the one stderr line must name
	}{
		{"IssueExampleTestInTheFuture", nil,
			`{"at":"2022-01-12T18:00:00+09:00","facility":{"category":"gym","region":"busan"},"party_size":1,"holder":{"birth_date":"1990-01-01","doses":[{"date":"2021-06-20","product":"pfizer"}],"tests":[{"kind":"pcr","result":"negative","at":"2022-01-20T10:00:00+09:00"}],"recovered_on":"2021-12-01","exemption":"medical"}}`,
			"holder.tests[0].at"},
		{"UnknownCategory", nil, `{"at":"2022-01-12T18:00:00+09:00","facility":{"category":"sauna","region":"busan"}}`, "facility.category"},
		{"UnknownRegion", nil, `{"at":"2022-01-12T18:00:00+09:00","facility":{"category":"gym","region":"osaka"}}`, "facility.region"},
		{"MalformedAt", nil, `{"at":"2022-01-12 18:00",` + facility + `}`, "at:"},
		{"MalformedDoseDate", nil, `{"at":"2022-01-12T18:00:00+09:00",` + facility + `,"holder":{"doses":[{"date":"2021-6-20","product":"pfizer"}]}}`, "holder.doses[0].date"},
		{"UnknownProduct", nil, `{"at":"2022-01-12T18:00:00+09:00",` + facility + `,"holder":{"doses":[{"date":"2021-06-20","product":"sinovac"}]}}`, "holder.doses[0].product"},
		{"UnknownField", nil, `{"at":"2022-01-12T18:00:00+09:00",` + facility + `,"holder":{"name":"Kim"}}`, "holder.name"},
		{"PartySizeZero", nil, `{"at":"2022-01-12T18:00:00+09:00",` + facility + `,"party_size":0}`, "party_size"},
		{"NotJSON", nil, `at=2022-01-12`, "invalid JSON"},
		{"EmptyStdin", nil, ``, "invalid JSON"},
		{"UnknownFlag", []string{"--rulez", "x"}, `{}`, "rulez"},
		{"ExtraArgument", []string{"case.json"}, `{}`, "case.json"},
		{"MissingRulesFile", []string{"--rules", "/nonexistent/rules.json"}, `{}`, "/nonexistent/rules.json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runPolicyCLI(t, c.stdin, append([]string{"policy", "eval"}, c.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") || !strings.Contains(stderr, c.field) {
				t.Errorf("stderr = %q, want one line naming %s", stderr, c.field)
			}
		})
	}
}

func TestPolicyUsage(t *testing.T) {
	for _, args := range [][]string{{"policy"}, {"policy", "check"}} {
		code, stdout, stderr := runPolicyCLI(t, "", args...)
		if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	code, stdout, stderr := runPolicyCLI(t, "", "policy", "eval", "-h")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "-rules") {
		t.Errorf("-h: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestPolicyEvalRulesFile(t *testing.T) {
	doc := string(policy.Default().Document())
	const last = `{
      "from": "2022-03-01",`
	if strings.Count(doc, last) != 1 {
		t.Fatal("kr-2022 no longer has one 2022-03-01 entry")
	}
	doc = strings.Replace(doc, last, `{
      "from": "2022-02-10",
      "categories": ["gym"],
      "regions": ["busan"],
      "reason": "A court order suspended the pass for gyms in Busan from 2022-02-10."
    },
    `+last, 1)
	path := filepath.Join(t.TempDir(), "rules.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	const stdin = `{"at":"2022-02-15T12:00:00+09:00","facility":{"category":"gym","region":"busan"}}`
	const suspended = `{"decision":"NOT_REQUIRED","basis":"suspended","valid_until":null,"grace":false,"reason":"A court order suspended the pass for gyms in Busan from 2022-02-10."}` + "\n"
	if code, stdout, stderr := runPolicyCLI(t, stdin, "policy", "eval", "--rules", path); code != 0 || stdout != suspended {
		t.Errorf("with --rules: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, _ := runPolicyCLI(t, stdin, "policy", "eval"); code != 0 || !strings.HasPrefix(stdout, `{"decision":"FAIL"`) {
		t.Errorf("without --rules: exit %d, stdout %q", code, stdout)
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(strings.Replace(doc, `"from": "2022-02-10"`, `"from": "2022-02-31"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runPolicyCLI(t, stdin, "policy", "eval", "--rules", bad)
	if code != 2 || stdout != "" || !strings.Contains(stderr, `suspensions[4].from: "2022-02-31" is not a date`) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("bad rules: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
