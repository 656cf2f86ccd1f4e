package issuer_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/demo"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/issuer/subject"
	"github.com/kipass/kipass/scanner"
)

func person(id string) demo.Person {
	for _, p := range demo.People() {
		if p.PersonID == id {
			return p
		}
	}
	panic("no demo person " + id)
}

// TestEnrolThroughCode enrols over HTTP with the one-time code the console verifier
// logs, then mints a pass that a gym's scanner admits.
func TestEnrolThroughCode(t *testing.T) {
	h := newHarness(t)
	p := person("R-0001")
	var started issuer.EnrolmentStarted
	h.mustCall("POST", "/v1/enrolments", "", map[string]string{
		"name": p.Name, "phone": "+82 10 0000 0001", "birth_date": p.Holder.BirthDate.String(), "person_id": p.PersonID,
	}, http.StatusCreated, &started)
	code := h.code(started.EnrolmentID)
	if len(code) != 6 {
		t.Fatalf("console verifier made code %q", code)
	}
	if !strings.Contains(h.logs.String(), "code="+code) || !strings.Contains(h.logs.String(), "enrolment_id="+started.EnrolmentID) {
		t.Fatal("the one-time code and enrolment id are not in the log")
	}

	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	status, body := h.call("POST", "/v1/enrolments/"+started.EnrolmentID+"/verify", "", map[string]string{"code": wrong})
	if e := errorOf(t, body); status != http.StatusBadRequest || e.Field != "code" || e.Reason != "wrong_code" {
		t.Fatalf("wrong code: HTTP %d %+v", status, e)
	}
	var cred issuer.WalletCredential
	h.mustCall("POST", "/v1/enrolments/"+started.EnrolmentID+"/verify", "", map[string]string{"code": code}, http.StatusCreated, &cred)
	if !strings.HasPrefix(cred.WalletToken, "kpw_") {
		t.Fatalf("wallet token %q", cred.WalletToken)
	}
	// The enrolment is used up.
	if status, _ := h.call("POST", "/v1/enrolments/"+started.EnrolmentID+"/verify", "", map[string]string{"code": code}); status != http.StatusNotFound {
		t.Fatalf("second verify: HTTP %d, want 404", status)
	}

	got := h.pass(cred.WalletToken)
	r := h.scanner().Decide(got.Pass, gym, 1, h.clock.Now())
	if r.Outcome != kipass.PASS || r.Decision.Basis != kipass.BasisBooster {
		t.Fatalf("scanner: %s %s %s", r.Outcome, r.Decision.Basis, r.Detail)
	}
	if got.FactsStale || got.ExpiresAt.Sub(got.IssuedAt) != 30*time.Second || got.ExpiresInMS <= 0 || got.ExpiresInMS > 30000 {
		t.Fatalf("pass answer: stale=%v life=%s expires_in=%d", got.FactsStale, got.ExpiresAt.Sub(got.IssuedAt), got.ExpiresInMS)
	}
	if !strings.HasPrefix(got.QRSVG, "<svg") || !strings.Contains(got.QRSVG, `viewBox="0 0 `) {
		t.Fatalf("qr_svg: %.80s", got.QRSVG)
	}
	if len(got.Status) == 0 || got.Status[0].Code != kipass.BasisBooster || got.Status[0].KO != "3차 접종 완료" || got.Status[0].EN != "Booster dose received" {
		t.Fatalf("status: %+v", got.Status)
	}
	if status, _ := h.call("GET", "/v1/pass", "kpw_unknown", nil); status != http.StatusUnauthorized {
		t.Fatalf("unknown wallet token: HTTP %d", status)
	}
}

// TestMintEveryDemoPerson mints a pass for each demo visitor and checks that the
// scanner, with a bundle from the authority, decides what the demo expects.
func TestMintEveryDemoPerson(t *testing.T) {
	h := newHarness(t)
	for _, p := range demo.People() {
		t.Run(p.PersonID, func(t *testing.T) {
			got := h.pass(h.enrol(p))
			r := h.scanner().Decide(got.Pass, gym, 1, h.clock.Now())
			if r.Outcome != p.Expect || (p.Basis != "" && r.Decision.Basis != p.Basis) {
				t.Fatalf("%s (%s): %s %s, want %s %s (%s)", p.Name, p.Story, r.Outcome, r.Decision.Basis, p.Expect, p.Basis, r.Detail)
			}
			if len(got.Status) == 0 {
				t.Fatal("no status lines")
			}
		})
	}
}

