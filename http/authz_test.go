package http_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
)

// TestAuthorization is the authorisation matrix: every protected route, called by
// every kind of caller. The allowed callers get a 2xx; the others 401 (no or unknown
// credential) or 403 (a credential of another role).
func TestAuthorization(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{})
		fa, fb := e.MustCreateFacility("A", ""), e.MustCreateFacility("B", "")
		devA, enrolA := e.MustEnroll(fa.ID)
		devB, _ := e.MustEnroll(fb.ID)
		now := e.Clock.Now()
		callers := []struct{ name, token string }{
			{"admin", adminToken}, {"deviceA", devA.Token}, {"deviceB", devB.Token},
			{"investigator", investigatorToken}, {"auditor", auditorToken}, {"none", ""}, {"unknown", "not-a-token"},
		}
		tc := kiphttp.TraceCase{CaseID: "c-1", Reason: "authz test"}
		routes := []struct {
			method, path string
			body         func() any
			allowed      []string
		}{
			{"POST", "/v1/facilities", func() any {
				return kiphttp.CreateFacilityRequest{Name: "n", BusinessNumber: BusinessNumber(e.bizSeq.Add(1)), Category: "gym", Region: "busan"}
			}, []string{"admin"}},
			{"GET", "/v1/facilities", nil, []string{"admin"}},
			{"GET", "/v1/facilities/" + fa.ID, nil, []string{"admin"}},
			{"POST", "/v1/facilities/" + fa.ID + "/enrollment-codes", nil, []string{"admin"}},
			{"POST", "/v1/visits", func() any { return kiphttp.UploadRequest{Visits: []*kipass.Visit{QRVisit(fa.ID, now)}} }, []string{"deviceA", "deviceB"}},
			{"POST", "/v1/trace/visits-by-day-tags", func() any {
				return kiphttp.TraceByDayTagsRequest{TraceCase: tc, DayTags: [][]byte{make([]byte, kiphttp.DayTagSize)}}
			}, []string{"investigator"}},
			{"POST", "/v1/trace/facility-visits", func() any {
				return kiphttp.TraceFacilityRequest{TraceCase: tc, FacilityID: fa.ID, From: now.Add(-time.Hour), To: now}
			}, []string{"investigator"}},
			{"POST", "/v1/trace/co-visits", func() any {
				return kiphttp.TraceCoVisitsRequest{TraceCase: tc, Visits: []kiphttp.CaseVisit{{FacilityID: fa.ID, At: now}}}
			}, []string{"investigator"}},
			{"GET", "/v1/audit", nil, []string{"auditor"}},
			{"GET", "/v1/audit/verify", nil, []string{"auditor"}},
			{"GET", "/v1/shared-tokens", nil, []string{"admin"}},
			{"POST", "/v1/notices", func() any { return kiphttp.CreateNoticeRequest{Level: "info", MessageKO: "안내"} }, []string{"admin"}},
		}
		for _, rt := range routes {
			for _, c := range callers {
				t.Run(fmt.Sprintf("%s %s as %s", rt.method, rt.path, c.name), func(t *testing.T) {
					var body []byte
					if rt.body != nil {
						body, _ = json.Marshal(rt.body())
					}
					r := e.Do(rt.method, rt.path, c.token, body)
					switch {
					case slices.Contains(rt.allowed, c.name):
						if r.Status < 200 || r.Status > 299 {
							t.Fatalf("status %d, want 2xx: %s", r.Status, r.Body)
						}
					case c.token == "" || c.name == "unknown":
						expectError(t, r, 401, kipass.EUNAUTHORIZED, "")
					default:
						expectError(t, r, 403, kipass.EFORBIDDEN, "")
					}
				})
			}
		}
		// Routes that consume what they act on, one caller at a time.
		t.Run("RevokeDeviceAndEndNotice", func(t *testing.T) {
			for _, c := range callers[1:] {
				r := e.Do("DELETE", "/v1/devices/"+enrolA.Device.ID, c.token, nil)
				if r.Status != 401 && r.Status != 403 {
					t.Fatalf("DELETE device as %s: %d", c.name, r.Status)
				}
				r = e.Do("POST", "/v1/notices/n-x/end", c.token, nil)
				if r.Status != 401 && r.Status != 403 {
					t.Fatalf("end notice as %s: %d", c.name, r.Status)
				}
			}
			if r := e.Do("DELETE", "/v1/devices/"+enrolA.Device.ID, adminToken, nil); r.Status != 204 {
				t.Fatalf("revoke as admin: %d", r.Status)
			}
		})
		// Public routes answer anyone.
		for _, path := range []string{"/v1/status", "/v1/openapi.json", "/v1/bundle", "/healthz", "/readyz", "/metrics"} {
			if r := e.Do("GET", path, "", nil); r.Status != 200 {
				t.Errorf("GET %s: %d", path, r.Status)
			}
		}
		e.checkNoSecrets(t, adminToken, investigatorToken, auditorToken, devB.Token)
	})
}

// TestOpenAPI checks that the OpenAPI document describes every registered route and
// nothing else.
func TestOpenAPI(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(kiphttp.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	var described []string
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			described = append(described, strings.ToUpper(method)+" "+path)
		}
	}
	registered := kiphttp.NewServer().Routes()
	sort.Strings(described)
	sort.Strings(registered)
	for _, r := range registered {
		if !slices.Contains(described, r) {
			t.Errorf("route %q is not described in openapi.json", r)
		}
	}
	for _, d := range described {
		if !slices.Contains(registered, d) {
			t.Errorf("openapi.json describes %q, which the server does not serve", d)
		}
	}
	// The document references only schemas it defines.
	var full map[string]any
	json.Unmarshal(kiphttp.OpenAPI(), &full)
	schemas := full["components"].(map[string]any)["schemas"].(map[string]any)
	responses := full["components"].(map[string]any)["responses"].(map[string]any)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				name := ref[strings.LastIndex(ref, "/")+1:]
				if _, ok := schemas[name]; !ok && strings.Contains(ref, "/schemas/") {
					t.Errorf("dangling $ref %s", ref)
				}
				if _, ok := responses[name]; !ok && strings.Contains(ref, "/responses/") {
					t.Errorf("dangling $ref %s", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(full)
	if r := MustOpenEnv(t, backends[0], envOptions{}).Do("GET", "/v1/openapi.json", "", nil); r.Status != http.StatusOK || !json.Valid(r.Body) {
		t.Fatalf("GET /v1/openapi.json: %d", r.Status)
	}
}
