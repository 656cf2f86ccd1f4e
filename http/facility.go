package http

import (
	"crypto/rand"
	"encoding/base32"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kipass/kipass"
)

func (s *Server) registerFacilityRoutes() {
	s.handle("POST /v1/facilities", s.handleCreateFacility)
	s.handle("GET /v1/facilities", s.handleListFacilities)
	s.handle("GET /v1/facilities/{id}", s.handleGetFacility)
	s.handle("POST /v1/facilities/{id}/enrollment-codes", s.handleCreateEnrollmentCode)
	s.handle("POST /v1/devices", s.handleEnrollDevice)
	s.handle("DELETE /v1/devices/{id}", s.handleRevokeDevice)
}

// CreateFacilityRequest is the body of POST /v1/facilities.
type CreateFacilityRequest struct {
	Name           string `json:"name"`
	BusinessNumber string `json:"business_number"`
	Category       string `json:"category"`
	Region         string `json:"region"`
	Address        string `json:"address,omitempty"`
	PhoneNumber    string `json:"phone_number,omitempty"`
}

// FacilityList is the answer of GET /v1/facilities.
type FacilityList struct {
	Facilities []*kipass.Facility `json:"facilities"`
}

// CreateEnrollmentCodeRequest is the optional body of POST
// /v1/facilities/{id}/enrollment-codes.
type CreateEnrollmentCodeRequest struct {
	TTL Duration `json:"ttl,omitempty"`
}

// EnrollRequest is the body of POST /v1/devices.
type EnrollRequest struct {
	Code string `json:"code"`
	Name string `json:"name,omitempty"`
}

// EnrollResponse is the answer of POST /v1/devices: the device, its credential (shown
// once, never again) and what the scanner needs to know of its facility.
type EnrollResponse struct {
	Device   *kipass.Device  `json:"device"`
	Token    string          `json:"token"`
	Facility EnrolledAtPlace `json:"facility"`
}

// EnrolledAtPlace is the facility a device is enrolled at, as the scanner sees it.
type EnrolledAtPlace struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Category string `json:"category"`
	Region   string `json:"region"`
}

func (s *Server) handleCreateFacility(w http.ResponseWriter, r *http.Request) {
	if _, err := s.require(r, roleAdmin); err != nil {
		s.Error(w, r, err)
		return
	}
	var req CreateFacilityRequest
	if err := decodeJSON(w, r, MaxBodySize, &req); err != nil {
		s.Error(w, r, err)
		return
	}
	f, err := s.validateFacility(&req)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	f.ID = newID("f")
	f.CreatedAt = s.Now().UTC()
	if err := s.FacilityService.CreateFacility(r.Context(), f); err != nil {
		s.Error(w, r, err)
		return
	}
	s.Logger.Info("facility created", "facility", f.ID, "category", f.Category, "region", f.Region)
	writeJSON(w, http.StatusCreated, f)
}

func (s *Server) validateFacility(req *CreateFacilityRequest) (*kipass.Facility, error) {
	b := s.Bundle()
	f := &kipass.Facility{
		Name:     strings.TrimSpace(req.Name),
		Category: req.Category,
		Region:   req.Region,
		Address:  strings.TrimSpace(req.Address),
	}
	if f.Name == "" || utf8.RuneCountInString(f.Name) > 200 {
		return nil, kipass.FieldErrorf("name", "must be 1 to 200 characters")
	}
	bn, err := ParseBusinessNumber(req.BusinessNumber)
	if err != nil {
		return nil, err
	}
	f.BusinessNumber = bn
	if !b.HasCategory(f.Category) {
		return nil, kipass.FieldErrorf("category", "unknown facility category %q", clip(f.Category))
	}
	if !b.HasRegion(f.Region) {
		return nil, kipass.FieldErrorf("region", "unknown region %q", clip(f.Region))
	}
	if utf8.RuneCountInString(f.Address) > 500 {
		return nil, kipass.FieldErrorf("address", "must be at most 500 characters")
	}
	if req.PhoneNumber != "" {
		p, ok := kipass.NormalizePhone(req.PhoneNumber)
		if !ok {
			return nil, kipass.FieldErrorf("phone_number", "not a Korean phone number")
		}
		f.PhoneNumber = p
	}
	return f, nil
}

// clip shortens an echoed input so an error message stays small.
func clip(s string) string {
	if len(s) > 40 {
		for i := 40; i > 0; i-- {
			if utf8.RuneStart(s[i]) {
				return s[:i] + "…"
			}
		}
	}
	return s
}

// ParseBusinessNumber checks a Korean business registration number (사업자등록번호),
// with or without hyphens (123-45-67890), and returns its 10 digits. The check digit is
// the complement to 10 of the sum of the first nine digits weighted 1,3,7,1,3,7,1,3,5
// plus the tens of the ninth digit times 5.
func ParseBusinessNumber(s string) (string, error) {
	digits := make([]byte, 0, 10)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
		case c == '-' || c == ' ':
		default:
			return "", kipass.FieldErrorf("business_number", "must be 10 digits, e.g. 123-45-67890")
		}
		if len(digits) > 10 {
			break
		}
	}
	if len(digits) != 10 {
		return "", kipass.FieldErrorf("business_number", "must be 10 digits, e.g. 123-45-67890")
	}
	weights := [9]int{1, 3, 7, 1, 3, 7, 1, 3, 5}
	sum := 0
	for i, w := range weights {
		sum += int(digits[i]-'0') * w
	}
	sum += int(digits[8]-'0') * 5 / 10
	if check := (10 - sum%10) % 10; check != int(digits[9]-'0') {
		return "", kipass.FieldErrorf("business_number", "wrong check digit")
	}
	return string(digits), nil
}