func TestStatusWords(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		id, code, ko, en string
	}{
		{"R-0001", kipass.BasisBooster, "3차 접종 완료", "Booster dose received"},
		{"R-0002", kipass.BasisVaccinated, "접종 완료 2022-04-04 24:00까지", "Fully vaccinated until 2022-04-04 24:00"},
		{"R-0003", "expired", "접종 유효기간 만료", "Vaccination expired"},
		{"R-0006", kipass.BasisRecovered, "완치 확인 2022-06-18 24:00까지", "Recovered until 2022-06-18 24:00"},
		{"R-0007", kipass.BasisNegativePCR, "PCR 음성 2022-01-28 24:00까지", "Negative PCR test until 2022-01-28 24:00"},
		{"R-0008", kipass.BasisNegativeRAT, "신속항원검사 음성 2022-01-28 24:00까지", "Negative rapid antigen test until 2022-01-28 24:00"},
		{"R-0009", kipass.BasisMinor, "미성년자 (방역패스 적용 제외)", "Minor: the pass does not apply"},
		{"R-0010", kipass.BasisMedicalExemption, "접종 예외 (의학적 사유)", "Medical exemption"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			got := h.pass(h.enrol(person(tc.id)))
			i := slices.IndexFunc(got.Status, func(l issuer.StatusLine) bool { return l.Code == tc.code })
			if i < 0 {
				t.Fatalf("no %s line in %+v", tc.code, got.Status)
			}
			if l := got.Status[i]; l.KO != tc.ko || l.EN != tc.en {
				t.Fatalf("%s: %q / %q, want %q / %q", tc.code, l.KO, l.EN, tc.ko, tc.en)
			}
		})
	}
}

// TestPassesUnlinkable: two passes of one person carry different srefs and token ids,
// the same day tag on the same day, and both srefs open to the same person.
func TestPassesUnlinkable(t *testing.T) {
	h := newHarness(t)
	p := person("R-0002")
	tok := h.enrol(p)
	a, b := mustParse(t, h.pass(tok).Pass), mustParse(t, h.pass(tok).Pass)
	if bytes.Equal(a.SRef, b.SRef) || bytes.Equal(a.TokenID, b.TokenID) {
		t.Fatal("two passes share an sref or a token id")
	}
	if !bytes.Equal(a.DTag, b.DTag) {
		t.Fatal("two passes of one day carry different day tags")
	}
	other := mustParse(t, h.pass(h.enrol(person("R-0003"))).Pass)
	if bytes.Equal(other.DTag, a.DTag) {
		t.Fatal("two people share a day tag")
	}
	var res issuer.ResolveResponse
	h.mustCall("POST", "/v1/trace/resolve", investigator, map[string]any{
		"case_id": "C-1", "reason": "contact tracing", "srefs": [][]byte{a.SRef, b.SRef},
	}, http.StatusOK, &res)
	for _, r := range res.Results {
		if !r.Found || r.Name != p.Name || r.Phone != p.Phone {
			t.Fatalf("resolve: %+v", r)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"010-1234-5678", "010-1234-5678"},
		{"01012345678", "010-1234-5678"},
		{"010 1234 5678", "010-1234-5678"},
		{"+82 10 1234 5678", "010-1234-5678"},
		{"+82-10-1234-5678", "010-1234-5678"},
		{"+821012345678", "010-1234-5678"},
		{" 010-1234-5678 ", "010-1234-5678"},
		{"02-123-4567", ""},
		{"011-123-4567", ""},
		{"016-1234-5678", ""},
		{"+1 415 555 0100", ""},
		{"+82 010 1234 5678", ""},
		{"010-1234-567", ""},
		{"010-1234-56789", ""},
		{"010--1234-5678", ""},
		{"010-12345-678", ""},
		{"010.1234.5678", ""},
		{"０10-1234-5678", ""},
		{"phone", ""},
		{"", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := issuer.NormalizePhone(tc.in)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("NormalizePhone(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
			}
		})
	}
}

