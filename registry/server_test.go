package registry_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/registry"
	"github.com/kipass/kipass/registry/sqlite"
)

const (
	adminToken  = "admin-secret"
	issuerToken = "naver-secret"
)

// testServer is a registry server on 127.0.0.1:0 over a real SQLite file.
type testServer struct {
	*registry.Server
	URL   string
	Store *sqlite.Store
	ln    net.Listener
}

func mustServe(tb testing.TB, st registry.Store, cfg registry.Config) *testServer {
	tb.Helper()
	if cfg.AdminTokens == nil {
		cfg.AdminTokens = []string{adminToken}
	}
	if cfg.IssuerTokens == nil {
		cfg.IssuerTokens = map[string]string{"naver": issuerToken}
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return now }
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := registry.NewServer(st, cfg)
	go srv.Serve(ln)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	ts := &testServer{Server: srv, URL: "http://" + ln.Addr().String(), ln: ln}
	ts.Store, _ = st.(*sqlite.Store)
	return ts
}

func mustServeStore(tb testing.TB) *testServer {
	tb.Helper()
	return mustServe(tb, mustOpenStore(tb), registry.Config{})
}

// call makes one request and decodes the JSON answer into a map.
func call(t *testing.T, method, url, token, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(data, &m)
	return resp.StatusCode, resp.Header, m
}

func errField(m map[string]any) (code, field string) {
	e, _ := m["error"].(map[string]any)
	code, _ = e["code"].(string)
	field, _ = e["field"].(string)
	return code, field
}

const personBody = `{"birth_date":"1984-03-02","doses":[{"date":"2021-06-10","product":"pfizer"},{"date":"2021-07-22","product":"pfizer"}],` +
	`"tests":[{"kind":"pcr","result":"negative","at":"2022-01-26T06:00:00Z"}],"recoveries":["2021-03-01"],"exemptions":[{"kind":"medical","from":"2021-12-01"}]}`

func TestServerAuth(t *testing.T) {
	ts := mustServeStore(t)
	if code, _, m := call(t, "PUT", ts.URL+"/v1/persons/R-0001", adminToken, personBody); code != 201 {
		t.Fatalf("PUT = %d %v", code, m)
	}
	routes := []struct {
		name, method, path, body string
		issuer                   int // status for an issuer token
	}{
		{"Facts", "GET", "/v1/persons/R-0001", "", 200},
		{"Put", "PUT", "/v1/persons/R-0001", personBody, 403},
		{"Record", "GET", "/v1/persons/R-0001/record", "", 403},
		{"AddDose", "POST", "/v1/persons/R-0001/doses", `{"date":"2021-12-20","product":"moderna"}`, 403},
		{"AddTest", "POST", "/v1/persons/R-0001/tests", `{"kind":"rat","result":"negative","at":"2022-01-27T09:00:00+09:00"}`, 403},
		{"AddRecovery", "POST", "/v1/persons/R-0001/recoveries", `{"date":"2021-04-01"}`, 403},
	}
	creds := []struct {
		name, token string
		want        func(issuer int) int
		code        string
	}{
		{"NoToken", "", func(int) int { return 401 }, kipass.EUNAUTHORIZED},
		{"WrongToken", "guess", func(int) int { return 401 }, kipass.EUNAUTHORIZED},
		{"Issuer", issuerToken, func(issuer int) int { return issuer }, kipass.EFORBIDDEN},
		{"Admin", adminToken, func(int) int { return 200 }, ""},
	}
	for _, r := range routes {
		for _, c := range creds {
			t.Run(r.name+"/"+c.name, func(t *testing.T) {
				code, _, m := call(t, r.method, ts.URL+r.path, c.token, r.body)
				want := c.want(r.issuer)
				if code != want {
					t.Fatalf("%s %s = %d %v, want %d", r.method, r.path, code, m, want)
				}
				if got, _ := errField(m); code >= 400 && got != c.code {
					t.Fatalf("error code %q, want %q", got, c.code)
				}
			})
		}
	}
}

