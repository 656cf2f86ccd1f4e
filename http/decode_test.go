package http

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
)

func TestParseBusinessNumber(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"Hyphens", "124-81-00998", "1248100998"},
		{"Digits", "1248100998", "1248100998"},
		{"Spaces", "124 81 00998", "1248100998"},
		{"ErrBadCheckDigit", "124-81-00997", ""},
		{"ErrShort", "124-81-0099", ""},
		{"ErrLong", "124-81-009981", ""},
		{"ErrLetter", "124-8I-00998", ""},
		{"ErrEmpty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBusinessNumber(tc.in)
			if tc.want == "" {
				if err == nil || kipass.ErrorField(err) != "business_number" {
					t.Fatalf("ParseBusinessNumber(%q) = %q, %v; want an error naming business_number", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseBusinessNumber(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	// Every last digit but one is wrong.
	valid := 0
	for d := '0'; d <= '9'; d++ {
		if _, err := ParseBusinessNumber("220-81-6253" + string(d)); err == nil {
			valid++
		}
	}
	if valid != 1 {
		t.Fatalf("%d check digits accepted, want 1", valid)
	}
}

func TestRateLimiter(t *testing.T) {
	l := newRateLimiter(2, 3, 100)
	now := time.Unix(1_700_000_000, 0)
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow("d", now); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.allow("d", now)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("over the burst: %v, wait %v; want refused for 500ms", ok, wait)
	}
	if ok, _ := l.allow("d", now.Add(500*time.Millisecond)); !ok {
		t.Fatal("refused after refill")
	}
	// The map stays bounded whatever the number of devices.
	for i := 0; i < 10_000; i++ {
		l.allow("dev-"+strconv.Itoa(i), now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := l.size(); n > 100 {
		t.Fatalf("%d buckets tracked, bound is 100", n)
	}
}

func TestShedCounter(t *testing.T) {
	var c shedCounter
	now := time.Unix(1_700_000_000, 0)
	c.add(now)
	c.add(now.Add(30 * time.Second))
	if n := c.lastMinute(now.Add(30 * time.Second)); n != 2 {
		t.Fatalf("%d, want 2", n)
	}
	if n := c.lastMinute(now.Add(61 * time.Second)); n != 1 {
		t.Fatalf("%d a minute later, want 1", n)
	}
	if n := c.lastMinute(now.Add(5 * time.Minute)); n != 0 {
		t.Fatalf("%d five minutes later, want 0", n)
	}
}

func TestDecodeVisitBatch(t *testing.T) {
	v := kipass.Visit{ID: "a", FacilityID: "f", At: time.Date(2022, 1, 6, 12, 0, 0, 0, kipass.KST), Method: kipass.MethodQR,
		TokenID: bytes.Repeat([]byte{1}, TokenIDSize), DTag: bytes.Repeat([]byte{2}, DayTagSize), SRef: bytes.Repeat([]byte{3}, SRefSize)}
	body, _ := json.Marshal(UploadRequest{Visits: []*kipass.Visit{&v, &v}})
	got, err := decodeVisitBatch(bytes.NewReader(body))
	if err != nil || len(got) != 2 || !got[1].SameContent(&v) {
		t.Fatalf("%v %d", err, len(got))
	}
}

// FuzzDecodeVisitBatch feeds arbitrary bodies to the batch decoder and the visit
// checks: they must never panic, never return more than MaxBatchSize visits, and
// always name a field or say what is wrong.
func FuzzDecodeVisitBatch(f *testing.F) {
	v := kipass.Visit{ID: "v-1", FacilityID: "f-1", At: time.Date(2022, 1, 6, 12, 0, 0, 0, time.UTC), Method: kipass.MethodQR,
		IssuerKeyID: "k", TokenID: make([]byte, TokenIDSize), DTag: make([]byte, DayTagSize), SRef: make([]byte, SRefSize), Outcome: kipass.PASS}
	valid, _ := json.Marshal(UploadRequest{Visits: []*kipass.Visit{&v}})
	for _, seed := range []string{
		string(valid), `{"visits":[]}`, `{}`, `[]`, `null`, `{"visits":null}`, `{"visits":[null]}`,
		`{"visits":[{"id":"a","at":"2022-01-06T12:00:00+09:00","token_id":"AAAA"}]}`,
		`{"visits":[{"id":"a","id":"b"}]}`, `{"visits":[],"visits":[]}`, `{"visits":[{}],"x":1}`,
		`{"visits":[{"at":"yesterday"}]}`, `{"visits":[{"token_id":"%%"}]}`, `{"visits":[1,2,3]}`,
		`{"visits":[{"id":"\ud800"}]}`, `{"visits":[{"decision":{"a":[1,{"b":null}]}}]}`, "{\"visits\":[{\"id\":\"\xff\"}]}",
		`{"visits":[` + strings.Repeat(`{},`, 1001) + `{}]}`,
	} {
		f.Add([]byte(seed))
	}
	dev := &kipass.Device{ID: "d-1", FacilityID: "f-1"}
	now := time.Date(2022, 1, 6, 12, 5, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		visits, err := decodeVisitBatch(bytes.NewReader(body))
		if err != nil {
			if kipass.ErrorCode(err) != kipass.EINVALID || kipass.ErrorMessage(err) == "" {
				t.Fatalf("error %v is not a client error with a message", err)
			}
			return
		}
		if len(visits) > MaxBatchSize {
			t.Fatalf("%d visits decoded", len(visits))
		}
		for _, v := range visits {
			if v == nil {
				t.Fatal("nil visit decoded")
			}
			checkVisit(v, dev, now)
		}
	})
}

// FuzzPhoneCheckin feeds arbitrary headers and bodies to the webhook's parser, signed
// correctly or not: it must never panic, and whatever it accepts carries normalized
// numbers and a time within the limits.
func FuzzPhoneCheckin(f *testing.F) {
	secret := []byte("gateway-secret")
	now := time.Date(2022, 1, 6, 12, 0, 0, 0, time.UTC)
	for _, seed := range []string{
		`{"dialled":"080-123-4567","caller":"010-1234-5678","at":"2022-01-06T20:59:00+09:00","id":"call-1"}`,
		`{"dialled":"0801234567","caller":"+82 10 1234 5678","at":"2022-01-06T12:00:00Z"}`,
		`{"dialled":"","caller":"","at":""}`, `{}`, `[]`, `{"dialled":1}`, `{"id":"` + strings.Repeat("x", 200) + `"}`,
	} {
		f.Add([]byte(seed), true, int64(0))
		f.Add([]byte(seed), false, int64(301))
	}
	f.Fuzz(func(t *testing.T, body []byte, sign bool, skew int64) {
		ts := now.Unix() + skew
		sig := "00"
		if sign {
			sig = SignPhoneCheckin(secret, ts, body)
		}
		c, err := parsePhoneCheckin(secret, strconv.FormatInt(ts, 10), sig, body, now)
		if err != nil {
			if code := kipass.ErrorCode(err); code != kipass.EINVALID && code != kipass.EUNAUTHORIZED {
				t.Fatalf("error %v has code %s", err, code)
			}
			return
		}
		if !sign || skew > 300 || skew < -300 {
			t.Fatalf("accepted with sign=%v skew=%d", sign, skew)
		}
		if n, ok := kipass.NormalizePhone(c.Caller); !ok || n != c.Caller {
			t.Fatalf("caller %q not normalized", c.Caller)
		}
		if c.At.After(now.Add(MaxFutureSkew)) || c.At.Before(now.Add(-kipass.Retention)) {
			t.Fatalf("time %v accepted", c.At)
		}
		if id := phoneVisitID(secret, c); !validID(id) {
			t.Fatalf("visit id %q is not a valid id", id)
		}
	})
}