// TestEnrolPhoneFormats posts enrolments with good and bad phone numbers.
func TestEnrolPhoneFormats(t *testing.T) {
	h := newHarness(t)
	p := person("R-0004")
	for _, tc := range []struct {
		name, phone string
		ok          bool
	}{
		{"Dashed", "010-1234-5678", true},
		{"Digits", "01012345678", true},
		{"Spaced", "010 1234 5678", true},
		{"IntlSpaced", "+82 10 1234 5678", true},
		{"IntlDashed", "+82-10-1234-5678", true},
		{"ErrLandline", "02-123-4567", false},
		{"ErrOldPrefix", "011-123-4567", false},
		{"ErrForeign", "+1 415 555 0100", false},
		{"ErrIntlWithZero", "+82 010 1234 5678", false},
		{"ErrShort", "010-1234-567", false},
		{"ErrLetters", "010-ABCD-5678", false},
		{"ErrEmpty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.call("POST", "/v1/enrolments", "", map[string]string{
				"name": p.Name, "phone": tc.phone, "birth_date": p.Holder.BirthDate.String(), "person_id": p.PersonID,
			})
			if tc.ok {
				if status != http.StatusCreated {
					t.Fatalf("HTTP %d: %s", status, body)
				}
				return
			}
			if e := errorOf(t, body); status != http.StatusBadRequest || e.Field != "phone" || e.Code != kipass.EINVALID {
				t.Fatalf("HTTP %d %+v, want 400 naming phone", status, e)
			}
		})
	}
}

func TestEnrolErrors(t *testing.T) {
	h := newHarness(t)
	p := person("R-0005")
	good := func() map[string]any {
		return map[string]any{"name": p.Name, "phone": p.Phone, "birth_date": p.Holder.BirthDate.String(), "person_id": p.PersonID}
	}
	for _, tc := range []struct {
		name   string
		change func(m map[string]any)
		field  string
	}{
		{"ErrUnknownField", func(m map[string]any) { m["nickname"] = "x" }, "nickname"},
		{"ErrNoName", func(m map[string]any) { delete(m, "name") }, "name"},
		{"ErrNoBirthDate", func(m map[string]any) { delete(m, "birth_date") }, "birth_date"},
		{"ErrBadBirthDate", func(m map[string]any) { m["birth_date"] = "1999-13-01" }, "birth_date"},
		{"ErrBirthDateNotNumber", func(m map[string]any) { m["birth_date"] = 19990101 }, "birth_date"},
		{"ErrBirthDateMismatch", func(m map[string]any) { m["birth_date"] = "1999-05-22" }, "person_id"},
		{"ErrUnknownPerson", func(m map[string]any) { m["person_id"] = "R-9999" }, "person_id"},
		{"ErrNoPerson", func(m map[string]any) { m["person_id"] = " " }, "person_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.change(m)
			status, body := h.call("POST", "/v1/enrolments", "", m)
			if e := errorOf(t, body); status != http.StatusBadRequest || e.Field != tc.field {
				t.Fatalf("HTTP %d %+v, want 400 naming %s", status, e, tc.field)
			}
		})
	}
	t.Run("ErrMalformedJSON", func(t *testing.T) {
		status, body := h.call("POST", "/v1/enrolments", "", `{"name": `)
		if e := errorOf(t, body); status != http.StatusBadRequest || e.Code != kipass.EINVALID {
			t.Fatalf("HTTP %d %+v", status, e)
		}
	})
	t.Run("ErrTooLarge", func(t *testing.T) {
		status, _ := h.call("POST", "/v1/enrolments", "", `{"name":"`+strings.Repeat("가", 40000)+`"}`)
		if status != http.StatusBadRequest {
			t.Fatalf("HTTP %d", status)
		}
	})
	t.Run("ErrAttemptsExhausted", func(t *testing.T) {
		var started issuer.EnrolmentStarted
		h.mustCall("POST", "/v1/enrolments", "", good(), http.StatusCreated, &started)
		wrong := "000000"
		if h.code(started.EnrolmentID) == wrong {
			wrong = "111111"
		}
		for i := 1; i <= 5; i++ {
			status, body := h.call("POST", "/v1/enrolments/"+started.EnrolmentID+"/verify", "", map[string]string{"code": wrong})
			if status != http.StatusBadRequest || !strings.Contains(errorOf(t, body).Message, fmt.Sprintf("attempts left: %d", 5-i)) {
				t.Fatalf("attempt %d: HTTP %d %s", i, status, body)
			}
		}
		// Even the right code is refused now: the enrolment is void.
		status, _ := h.call("POST", "/v1/enrolments/"+started.EnrolmentID+"/verify", "", map[string]string{"code": h.code(started.EnrolmentID)})
		if status != http.StatusNotFound {
			t.Fatalf("after 5 wrong codes: HTTP %d, want 404", status)
		}
	})
}