func TestServerFacts(t *testing.T) {
	ts := mustServeStore(t)
	code, _, m := call(t, "PUT", ts.URL+"/v1/persons/R-0001", adminToken, personBody)
	if code != 201 || m["person_id"] != "R-0001" || m["updated_at"] == nil {
		t.Fatalf("PUT = %d %v, want 201 with the record", code, m)
	}
	if code, _, _ := call(t, "PUT", ts.URL+"/v1/persons/R-0001", adminToken, personBody); code != 200 {
		t.Fatalf("second PUT = %d, want 200 (replaced)", code)
	}
	code, _, m = call(t, "GET", ts.URL+"/v1/persons/R-0001", issuerToken, "")
	if code != 200 {
		t.Fatalf("GET = %d %v", code, m)
	}
	b, _ := json.Marshal(m["holder"])
	want := `{"birth_date":"1984-03-02","doses":[{"date":"2021-06-10","product":"pfizer"},{"date":"2021-07-22","product":"pfizer"}],` +
		`"exemption":"medical","recovered_on":"2021-03-01","tests":[{"at":"2022-01-26T15:00:00+09:00","kind":"pcr","result":"negative"}]}`
	if string(b) != want {
		t.Fatalf("holder\n got %s\nwant %s", b, want)
	}
	if m["as_of"] != "2022-01-27T12:00:00+09:00" {
		t.Fatalf("as_of = %v, want the server clock", m["as_of"])
	}
}