func (s *Server) handleListFacilities(w http.ResponseWriter, r *http.Request) {
	if _, err := s.require(r, roleAdmin); err != nil {
		s.Error(w, r, err)
		return
	}
	fs, err := s.FacilityService.ListFacilities(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if fs == nil {
		fs = []*kipass.Facility{}
	}
	writeJSON(w, http.StatusOK, &FacilityList{Facilities: fs})
}

func (s *Server) handleGetFacility(w http.ResponseWriter, r *http.Request) {
	if _, err := s.require(r, roleAdmin); err != nil {
		s.Error(w, r, err)
		return
	}
	f, err := s.FacilityService.FindFacilityByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// enrollmentAlphabet has no 0, O, 1 or I: codes are read aloud and typed by hand. Its
// 32 symbols divide 256, so picking by byte modulo is unbiased.
const enrollmentAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// EnrollmentCodeLength is the number of characters of an enrollment code (50 bits).
const EnrollmentCodeLength = 10

// NewEnrollmentCode returns a random one-time enrollment code.
func NewEnrollmentCode() string {
	b := make([]byte, EnrollmentCodeLength)
	rand.Read(b)
	for i := range b {
		b[i] = enrollmentAlphabet[int(b[i])%len(enrollmentAlphabet)]
	}
	return string(b)
}

// normalizeCode uppercases a typed code and drops the spaces and hyphens people add.
func normalizeCode(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

func (s *Server) handleCreateEnrollmentCode(w http.ResponseWriter, r *http.Request) {
	if _, err := s.require(r, roleAdmin); err != nil {
		s.Error(w, r, err)
		return
	}
	var req CreateEnrollmentCodeRequest
	if err := decodeOptionalJSON(w, r, MaxBodySize, &req, true); err != nil {
		s.Error(w, r, err)
		return
	}
	ttl := time.Duration(req.TTL)
	if ttl == 0 {
		ttl = s.Config.EnrollmentCodeTTL
	} else if ttl < time.Minute || ttl > 30*24*time.Hour {
		s.Error(w, r, kipass.FieldErrorf("ttl", "must be between 1m and 720h"))
		return
	}
	f, err := s.FacilityService.FindFacilityByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	c := &kipass.EnrollmentCode{Code: NewEnrollmentCode(), FacilityID: f.ID, ExpiresAt: s.Now().Add(ttl).UTC()}
	if err := s.FacilityService.CreateEnrollmentCode(r.Context(), c); err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, c)
}

func (s *Server) handleEnrollDevice(w http.ResponseWriter, r *http.Request) {
	var req EnrollRequest
	if err := decodeJSON(w, r, MaxBodySize, &req); err != nil {
		s.Error(w, r, err)
		return
	}
	code := normalizeCode(req.Code)
	if len(code) != EnrollmentCodeLength {
		s.Error(w, r, kipass.FieldErrorf("code", "must be %d characters", EnrollmentCodeLength))
		return
	}
	name := strings.TrimSpace(req.Name)
	if utf8.RuneCountInString(name) > 100 {
		s.Error(w, r, kipass.FieldErrorf("name", "must be at most 100 characters"))
		return
	}
	now := s.Now().UTC()
	token := NewDeviceToken()
	d := &kipass.Device{ID: newID("d"), Name: name, CreatedAt: now}
	if err := s.FacilityService.EnrollDevice(r.Context(), code, d, HashDeviceToken(token), now); err != nil {
		if c := kipass.ErrorCode(err); c == kipass.ENOTFOUND || c == kipass.ECONFLICT {
			// Unknown, used and expired codes look alike to the caller.
			err = &kipass.Error{Code: kipass.EUNAUTHORIZED, Field: "code", Message: "code: unknown, used or expired enrollment code"}
		}
		s.Error(w, r, err)
		return
	}
	f, err := s.FacilityService.FindFacilityByID(r.Context(), d.FacilityID)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.Logger.Info("device enrolled", "device", d.ID, "facility", f.ID)
	writeJSON(w, http.StatusCreated, &EnrollResponse{
		Device:   d,
		Token:    token,
		Facility: EnrolledAtPlace{ID: f.ID, Name: f.Name, Category: f.Category, Region: f.Region},
	})
}

func (s *Server) handleRevokeDevice(w http.ResponseWriter, r *http.Request) {
	if _, err := s.require(r, roleAdmin); err != nil {
		s.Error(w, r, err)
		return
	}
	id := r.PathValue("id")
	if err := s.FacilityService.RevokeDevice(r.Context(), id, s.Now().UTC()); err != nil {
		s.Error(w, r, err)
		return
	}
	s.devices.forget(id)
	s.Logger.Info("device revoked", "device", id)
	w.WriteHeader(http.StatusNoContent)
}

// newID returns a random identifier with a kind prefix, e.g. "f-3kq7...".
func newID(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b)
	return prefix + "-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// Duration is a time.Duration written in JSON as a Go duration string ("1h30m").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// UnmarshalJSON reads a duration string such as "90m" or "2h".
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return kipass.Errorf(kipass.EINVALID, `must be a duration string such as "2h" or "90m"`)
	}
	v, err := time.ParseDuration(string(b[1 : len(b)-1]))
	if err != nil {
		return kipass.Errorf(kipass.EINVALID, `must be a duration string such as "2h" or "90m"`)
	}
	*d = Duration(v)
	return nil
}
