package policy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/policy"
)

func TestPolicyDefault(t *testing.T) {
	r := policy.Default()
	if r != policy.Default() {
		t.Error("Default parses more than once")
	}
	if r.ID() != "kr-2022" || r.ID() != policy.DefaultID || r.Version() != 1 {
		t.Errorf("id, version = %q, %d", r.ID(), r.Version())
	}
	embedded, err := os.ReadFile("kr-2022.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Document(), embedded) {
		t.Error("Document() is not the embedded file byte for byte")
	}
	wantCats := []string{"entertainment", "karaoke", "gym", "bathhouse", "casino", "restaurant", "academy", "cinema",
		"study_cafe", "multiroom", "pc_room", "stadium", "museum", "party_room", "library", "massage", "large_store",
		"wedding_hall", "funeral_hall", "religious", "office", "other"}
	if got := r.Categories(); !slices.Equal(got, wantCats) {
		t.Errorf("Categories() = %v", got)
	}
	wantRegions := []string{"seoul", "busan", "daegu", "incheon", "gwangju", "daejeon", "ulsan", "sejong", "gyeonggi",
		"gangwon", "chungbuk", "chungnam", "jeonbuk", "jeonnam", "gyeongbuk", "gyeongnam", "jeju"}
	if got := r.Regions(); !slices.Equal(got, wantRegions) {
		t.Errorf("Regions() = %v", got)
	}
	// The accessors hand out copies: a caller cannot change the shared rules.
	r.Categories()[0] = "x"
	r.Document()[0] = 'x'
	if r.Categories()[0] != "entertainment" || r.Document()[0] != '{' {
		t.Error("accessors share the rules' own slices")
	}
}

// TestPolicyParseRoundTrip parses the document the rules carry (as a trust bundle does) and
// checks that the copy is the same document and decides alike.
func TestPolicyParseRoundTrip(t *testing.T) {
	r := policy.Default()
	r2, err := policy.Parse(r.Document())
	if err != nil {
		t.Fatal(err)
	}
	if r2.ID() != r.ID() || r2.Version() != r.Version() || !bytes.Equal(r2.Document(), r.Document()) {
		t.Fatal("round trip changed the document")
	}
	c := evalCase{cat: "restaurant", region: "daegu", at: "2022-02-23", party: 2, holder: []fact{born("1962-02-23")}}
	d1, err1 := r.Evaluate(c.build(t))
	d2, err2 := r2.Evaluate(c.build(t))
	if err1 != nil || err2 != nil || d1 != d2 {
		t.Fatalf("decisions differ: %+v %v / %+v %v", d1, err1, d2, err2)
	}
}

// courtOrder is one more dated entry: the whole change a new court order needs.
const courtOrder = `{
      "from": "2022-02-10",
      "until": "2022-02-20",
      "categories": ["gym", "bathhouse"],
      "regions": ["busan"],
      "reason": "A court order suspended the pass for gyms and bathhouses in Busan from 2022-02-10 to 2022-02-20."
    },
    {
      "from": "2022-03-01",`

