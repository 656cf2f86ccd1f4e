package http_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/seal"
)

// postPhone posts a signed phone check-in as the gateway would.
func (e *testEnv) postPhone(body []byte, ts time.Time, secret string) *rawResponse {
	e.tb.Helper()
	unix := ts.Unix()
	sig := kiphttp.SignPhoneCheckin([]byte(secret), unix, body)
	return e.Do("POST", "/v1/phone-checkins", "", body,
		kiphttp.HeaderTimestamp, strconv.FormatInt(unix, 10), kiphttp.HeaderSignature, sig)
}

func TestPhoneCheckin(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{})
		ctx := context.Background()
		f := e.MustCreateFacility("안심콜 식당", "080-555-1234")
		now := e.Clock.Now()
		const caller = "+82 10-9876-5432"
		body, _ := json.Marshal(kiphttp.PhoneCheckin{Dialled: "0805551234", Caller: caller, At: now, ID: "call-0001"})

		t.Run("StoredSealedThenDuplicate", func(t *testing.T) {
			r := e.postPhone(body, now, phoneSecret)
			if r.Status != 201 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			var out kiphttp.PhoneCheckinResponse
			json.Unmarshal(r.Body, &out)
			if out.Status != kipass.VisitStored || out.ID == "" {
				t.Fatalf("%+v", out)
			}
			vs, err := e.Store.FindVisitsAtFacility(ctx, f.ID, now.Add(-time.Minute), now.Add(time.Minute))
			if err != nil || len(vs) != 1 {
				t.Fatalf("%v %d visits", err, len(vs))
			}
			v := vs[0]
			if v.ID != out.ID || v.Method != kipass.MethodPhone {
				t.Fatalf("stored %+v", v)
			}
			plain, err := seal.Open(e.SealPriv, seal.InfoContact, v.Contact)
			if err != nil || string(plain) != "01098765432" {
				t.Fatalf("sealed contact opens to %q (%v), want the normalized caller", plain, err)
			}
			// A replay of the same call is the same visit.
			r = e.postPhone(body, now.Add(time.Second), phoneSecret)
			json.Unmarshal(r.Body, &out)
			if r.Status != 200 || out.Status != kipass.VisitDuplicate || out.ID != v.ID {
				t.Fatalf("replay: %d %s", r.Status, r.Body)
			}
			if n, err := e.Store.CountVisit(ctx, v.ID); err != nil || n != 1 {
				t.Fatalf("stored %d times (%v)", n, err)
			}
			e.checkNoSecrets(t, "01098765432", "9876", "5432", phoneSecret)
		})

		t.Run("WithoutCallID", func(t *testing.T) {
			b1, _ := json.Marshal(map[string]any{"dialled": "080-555-1234", "caller": "02-123-4567", "at": now})
			r1, r2 := e.postPhone(b1, now, phoneSecret), e.postPhone(b1, now, phoneSecret)
			if r1.Status != 201 || r2.Status != 200 {
				t.Fatalf("%d %s / %d %s", r1.Status, r1.Body, r2.Status, r2.Body)
			}
		})

		for _, tc := range []struct {
			name   string
			resp   func() *rawResponse
			status int
			code   string
			field  string
		}{
			{"ErrBadSignature", func() *rawResponse { return e.postPhone(body, now, "wrong secret") }, 401, kipass.EUNAUTHORIZED, kiphttp.HeaderSignature},
			{"ErrOldTimestamp", func() *rawResponse { return e.postPhone(body, now.Add(-6*time.Minute), phoneSecret) }, 401, kipass.EUNAUTHORIZED, kiphttp.HeaderTimestamp},
			{"ErrFutureTimestamp", func() *rawResponse { return e.postPhone(body, now.Add(6*time.Minute), phoneSecret) }, 401, kipass.EUNAUTHORIZED, kiphttp.HeaderTimestamp},
			{"ErrNoHeaders", func() *rawResponse { return e.Do("POST", "/v1/phone-checkins", "", body) }, 401, kipass.EUNAUTHORIZED, kiphttp.HeaderTimestamp},
			{"ErrTamperedBody", func() *rawResponse {
				sig := kiphttp.SignPhoneCheckin([]byte(phoneSecret), now.Unix(), body)
				other, _ := json.Marshal(kiphttp.PhoneCheckin{Dialled: "0805551234", Caller: "01011112222", At: now})
				return e.Do("POST", "/v1/phone-checkins", "", other, kiphttp.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10), kiphttp.HeaderSignature, sig)
			}, 401, kipass.EUNAUTHORIZED, kiphttp.HeaderSignature},
			{"ErrUnknownNumber", func() *rawResponse {
				b, _ := json.Marshal(kiphttp.PhoneCheckin{Dialled: "080-000-0000", Caller: caller, At: now})
				return e.postPhone(b, now, phoneSecret)
			}, 404, kipass.ENOTFOUND, "dialled"},
			{"ErrBadCaller", func() *rawResponse {
				b, _ := json.Marshal(kiphttp.PhoneCheckin{Dialled: "0805551234", Caller: "call me maybe", At: now})
				return e.postPhone(b, now, phoneSecret)
			}, 400, kipass.EINVALID, "caller"},
			{"ErrOldCall", func() *rawResponse {
				b, _ := json.Marshal(kiphttp.PhoneCheckin{Dialled: "0805551234", Caller: caller, At: now.Add(-29 * 24 * time.Hour)})
				return e.postPhone(b, now, phoneSecret)
			}, 400, kipass.EINVALID, "at"},
			{"ErrUnknownField", func() *rawResponse {
				return e.postPhone([]byte(`{"dialled":"0805551234","caller":"01012345678","at":"`+now.Format(time.RFC3339)+`","name":"홍길동"}`), now, phoneSecret)
			}, 400, kipass.EINVALID, "name"},
		} {
			t.Run(tc.name, func(t *testing.T) { expectError(t, tc.resp(), tc.status, tc.code, tc.field) })
		}
	})
}

func TestPhoneCheckinDisabled(t *testing.T) {
	e := MustOpenEnv(t, backends[0], envOptions{server: func(s *kiphttp.Server) { s.Auth.PhoneSecret = nil }})
	body := []byte(`{}`)
	expectError(t, e.postPhone(body, e.Clock.Now(), ""), 401, kipass.EUNAUTHORIZED, "")
}