// TestReenrolKeepsSubject: enrolling the same person again (a new phone) keeps their
// subject id, so that their day tags do not change, and both wallets work.
func TestReenrolKeepsSubject(t *testing.T) {
	h := newHarness(t)
	p := person("R-0002")
	tok1 := h.enrol(p)
	p2 := p
	p2.Phone = "010-9999-0002"
	tok2 := h.enrol(p2)
	a, b := mustParse(t, h.pass(tok1).Pass), mustParse(t, h.pass(tok2).Pass)
	if !bytes.Equal(a.DTag, b.DTag) {
		t.Fatal("re-enrolment changed the subject")
	}
}

func TestSafeNumber(t *testing.T) {
	h := newHarness(t)
	p := person("R-0001")
	tok := h.enrol(p)
	var a, b issuer.SafeNumberResponse
	h.mustCall("GET", "/v1/safe-number", tok, nil, http.StatusOK, &a)
	h.mustCall("GET", "/v1/safe-number", tok, nil, http.StatusOK, &b)
	if a.SafeNumber != b.SafeNumber {
		t.Fatalf("safe number changed: %s then %s", a.SafeNumber, b.SafeNumber)
	}
	if n, ok := subject.NormalizeSafeNumber(a.SafeNumber); !ok || n != a.SafeNumber {
		t.Fatalf("malformed safe number %q", a.SafeNumber)
	}
	resolve := func(n string) issuer.Resolution {
		t.Helper()
		var res issuer.ResolveResponse
		h.mustCall("POST", "/v1/trace/resolve", investigator, map[string]any{
			"case_id": "C-2", "reason": "handwritten log", "safe_numbers": []string{n},
		}, http.StatusOK, &res)
		return res.Results[0]
	}
	// Written by hand with a space, it still resolves.
	if r := resolve(a.SafeNumber[:4] + " " + a.SafeNumber[4:]); !r.Found || r.Name != p.Name || r.Phone != p.Phone {
		t.Fatalf("round trip: %+v", r)
	}

	// After its lifetime the visitor gets a new number; the old one resolves for
	// another 28 days, then no more.
	h.clock.Advance(kipass.Retention + time.Hour)
	var c issuer.SafeNumberResponse
	h.mustCall("GET", "/v1/safe-number", tok, nil, http.StatusOK, &c)
	if c.SafeNumber == a.SafeNumber {
		t.Fatal("safe number not replaced after its lifetime")
	}
	if r := resolve(a.SafeNumber); !r.Found {
		t.Fatal("retired safe number no longer resolves within retention")
	}
	h.clock.Advance(kipass.Retention + time.Hour)
	rep, err := h.svc.RunRetention(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.SafeNumbers != 1 {
		t.Fatalf("retention destroyed %d safe numbers, want 1", rep.SafeNumbers)
	}
	if r := resolve(a.SafeNumber); r.Found {
		t.Fatal("safe number resolves after retention")
	}
}

// TestSafeNumberCollisions squeezes the number space to two numbers: two visitors get
// both, the third is refused clearly rather than given a taken number.
func TestSafeNumberCollisions(t *testing.T) {
	h := newHarness(t, func(c *issuer.Config) {
		c.SafeNumbers = subject.SafeNumbers{Syllables: []string{"가"}, Values: 2}
	})
	got := map[string]string{}
	for _, id := range []string{"R-0001", "R-0002"} {
		var r issuer.SafeNumberResponse
		h.mustCall("GET", "/v1/safe-number", h.enrol(person(id)), nil, http.StatusOK, &r)
		got[r.SafeNumber] = id
	}
	if len(got) != 2 || got["0000가가"] == "" || got["0001가가"] == "" {
		t.Fatalf("numbers issued: %v", got)
	}
	status, body := h.call("GET", "/v1/safe-number", h.enrol(person("R-0003")), nil)
	if e := errorOf(t, body); status != http.StatusServiceUnavailable || e.Reason != "safe_numbers_exhausted" {
		t.Fatalf("full space: HTTP %d %+v", status, e)
	}
	for n, id := range got {
		var res issuer.ResolveResponse
		h.mustCall("POST", "/v1/trace/resolve", investigator, map[string]any{"case_id": "C-3", "reason": "r", "safe_numbers": []string{n}}, http.StatusOK, &res)
		if r := res.Results[0]; !r.Found || r.Name != person(id).Name {
			t.Fatalf("%s resolves to %+v, want %s", n, r, id)
		}
	}
}

// TestNoPersonalDataInLogs runs enrolment, minting, safe numbers and tracing and
// checks that the log holds no name, phone number, token or holder fact.
func TestNoPersonalDataInLogs(t *testing.T) {
	h := newHarness(t)
	p := person("R-0007")
	var started issuer.EnrolmentStarted
	h.mustCall("POST", "/v1/enrolments", "", map[string]string{
		"name": p.Name, "phone": p.Phone, "birth_date": p.Holder.BirthDate.String(), "person_id": p.PersonID,
	}, http.StatusCreated, &started)
	var cred issuer.WalletCredential
	h.mustCall("POST", "/v1/enrolments/"+started.EnrolmentID+"/verify", "", map[string]string{"code": h.code(started.EnrolmentID)}, http.StatusCreated, &cred)
	got := h.pass(cred.WalletToken)
	var sn issuer.SafeNumberResponse
	h.mustCall("GET", "/v1/safe-number", cred.WalletToken, nil, http.StatusOK, &sn)
	today := kipass.DateOf(h.clock.Now())
	h.mustCall("POST", "/v1/trace/day-tags", investigator, map[string]any{
		"case_id": "C-4", "reason": "r", "subject": map[string]string{"phone": p.Phone}, "from": today, "to": today,
	}, http.StatusOK, nil)
	h.mustCall("POST", "/v1/trace/resolve", investigator, map[string]any{
		"case_id": "C-4", "reason": "r", "srefs": [][]byte{mustParse(t, got.Pass).SRef}, "safe_numbers": []string{sn.SafeNumber},
	}, http.StatusOK, nil)
	logs := h.logs.String()
	for _, secret := range []string{p.Name, p.Phone, strings.ReplaceAll(p.Phone, "-", ""), cred.WalletToken, p.Holder.BirthDate.String(),
		p.PersonID, sn.SafeNumber, got.Pass[:20], investigator} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
	var audit issuer.AuditList
	h.mustCall("GET", "/v1/audit", auditorToken, nil, http.StatusOK, &audit)
	for _, e := range audit.Entries {
		for _, secret := range []string{p.Name, p.Phone, p.PersonID} {
			if strings.Contains(e.Query, secret) {
				t.Errorf("audit query %q names %q", e.Query, secret)
			}
		}
	}
}

// TestOpenAPI checks that the OpenAPI document describes exactly the routes served.
func TestOpenAPI(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(issuer.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	described := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			described[strings.ToUpper(method)+" "+path] = true
		}
	}
	h := newHarness(t)
	for _, r := range h.svc.Routes() {
		if !described[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
		delete(described, r)
	}
	for r := range described {
		t.Errorf("openapi.json describes %s, which is not served", r)
	}
	for _, path := range []string{"/v1/openapi.json", "/healthz", "/readyz", "/metrics", "/wallet"} {
		if status, body := h.call("GET", path, "", nil); status != http.StatusOK {
			t.Errorf("GET %s: HTTP %d %s", path, status, body)
		}
	}
	if status, body := h.call("GET", "/v1/nothing", "", nil); status != http.StatusNotFound || errorOf(t, body).Code != kipass.ENOTFOUND {
		t.Errorf("unknown route: HTTP %d %s", status, body)
	}
}

// scanAt decides text with a fresh scanner at the time.
func (h *harness) scanAt(text string, at time.Time) scanner.Result {
	return h.scanner().Decide(text, gym, 1, at)
}