func TestServerBadInput(t *testing.T) {
	ts := mustServeStore(t)
	call(t, "PUT", ts.URL+"/v1/persons/R-0001", adminToken, personBody)
	tests := []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"ErrUnknownField", "PUT", "/v1/persons/R-1", `{"birth_date":"1984-03-02","vaccinated":true}`, 400, kipass.EINVALID, "vaccinated"},
		{"ErrUnknownNestedField", "PUT", "/v1/persons/R-1", `{"birth_date":"1984-03-02","doses":[{"date":"2021-06-10","product":"pfizer","lot":"X"}]}`, 400, kipass.EINVALID, "doses[0].lot"},
		{"ErrUnknownProduct", "PUT", "/v1/persons/R-1", `{"birth_date":"1984-03-02","doses":[{"date":"2021-06-10","product":"sputnik"}]}`, 400, kipass.EINVALID, "doses[0].product"},
		{"ErrBadDate", "PUT", "/v1/persons/R-1", `{"birth_date":"1984-02-30"}`, 400, kipass.EINVALID, "birth_date"},
		{"ErrDateNotString", "PUT", "/v1/persons/R-1", `{"birth_date":19840302}`, 400, kipass.EINVALID, "birth_date"},
		{"ErrMissingBirthDate", "PUT", "/v1/persons/R-1", `{"doses":[]}`, 400, kipass.EINVALID, "birth_date"},
		{"ErrBadTestTime", "PUT", "/v1/persons/R-1", `{"birth_date":"1984-03-02","tests":[{"kind":"pcr","result":"negative","at":"yesterday"}]}`, 400, kipass.EINVALID, "tests[0].at"},
		{"ErrFutureTest", "PUT", "/v1/persons/R-1", `{"birth_date":"1984-03-02","tests":[{"kind":"pcr","result":"negative","at":"2022-01-27T12:00:01+09:00"}]}`, 400, kipass.EINVALID, "tests[0].at"},
		{"ErrIDMismatch", "PUT", "/v1/persons/R-1", `{"person_id":"R-2","birth_date":"1984-03-02"}`, 400, kipass.EINVALID, "person_id"},
		{"ErrBadPathID", "PUT", "/v1/persons/R%2F1", `{"birth_date":"1984-03-02"}`, 400, kipass.EINVALID, "person_id"},
		{"ErrDuplicateName", "PUT", "/v1/persons/R-1", `{"birth_date":"1984-03-02","birth_date":"1984-03-03"}`, 400, kipass.EINVALID, "birth_date"},
		{"ErrEmptyBody", "PUT", "/v1/persons/R-1", ``, 400, kipass.EINVALID, ""},
		{"ErrTrailingData", "PUT", "/v1/persons/R-1", `{"birth_date":"1984-03-02"} {}`, 400, kipass.EINVALID, ""},
		{"ErrTooLarge", "PUT", "/v1/persons/R-1", `{"birth_date":"1984-03-02","x":"` + strings.Repeat("a", registry.DefaultMaxBodySize) + `"}`, 400, kipass.EINVALID, ""},
		{"ErrDoseBadDate", "POST", "/v1/persons/R-0001/doses", `{"date":"2021-6-1","product":"pfizer"}`, 400, kipass.EINVALID, "date"},
		{"ErrDoseMissingProduct", "POST", "/v1/persons/R-0001/doses", `{"date":"2021-12-01"}`, 400, kipass.EINVALID, "product"},
		{"ErrDoseSameDayOtherProduct", "POST", "/v1/persons/R-0001/doses", `{"date":"2021-06-10","product":"moderna"}`, 409, kipass.ECONFLICT, ""},
		{"ErrTestMissingTime", "POST", "/v1/persons/R-0001/tests", `{"kind":"pcr","result":"negative"}`, 400, kipass.EINVALID, "at"},
		{"ErrTestKind", "POST", "/v1/persons/R-0001/tests", `{"kind":"antibody","result":"negative","at":"2022-01-27T09:00:00+09:00"}`, 400, kipass.EINVALID, "kind"},
		{"ErrRecoveryMissingDate", "POST", "/v1/persons/R-0001/recoveries", `{}`, 400, kipass.EINVALID, "date"},
		{"ErrNotFoundFacts", "GET", "/v1/persons/R-9999", "", 404, kipass.ENOTFOUND, ""},
		{"ErrNotFoundRecord", "GET", "/v1/persons/R-9999/record", "", 404, kipass.ENOTFOUND, ""},
		{"ErrNotFoundDose", "POST", "/v1/persons/R-9999/doses", `{"date":"2021-12-01","product":"pfizer"}`, 404, kipass.ENOTFOUND, ""},
		{"ErrNoSuchRoute", "GET", "/v1/people", "", 404, kipass.ENOTFOUND, ""},
		{"ErrMethodNotAllowed", "DELETE", "/v1/persons/R-0001", "", 405, kipass.EINVALID, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, m := call(t, tc.method, ts.URL+tc.path, adminToken, tc.body)
			code, field := errField(m)
			if status != tc.status || code != tc.code || field != tc.field {
				t.Fatalf("%d %s %q (%v), want %d %s %q", status, code, field, m, tc.status, tc.code, tc.field)
			}
		})
	}
	t.Run("ErrContentType", func(t *testing.T) {
		req, _ := http.NewRequest("PUT", ts.URL+"/v1/persons/R-1", strings.NewReader(`{"birth_date":"1984-03-02"}`))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("status %d, want 400", resp.StatusCode)
		}
	})
	t.Run("MethodNotAllowedSaysAllow", func(t *testing.T) {
		_, h, _ := call(t, "DELETE", ts.URL+"/v1/persons/R-0001", adminToken, "")
		if h.Get("Allow") != "GET, PUT" {
			t.Fatalf("Allow = %q", h.Get("Allow"))
		}
	})
	t.Run("BadRowLeavesRecord", func(t *testing.T) {
		p, err := ts.Store.Person(context.Background(), "R-0001")
		if err != nil || len(p.Doses) != 2 {
			t.Fatalf("R-0001 = %+v, %v; want it unchanged", p, err)
		}
	})
}

