package http

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/kipass/kipass"
	"github.com/kipass/kipass/seal"
)

// Headers of the telco gateway's signed webhook.
const (
	HeaderTimestamp = "X-Kipass-Timestamp" // unix seconds
	HeaderSignature = "X-Kipass-Signature" // hex HMAC-SHA256 of timestamp + "." + body
)

// MaxPhoneClockSkew is how far the gateway's timestamp may be from the server clock.
const MaxPhoneClockSkew = 5 * time.Minute

func (s *Server) registerPhoneRoutes() {
	s.handle("POST /v1/phone-checkins", s.handlePhoneCheckin)
}

// PhoneCheckin is the body the telco gateway posts for one call to a 안심콜 number.
type PhoneCheckin struct {
	Dialled string    `json:"dialled"`      // the facility's check-in number
	Caller  string    `json:"caller"`       // the visitor's number; sealed at once, never stored plain
	At      time.Time `json:"at"`           // time of the call
	ID      string    `json:"id,omitempty"` // the gateway's call id, for idempotent replays
}

// PhoneCheckinResponse is the answer to the gateway.
type PhoneCheckinResponse struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// SignPhoneCheckin returns the X-Kipass-Signature of body at timestamp ts under secret,
// as the gateway computes it.
func SignPhoneCheckin(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Server) handlePhoneCheckin(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		s.Error(w, r, jsonError(err))
		return
	}
	now := s.Now()
	c, err := parsePhoneCheckin(s.Auth.PhoneSecret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, now)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	f, err := s.FacilityService.FindFacilityByPhone(r.Context(), c.Dialled)
	if kipass.ErrorCode(err) == kipass.ENOTFOUND {
		s.Error(w, r, &kipass.Error{Code: kipass.ENOTFOUND, Field: "dialled", Message: "dialled: no facility has this check-in number"})
		return
	} else if err != nil {
		s.Error(w, r, err)
		return
	}
	contact, err := seal.Seal(s.Bundle().SealingKey, seal.InfoContact, []byte(c.Caller))
	c.Caller = "" // from here on the number exists only sealed
	if err != nil {
		s.Error(w, r, err)
		return
	}
	v := &kipass.Visit{
		ID:         phoneVisitID(s.Auth.PhoneSecret, c),
		FacilityID: f.ID,
		At:         c.At.UTC(),
		Method:     kipass.MethodPhone,
		Contact:    contact,
	}
	statuses, err := s.VisitService.StoreVisits(r.Context(), []*kipass.Visit{v})
	if kipass.ErrorCode(err) == kipass.ETOOMANY {
		s.shedRequest(w, r, "store_queue", time.Second, "central is busy: retry later")
		return
	} else if err != nil {
		s.Error(w, r, err)
		return
	} else if len(statuses) != 1 {
		s.Error(w, r, errString("store visits: wrong number of answers"))
		return
	}
	st := statuses[0].Status
	status := http.StatusCreated
	if st != kipass.VisitStored {
		// A replayed call seals the number anew, so its content differs from the stored
		// visit although it is the same call: the id, derived from the gateway's call
		// id, is what makes it the same.
		st, status = kipass.VisitDuplicate, http.StatusOK
	}
	s.metrics.phoneCheckins.WithLabelValues(st).Inc()
	s.Logger.Info("phone check-in", "visit", v.ID, "facility", f.ID, "status", st)
	writeJSON(w, status, &PhoneCheckinResponse{ID: v.ID, Status: st})
}

type errString string

func (e errString) Error() string { return string(e) }

// parsePhoneCheckin checks the gateway's signature and timestamp, then decodes and
// validates the body, normalizing both numbers. It never panics, whatever the input.
func parsePhoneCheckin(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time) (*PhoneCheckin, error) {
	if len(secret) == 0 {
		return nil, kipass.Errorf(kipass.EUNAUTHORIZED, "phone check-in is not enabled on this server")
	}
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return nil, &kipass.Error{Code: kipass.EUNAUTHORIZED, Field: HeaderTimestamp, Message: HeaderTimestamp + ": missing or malformed"}
	}
	if d := now.Sub(time.Unix(ts, 0)); ts < 0 || ts > 1<<40 || d > MaxPhoneClockSkew || d < -MaxPhoneClockSkew {
		return nil, &kipass.Error{Code: kipass.EUNAUTHORIZED, Field: HeaderTimestamp, Message: HeaderTimestamp + ": more than 5 minutes off the server clock"}
	}
	want := SignPhoneCheckin(secret, ts, body)
	if !hmac.Equal([]byte(strings.ToLower(sigHeader)), []byte(want)) {
		return nil, &kipass.Error{Code: kipass.EUNAUTHORIZED, Field: HeaderSignature, Message: HeaderSignature + ": bad signature"}
	}
	if len(body) == 0 {
		return nil, kipass.Errorf(kipass.EINVALID, "the body is empty: want a JSON object")
	}
	var c PhoneCheckin
	if err := jsonv2.Unmarshal(body, &c, strictJSON); err != nil {
		return nil, jsonError(err)
	}
	var ok bool
	if c.Dialled, ok = kipass.NormalizePhone(c.Dialled); !ok {
		return nil, kipass.FieldErrorf("dialled", "not a Korean phone number")
	}
	if c.Caller, ok = kipass.NormalizePhone(c.Caller); !ok {
		return nil, kipass.FieldErrorf("caller", "not a Korean phone number")
	}
	switch {
	case c.At.IsZero():
		return nil, kipass.FieldErrorf("at", "missing")
	case c.At.After(now.Add(MaxFutureSkew)):
		return nil, kipass.FieldErrorf("at", "more than 10 minutes in the future")
	case c.At.Before(now.Add(-kipass.Retention)):
		return nil, kipass.FieldErrorf("at", "older than 28 days")
	}
	if c.ID != "" && (len(c.ID) > 128 || !printableASCII(c.ID)) {
		return nil, kipass.FieldErrorf("id", "must be 1 to 128 printable ASCII characters")
	}
	return &c, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// phoneVisitID derives the visit id of a call deterministically, so that a replay of
// the same call is the same visit: from the gateway's call id when it gives one, else
// from a keyed hash of the call (the key is the gateway secret, which the database
// never holds).
func phoneVisitID(secret []byte, c *PhoneCheckin) string {
	m := hmac.New(sha256.New, secret)
	if c.ID != "" {
		m.Write([]byte("call-id\x00" + c.ID))
	} else {
		m.Write([]byte("call\x00" + c.Dialled + "\x00" + c.Caller + "\x00" + strconv.FormatInt(c.At.Unix(), 10)))
	}
	return "phone-" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}
