package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
)

func TestFacilities(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{})
		ctx := context.Background()

		t.Run("CreateGetList", func(t *testing.T) {
			f, err := e.Admin.CreateFacility(ctx, &kiphttp.CreateFacilityRequest{
				Name: "을지로 국밥", BusinessNumber: "124-81-00998", Category: "restaurant", Region: "seoul",
				Address: "서울 중구 을지로 1", PhoneNumber: "080-123-4567",
			})
			if err != nil {
				t.Fatal(err)
			}
			if f.ID == "" || f.BusinessNumber != "1248100998" || f.PhoneNumber != "0801234567" || f.CreatedAt.IsZero() {
				t.Fatalf("created %+v", f)
			}
			var got kipass.Facility
			if err := e.Admin.Do(ctx, "GET", "/v1/facilities/"+f.ID, nil, &got); err != nil {
				t.Fatal(err)
			}
			if got.ID != f.ID || got.Name != "을지로 국밥" || got.Category != "restaurant" || got.Region != "seoul" {
				t.Fatalf("got %+v", got)
			}
			var list kiphttp.FacilityList
			if err := e.Admin.Do(ctx, "GET", "/v1/facilities", nil, &list); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, g := range list.Facilities {
				found = found || g.ID == f.ID
			}
			if !found {
				t.Fatalf("facility %s not listed in %d", f.ID, len(list.Facilities))
			}
		})

		t.Run("NotFound", func(t *testing.T) {
			expectError(t, e.Do("GET", "/v1/facilities/f-nope", adminToken, nil), 404, kipass.ENOTFOUND, "")
		})

		t.Run("ConflictBusinessNumber", func(t *testing.T) {
			req := kiphttp.CreateFacilityRequest{Name: "A", BusinessNumber: BusinessNumber(9000), Category: "cafe", Region: "busan"}
			if r := e.DoJSON("POST", "/v1/facilities", adminToken, req); r.Status != 201 {
				t.Fatalf("first: %d %s", r.Status, r.Body)
			}
			expectError(t, e.DoJSON("POST", "/v1/facilities", adminToken, req), 409, kipass.ECONFLICT, "")
		})

		valid := func() map[string]any {
			return map[string]any{"name": "카페", "business_number": BusinessNumber(e.bizSeq.Add(1) + 5000), "category": "cafe", "region": "daegu"}
		}
		for _, tc := range []struct {
			name   string
			change func(m map[string]any)
			raw    string
			field  string
		}{
			{name: "ErrBadCheckDigit", change: func(m map[string]any) { m["business_number"] = "124-81-00997" }, field: "business_number"},
			{name: "ErrShortBusinessNumber", change: func(m map[string]any) { m["business_number"] = "12481009" }, field: "business_number"},
			{name: "ErrLettersInBusinessNumber", change: func(m map[string]any) { m["business_number"] = "12A8100998" }, field: "business_number"},
			{name: "ErrUnknownCategory", change: func(m map[string]any) { m["category"] = "casino" }, field: "category"},
			{name: "ErrUnknownRegion", change: func(m map[string]any) { m["region"] = "atlantis" }, field: "region"},
			{name: "ErrNoName", change: func(m map[string]any) { m["name"] = "  " }, field: "name"},
			{name: "ErrBadPhone", change: func(m map[string]any) { m["phone_number"] = "12345" }, field: "phone_number"},
			{name: "ErrUnknownField", change: func(m map[string]any) { m["owner"] = "x" }, field: "owner"},
			{name: "ErrWrongType", change: func(m map[string]any) { m["name"] = 5 }, field: "name"},
			{name: "ErrNotJSON", raw: `{"name": `, field: ""},
			{name: "ErrTrailingData", raw: `{"name":"x"} {}`, field: ""},
			{name: "ErrEmptyBody", raw: ``, field: ""},
			{name: "ErrDuplicateName", raw: `{"name":"a","name":"b"}`, field: "name"},
			{name: "ErrTooLarge", raw: `{"name":"` + strings.Repeat("가", 30000) + `"}`, field: ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				body := []byte(tc.raw)
				if tc.change != nil {
					m := valid()
					tc.change(m)
					body, _ = json.Marshal(m)
				}
				expectError(t, e.Do("POST", "/v1/facilities", adminToken, body), 400, kipass.EINVALID, tc.field)
			})
		}
	})
}