func TestServerUpdates(t *testing.T) {
	ts := mustServeStore(t)
	call(t, "PUT", ts.URL+"/v1/persons/R-0001", adminToken, `{"birth_date":"1984-03-02"}`)
	steps := []struct {
		name, path, body string
		check            func(p map[string]any) bool
	}{
		{"Dose", "/doses", `{"date":"2021-06-10","product":"pfizer"}`, func(p map[string]any) bool { return len(p["doses"].([]any)) == 1 }},
		{"DoseAgain", "/doses", `{"date":"2021-06-10","product":"pfizer"}`, func(p map[string]any) bool { return len(p["doses"].([]any)) == 1 }},
		{"EarlierDoseSorted", "/doses", `{"date":"2021-05-01","product":"astrazeneca"}`, func(p map[string]any) bool {
			return p["doses"].([]any)[0].(map[string]any)["date"] == "2021-05-01"
		}},
		{"Test", "/tests", `{"kind":"pcr","result":"negative","at":"2022-01-26T10:00:00+09:00"}`, func(p map[string]any) bool { return len(p["tests"].([]any)) == 1 }},
		{"Recovery", "/recoveries", `{"date":"2021-12-20"}`, func(p map[string]any) bool { return len(p["recoveries"].([]any)) == 1 }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, _, m := call(t, "POST", ts.URL+"/v1/persons/R-0001"+s.path, adminToken, s.body)
			if code != 200 || !s.check(m) {
				t.Fatalf("POST %s = %d %v", s.path, code, m)
			}
		})
	}
	code, _, m := call(t, "GET", ts.URL+"/v1/persons/R-0001", issuerToken, "")
	if code != 200 || m["holder"].(map[string]any)["recovered_on"] != "2021-12-20" {
		t.Fatalf("GET = %d %v", code, m)
	}
}

func TestServerHealth(t *testing.T) {
	st := mustOpenStore(t)
	ts := mustServe(t, st, registry.Config{})
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/v1/openapi.json"} {
		if code, _, _ := call(t, "GET", ts.URL+path, "", ""); code != 200 {
			t.Errorf("GET %s = %d, want 200", path, code)
		}
	}
	call(t, "GET", ts.URL+"/v1/persons/R-404", issuerToken, "")
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `kipass_registry_lookups_total{issuer="naver",result="not_found"} 1`) {
		t.Errorf("metrics lack the look-up counter:\n%s", body)
	}
	st.Close()
	if code, _, m := call(t, "GET", ts.URL+"/readyz", "", ""); code != 503 {
		t.Errorf("readyz with the database closed = %d %v, want 503", code, m)
	}
}

// TestOpenAPI checks that the OpenAPI document describes every route and no other.
func TestOpenAPI(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(registry.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var described []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				described = append(described, strings.ToUpper(method)+" "+path)
			}
		}
	}
	routes := mustServeStore(t).Routes()
	sort.Strings(described)
	sort.Strings(routes)
	if !slices.Equal(described, routes) {
		t.Fatalf("openapi.json describes\n%v\nthe server routes\n%v", described, routes)
	}
}

// blockingStore holds look-ups until released, to fill the server.
type blockingStore struct {
	registry.Store
	entered chan struct{}
	release chan struct{}
}

func (s *blockingStore) Person(ctx context.Context, id string) (*registry.Person, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.Store.Person(ctx, id)
}

func TestServerSheds(t *testing.T) {
	st := &blockingStore{Store: mustOpenStore(t), entered: make(chan struct{}, 1), release: make(chan struct{})}
	ts := mustServe(t, st, registry.Config{MaxInflight: 1})
	done := make(chan int)
	go func() {
		code, _, _ := call(t, "GET", ts.URL+"/v1/persons/R-1", issuerToken, "")
		done <- code
	}()
	<-st.entered
	code, h, m := call(t, "GET", ts.URL+"/v1/persons/R-2", issuerToken, "")
	if c, _ := errField(m); code != 429 || c != kipass.ETOOMANY || h.Get("Retry-After") != "1" {
		t.Fatalf("second request = %d %v Retry-After %q, want 429 too_many_requests with Retry-After", code, m, h.Get("Retry-After"))
	}
	close(st.release)
	if code := <-done; code != 404 {
		t.Fatalf("first request = %d, want 404 after release", code)
	}
}