// customRules writes kr-2022 with one more court order and a higher version.
func customRules(tb testing.TB) string {
	tb.Helper()
	doc := string(policy.Default().Document())
	doc = replaceOnce(tb, doc, `{
      "from": "2022-03-01",`, courtOrder)
	doc = replaceOnce(tb, doc, `"version": 1,`, `"version": 2,`)
	path := filepath.Join(tb.TempDir(), "kr-2022-v2.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func replaceOnce(tb testing.TB, s, old, new string) string {
	tb.Helper()
	if strings.Count(s, old) != 1 {
		tb.Fatalf("%q does not occur exactly once", old)
	}
	return strings.Replace(s, old, new, 1)
}

func TestPolicyLoadCourtOrder(t *testing.T) {
	r, err := policy.Load(customRules(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.Version() != 2 {
		t.Errorf("version = %d", r.Version())
	}
	runEvalCases(t, r, []evalCase{
		{name: "busan gym before the order", region: "busan", at: "2022-02-09 23:59", want: "FAIL not_vaccinated"},
		{name: "busan gym on the first day", region: "busan", at: "2022-02-10 00:00", want: "NOT_REQUIRED suspended"},
		{name: "busan bathhouse", cat: "bathhouse", region: "busan", at: "2022-02-15", want: "NOT_REQUIRED suspended"},
		{name: "busan gym on the last day", region: "busan", at: "2022-02-20 23:59:59", want: "NOT_REQUIRED suspended"},
		{name: "busan gym after the order", region: "busan", at: "2022-02-21 00:00", want: "FAIL not_vaccinated"},
		{name: "seoul gym unaffected", region: "seoul", at: "2022-02-15", want: "FAIL not_vaccinated"},
		{name: "busan karaoke unaffected", cat: "karaoke", region: "busan", at: "2022-02-15", want: "FAIL not_vaccinated"},
		{name: "total suspension still there", region: "busan", at: "2022-03-01", want: "NOT_REQUIRED suspended"},
	})
	d, _ := r.Evaluate(evalCase{region: "busan", at: "2022-02-15"}.build(t))
	if !strings.Contains(d.Reason, "Busan from 2022-02-10") {
		t.Errorf("reason %q is not the order's own", d.Reason)
	}
	// The default rules are untouched.
	runEvalCases(t, policy.Default(), []evalCase{
		{name: "default busan gym", region: "busan", at: "2022-02-15", want: "FAIL not_vaccinated"},
	})
}

func TestPolicyLoadMissingFile(t *testing.T) {
	_, err := policy.Load(filepath.Join(t.TempDir(), "none.json"))
	if err == nil || !strings.Contains(err.Error(), "none.json") {
		t.Fatalf("Load = %v, want an error naming the file", err)
	}
}

// minimalDoc is the smallest valid document; the error cases edit it.
const minimalDoc = `{
  "id": "test",
  "version": 3,
  "categories": ["gym", "restaurant"],
  "regions": ["seoul", "busan"],
  "requirements": [{"from": "2021-11-01", "categories": ["gym"]}],
  "exceptions": [{"from": "2021-12-18", "categories": ["restaurant"], "max_party_size": 1}],
  "suspensions": [{"from": "2022-03-01", "reason": "Suspended everywhere."}],
  "vaccination": {"products": [{"id": "pfizer", "series_doses": 2}], "series_wait_days": 14},
  "recovery": {"valid_days": 180},
  "tests": [{"kind": "pcr", "valid_hours": 48}],
  "minors": [{"born_on_or_after": "2003-01-01"}],
  "exemptions": ["medical"]
}`

func TestPolicyParseErrors(t *testing.T) {
	if _, err := policy.Parse([]byte(minimalDoc)); err != nil {
		t.Fatalf("minimal document: %v", err)
	}
	for _, c := range []struct {
		name, old, new string
		want           string // the whole one-line message
	}{
		{"UnknownKey", `"id": "test",`, `"id": "test", "colour": "red",`, "colour: unknown field"},
		{"UnknownNestedKey", `{"from": "2022-03-01", "reason"`, `{"form": "2022-03-01", "reason"`, "suspensions[0].form: unknown field"},
		{"KeysAreCaseSensitive", `"version": 3`, `"Version": 3`, "Version: unknown field"},
		{"DuplicateKey", `"id": "test",`, `"id": "test", "id": "other",`, "id: duplicate field"},
		{"BadDate", `"from": "2022-03-01"`, `"from": "2022-02-30"`, `suspensions[0].from: "2022-02-30" is not a date of the form YYYY-MM-DD`},
		{"DateNotString", `"from": "2022-03-01"`, `"from": 20220301`, `suspensions[0].from: must be a date string of the form YYYY-MM-DD`},
		{"MissingFrom", `{"from": "2021-11-01", "categories": ["gym"]}`, `{"categories": ["gym"]}`, "requirements[0].from: missing"},
		{"UnknownCategory", `"categories": ["gym"]}]`, `"categories": ["gym", "sauna"]}]`, `requirements[0].categories[1]: unknown category "sauna"`},
		{"UnknownRegion", `"reason": "Suspended everywhere."`, `"regions": ["tokyo"], "reason": "Suspended everywhere."`, `suspensions[0].regions[0]: unknown region "tokyo"`},
		{"EmptyRegions", `"reason": "Suspended everywhere."`, `"regions": [], "reason": "Suspended everywhere."`, "suspensions[0].regions: must not be empty (leave it out to mean every region)"},
		{"MissingReason", `, "reason": "Suspended everywhere."`, ``, "suspensions[0].reason: missing: say in one sentence who suspended the pass, where and from when"},
		{"UntilBeforeFrom", `"reason": "Suspended everywhere."`, `"until": "2022-02-01", "reason": "Suspended everywhere."`, "suspensions[0].until: 2022-02-01 is before from 2022-03-01"},
		{"FinesBeforeFrom", `{"from": "2021-11-01", "categories"`, `{"from": "2021-11-01", "fines_from": "2021-10-01", "categories"`, "requirements[0].fines_from: 2021-10-01 is before from 2021-11-01"},
		{"UnderAgeZero", `"reason": "Suspended everywhere."`, `"under_age": 0, "reason": "Suspended everywhere."`, "suspensions[0].under_age: must be at least 1 (omit it for every age)"},
		{"PartySizeZero", `"max_party_size": 1`, `"max_party_size": 0`, "exceptions[0].max_party_size: must be at least 1 (omit it for any party size)"},
		{"VersionMissing", `"version": 3,`, ``, "version: missing"},
		{"VersionZero", `"version": 3,`, `"version": 0,`, "version: must be at least 1"},
		{"VersionString", `"version": 3,`, `"version": "3",`, "version: must be an integer"},
		{"VersionFraction", `"version": 3,`, `"version": 3.5,`, "version: must be an integer"},
		{"BadID", `"id": "test"`, `"id": "Test 1"`, `id: "Test 1" must be lower-case letters, digits and dashes`},
		{"DuplicateCategory", `["gym", "restaurant"]`, `["gym", "gym"]`, `categories[1]: duplicate "gym"`},
		{"BadCategoryID", `["gym", "restaurant"]`, `["gym", "Restaurant"]`, `categories[1]: "Restaurant" must be lower-case letters, digits and underscores`},
		{"NoProducts", `"products": [{"id": "pfizer", "series_doses": 2}]`, `"products": []`, "vaccination.products: must list at least one product"},
		{"SeriesZero", `"series_doses": 2`, `"series_doses": 0`, "vaccination.products[0].series_doses: must be at least 1"},
		{"NegativeWait", `"series_wait_days": 14`, `"series_wait_days": -1`, "vaccination.series_wait_days: must not be negative"},
		{"MissingRecovery", `"recovery": {"valid_days": 180},`, ``, "recovery: missing"},
		{"ValidHoursOnRefusedTest", `{"kind": "pcr", "valid_hours": 48}`, `{"kind": "pcr", "accepted": false, "valid_hours": 48}`, "tests[0]: a test kind that is never accepted has no valid_hours or accepted_from"},
		{"MinorsOutOfOrder", `[{"born_on_or_after": "2003-01-01"}]`, `[{"born_on_or_after": "2003-01-01"}, {"born_on_or_after": "2010-01-01"}]`, "minors[1].from: missing (only the first entry may omit it)"},
		{"ArrayExpected", `"exemptions": ["medical"]`, `"exemptions": "medical"`, "exemptions: must be an array"},
		{"ObjectExpected", `"recovery": {"valid_days": 180}`, `"recovery": 180`, "recovery: must be an object"},
		{"WeirdKeyStaysOnOneLine", `"id": "test",`, `"id": "test", "a\nb": 1,`, `"a\nb": unknown field`},
		{"SyntaxError", `"version": 3,`, `"version": 3,,`, "invalid JSON at line 3, column 16: invalid character ',' looking for beginning of object key string"},
		{"TrailingData", `"exemptions": ["medical"]
}`, `"exemptions": ["medical"]
} {}`, "invalid JSON at line 14, column 3: invalid character '{' after top-level value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := replaceOnce(t, minimalDoc, c.old, c.new)
			_, err := policy.Parse([]byte(doc))
			if err == nil {
				t.Fatal("Parse accepted the document")
			}
			if got := kipass.ErrorMessage(err); got != c.want {
				t.Errorf("error = %q\n   want %q", got, c.want)
			}
		})
	}
	if _, err := policy.Parse(nil); err == nil || kipass.ErrorMessage(err) != "invalid JSON: unexpected end of input" {
		t.Errorf("Parse(nil) = %v", err)
	}
}

// TestPolicyParseOptionalParts shows that a document may leave out what it does not use: no
// tests, minors or exemptions, and no expiry of the series.
func TestPolicyParseOptionalParts(t *testing.T) {
	doc := replaceOnce(t, minimalDoc, `,
  "tests": [{"kind": "pcr", "valid_hours": 48}],
  "minors": [{"born_on_or_after": "2003-01-01"}],
  "exemptions": ["medical"]`, ``)
	r, err := policy.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	runEvalCases(t, r, []evalCase{
		{name: "no expiry", at: "2022-02-01", holder: []fact{series("2021-01-01", "2021-02-01")}, want: "PASS vaccinated"},
		{name: "no minors", at: "2022-02-01", holder: []fact{born("2010-01-01")}, want: "FAIL not_vaccinated"},
	})
	if _, err := r.Evaluate(evalCase{at: "2022-02-01", holder: []fact{pcr("2022-02-01 08:00")}}.build(t)); kipass.ErrorField(err) != "holder.tests[0].kind" {
		t.Errorf("a test kind the document does not list: %v", err)
	}
}

// TestPolicyParseTeenPass shows that a later change to who counts as a minor is one more dated
// entry too: the "teen pass" announced for 2022-03-01 (it never took effect).
func TestPolicyParseTeenPass(t *testing.T) {
	doc := replaceOnce(t, minimalDoc, `[{"born_on_or_after": "2003-01-01"}]`,
		`[{"born_on_or_after": "2003-01-01"}, {"from": "2022-02-01", "born_on_or_after": "2010-01-01"}]`)
	r, err := policy.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	runEvalCases(t, r, []evalCase{
		{name: "teen before the change", at: "2022-01-31", holder: []fact{born("2005-01-01")}, want: "PASS minor", until: "2022-02-01T00:00:00+09:00"},
		{name: "teen after the change", at: "2022-02-01", holder: []fact{born("2005-01-01")}, want: "FAIL not_vaccinated"},
		{name: "child after the change", at: "2022-02-01", holder: []fact{born("2012-01-01")}, want: "PASS minor"},
	})
}