func TestEnrollment(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{})
		ctx := context.Background()
		f := e.MustCreateFacility("헬스장", "")

		t.Run("EnrollOnce", func(t *testing.T) {
			code, err := e.Admin.CreateEnrollmentCode(ctx, f.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(code.Code) != kiphttp.EnrollmentCodeLength || strings.ContainsAny(code.Code, "01IO") {
				t.Fatalf("code %q", code.Code)
			}
			if d := code.ExpiresAt.Sub(e.Clock.Now()); d < 23*time.Hour || d > 25*time.Hour {
				t.Fatalf("code expires in %v, want 24h", d)
			}
			// Codes are typed by hand: lower case and hyphens are fine.
			typed := strings.ToLower(code.Code[:5]) + "-" + code.Code[5:]
			resp, err := e.Anonymous.Enroll(ctx, typed, "kiosk 1")
			if err != nil {
				t.Fatal(err)
			}
			if resp.Device.FacilityID != f.ID || resp.Facility.ID != f.ID || resp.Facility.Category != "restaurant" ||
				resp.Facility.Region != "seoul" || resp.Facility.Name != "헬스장" || len(resp.Token) != 43 {
				t.Fatalf("enrolled %+v", resp)
			}
			r := e.DoJSON("POST", "/v1/devices", "", kiphttp.EnrollRequest{Code: code.Code})
			expectError(t, r, 401, kipass.EUNAUTHORIZED, "code")
			e.checkNoSecrets(t, resp.Token, code.Code)
		})

		t.Run("ErrExpiredCode", func(t *testing.T) {
			var code kipass.EnrollmentCode
			if err := e.Admin.Do(ctx, "POST", "/v1/facilities/"+f.ID+"/enrollment-codes", map[string]string{"ttl": "1h"}, &code); err != nil {
				t.Fatal(err)
			}
			e.Clock.Advance(2 * time.Hour)
			defer e.Clock.Advance(-2 * time.Hour)
			expectError(t, e.DoJSON("POST", "/v1/devices", "", kiphttp.EnrollRequest{Code: code.Code}), 401, kipass.EUNAUTHORIZED, "code")
		})

		t.Run("ErrUnknownCode", func(t *testing.T) {
			expectError(t, e.DoJSON("POST", "/v1/devices", "", kiphttp.EnrollRequest{Code: "ABCDEFGHJK"}), 401, kipass.EUNAUTHORIZED, "code")
			expectError(t, e.DoJSON("POST", "/v1/devices", "", kiphttp.EnrollRequest{Code: "ABC"}), 400, kipass.EINVALID, "code")
			expectError(t, e.Do("POST", "/v1/devices", "", []byte(`{"code":"ABCDEFGHJK","facility_id":"x"}`)), 400, kipass.EINVALID, "facility_id")
		})

		t.Run("ErrBadTTL", func(t *testing.T) {
			expectError(t, e.Do("POST", "/v1/facilities/"+f.ID+"/enrollment-codes", adminToken, []byte(`{"ttl":"soon"}`)), 400, kipass.EINVALID, "ttl")
			expectError(t, e.Do("POST", "/v1/facilities/"+f.ID+"/enrollment-codes", adminToken, []byte(`{"ttl":"1s"}`)), 400, kipass.EINVALID, "ttl")
		})

		t.Run("ErrUnknownFacility", func(t *testing.T) {
			expectError(t, e.Do("POST", "/v1/facilities/f-nope/enrollment-codes", adminToken, nil), 404, kipass.ENOTFOUND, "")
		})

		t.Run("Revoke", func(t *testing.T) {
			dev, resp := e.MustEnroll(f.ID)
			if _, err := dev.UploadVisits(ctx, []*kipass.Visit{QRVisit(f.ID, e.Clock.Now())}); err != nil {
				t.Fatalf("upload before revocation: %v\n%s", err, e.Logs.String())
			}
			if r := e.Do("DELETE", "/v1/devices/"+resp.Device.ID, adminToken, nil); r.Status != http.StatusNoContent {
				t.Fatalf("revoke: %d %s", r.Status, r.Body)
			}
			_, err := dev.UploadVisits(ctx, []*kipass.Visit{QRVisit(f.ID, e.Clock.Now())})
			if kipass.ErrorCode(err) != kipass.EUNAUTHORIZED {
				t.Fatalf("upload after revocation: %v, want unauthorized", err)
			}
			expectError(t, e.Do("DELETE", "/v1/devices/d-nope", adminToken, nil), 404, kipass.ENOTFOUND, "")
		})
	})
}
