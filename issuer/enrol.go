package issuer

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kipass/kipass"
)

// Enrolment is what a visitor gives to enrol: name, mobile phone number, birth date
// and registry person id.
type Enrolment struct {
	Name      string      `json:"name"`
	Phone     string      `json:"phone"`
	BirthDate kipass.Date `json:"birth_date"`
	PersonID  string      `json:"person_id"`
}

// enrolRequest is the body of POST /v1/enrolments: Enrolment with the birth date
// optional, so that a missing one is told apart from 1970-01-01.
type enrolRequest struct {
	Name      string       `json:"name"`
	Phone     string       `json:"phone"`
	BirthDate *kipass.Date `json:"birth_date"`
	PersonID  string       `json:"person_id"`
}

// EnrolmentStarted is the answer of POST /v1/enrolments: the enrolment to verify.
type EnrolmentStarted struct {
	EnrolmentID  string    `json:"enrolment_id"`
	ExpiresAt    time.Time `json:"expires_at"`
	AttemptsLeft int       `json:"attempts_left"`
}

// VerifyRequest is the body of POST /v1/enrolments/{id}/verify.
type VerifyRequest struct {
	Code string `json:"code"`
}

// WalletCredential is the answer of a completed enrolment: the wallet's bearer token.
// The issuer keeps only its SHA-256.
type WalletCredential struct {
	WalletToken string `json:"wallet_token"`
}

// Applicant is a person whose identity a Verifier checks.
type Applicant struct {
	EnrolmentID string
	Name        string
	Phone       string
	BirthDate   kipass.Date
}

// Verifier checks that an applicant is who they say they are, as a real issuer's
// identity provider (휴대폰 본인인증) does: Begin starts a check (sends a code to the
// phone), Check tests the applicant's answer. The issuer limits the attempts.
type Verifier interface {
	Begin(ctx context.Context, a *Applicant) error
	Check(ctx context.Context, enrolmentID, answer string) (bool, error)
}

// ConsoleVerifier is the demo Verifier: it makes a 6-digit one-time code and logs it
// with the enrolment id (never the phone number or name) instead of sending a text
// message. OnCode, when set, also receives each code: tests read it there.
type ConsoleVerifier struct {
	Logger *slog.Logger
	Now    func() time.Time
	TTL    time.Duration // default 10 min
	OnCode func(enrolmentID, code string)

	mu    sync.Mutex
	codes map[string]consoleCode
	key   []byte
}

type consoleCode struct {
	mac   []byte
	until time.Time
}

// Begin makes and logs a code for the enrolment.
func (v *ConsoleVerifier) Begin(ctx context.Context, a *Applicant) error {
	n, err := randomDigits(6)
	if err != nil {
		return err
	}
	now, ttl := v.clock(), v.TTL
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	v.mu.Lock()
	if v.codes == nil {
		v.codes, v.key = make(map[string]consoleCode), make([]byte, 32)
		rand.Read(v.key)
	}
	for id, c := range v.codes {
		if !now.Before(c.until) {
			delete(v.codes, id)
		}
	}
	v.codes[a.EnrolmentID] = consoleCode{mac: v.mac(a.EnrolmentID, n), until: now.Add(ttl)}
	v.mu.Unlock()
	if v.Logger != nil {
		v.Logger.Info("demo identity check: one-time code", "enrolment_id", a.EnrolmentID, "code", n)
	}
	if v.OnCode != nil {
		v.OnCode(a.EnrolmentID, n)
	}
	return nil
}

// Check reports whether answer is the enrolment's code; a right answer uses it up.
func (v *ConsoleVerifier) Check(ctx context.Context, enrolmentID, answer string) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.codes[enrolmentID]
	if !ok || !v.clock().Before(c.until) {
		return false, nil
	}
	if !hmac.Equal(c.mac, v.mac(enrolmentID, strings.TrimSpace(answer))) {
		return false, nil
	}
	delete(v.codes, enrolmentID)
	return true, nil
}

func (v *ConsoleVerifier) mac(id, code string) []byte {
	m := hmac.New(sha256.New, v.key)
	m.Write([]byte(id + "\x00" + code))
	return m.Sum(nil)
}

func (v *ConsoleVerifier) clock() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func randomDigits(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	out := make([]byte, n)
	for i := range b {
		// 250 is the largest multiple of 10 below 256: redraw above it to stay uniform.
		for b[i] >= 250 {
			var one [1]byte
			rand.Read(one[:])
			b[i] = one[0]
		}
		out[i] = '0' + b[i]%10
	}
	return string(out), nil
}

// NormalizePhone returns a Korean mobile number written as 010-1234-5678, 01012345678,
// 010 1234 5678, +82 10 1234 5678 or +82-10-1234-5678 in the form 010-1234-5678, and
// whether it was such a number. Landlines, other prefixes and other countries are not:
// the issuer enrols a person by their mobile phone, in one of those written forms,
// while kipass.NormalizePhone, which reads the digits, accepts any Korean number.
func NormalizePhone(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) > 20 || !mobileForm.MatchString(s) {
		return "", false
	}
	d, ok := kipass.NormalizePhone(s)
	if !ok || len(d) != 11 || !strings.HasPrefix(d, "010") {
		return "", false
	}
	return d[:3] + "-" + d[3:7] + "-" + d[7:], true
}

// mobileForm is how the issuer accepts a mobile number to be written: groups of 3, 4
// and 4 digits, each separated by at most one space or hyphen, or +82 and the number
// without its leading 0.
var mobileForm = regexp.MustCompile(`^(?:\+82[ -]*1|01)0[ -]?[0-9]{4}[ -]?[0-9]{4}$`)

// checkEnrolment validates and normalises e, naming the field at fault.
func checkEnrolment(e *Enrolment, today kipass.Date) error {
	e.Name = strings.TrimSpace(e.Name)
	switch {
	case e.Name == "":
		return kipass.FieldErrorf("name", "missing")
	case utf8.RuneCountInString(e.Name) > 50 || strings.IndexFunc(e.Name, unicode.IsControl) >= 0:
		return kipass.FieldErrorf("name", "must be at most 50 characters of text")
	}
	if e.Phone == "" {
		return kipass.FieldErrorf("phone", "missing")
	}
	p, ok := NormalizePhone(e.Phone)
	if !ok {
		return kipass.FieldErrorf("phone", "not a Korean mobile number: write it as 010-1234-5678 or +82 10 1234 5678")
	}
	e.Phone = p
	if e.BirthDate > today || e.BirthDate < kipass.NewDate(1900, 1, 1) {
		return kipass.FieldErrorf("birth_date", "out of range")
	}
	e.PersonID = strings.TrimSpace(e.PersonID)
	if e.PersonID == "" || len(e.PersonID) > 64 || strings.IndexFunc(e.PersonID, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return kipass.FieldErrorf("person_id", "missing or malformed: the registry person id printed on your record")
	}
	return nil
}

// matchRegistry checks e against the registry record of e.PersonID. A person the
// registry does not know and a birth date that differs get one answer, so that the
// form tells nothing about records the applicant does not hold.
func (s *Service) matchRegistry(ctx context.Context, e *Enrolment) error {
	f, err := s.facts.fetch(ctx, e.PersonID)
	if kipass.ErrorCode(err) == kipass.ENOTFOUND || (err == nil && (f.Holder.BirthDate == nil || *f.Holder.BirthDate != e.BirthDate)) {
		return kipass.FieldErrorf("person_id", "person_id and birth_date do not match a registry record")
	}
	return err
}

func (s *Service) handleEnrol(w http.ResponseWriter, r *http.Request) {
	var req enrolRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.BirthDate == nil {
		s.writeError(w, r, kipass.FieldErrorf("birth_date", "missing: write it as YYYY-MM-DD"))
		return
	}
	e := Enrolment{Name: req.Name, Phone: req.Phone, BirthDate: *req.BirthDate, PersonID: req.PersonID}
	now := s.now()
	if err := checkEnrolment(&e, kipass.DateOf(now)); err != nil {
		s.metrics.enrolments.WithLabelValues("invalid").Inc()
		s.writeError(w, r, err)
		return
	}
	if err := s.matchRegistry(r.Context(), &e); err != nil {
		s.metrics.enrolments.WithLabelValues("no_match").Inc()
		s.writeError(w, r, err)
		return
	}
	p := &enrolment{ID: newID(), Name: e.Name, Phone: e.Phone, BirthDate: e.BirthDate, PersonID: e.PersonID,
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.EnrolmentTTL)}
	if err := s.db.createEnrolment(r.Context(), p); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cfg.Verifier.Begin(r.Context(), &Applicant{EnrolmentID: p.ID, Name: p.Name, Phone: p.Phone, BirthDate: p.BirthDate}); err != nil {
		s.log.Error("identity check could not start", "enrolment_id", p.ID, "err", err)
		s.writeError(w, r, kipass.Errorf(kipass.EUNAVAILABLE, "the identity check could not be started; try again"))
		return
	}
	s.metrics.enrolments.WithLabelValues("started").Inc()
	s.log.Info("enrolment started", "enrolment_id", p.ID)
	writeJSON(w, http.StatusCreated, &EnrolmentStarted{EnrolmentID: p.ID, ExpiresAt: p.ExpiresAt, AttemptsLeft: s.cfg.MaxCodeAttempts})
}

func (s *Service) handleVerify(w http.ResponseWriter, r *http.Request) {
	var req VerifyRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if strings.TrimSpace(req.Code) == "" {
		s.writeError(w, r, kipass.FieldErrorf("code", "missing"))
		return
	}
	id := r.PathValue("id")
	ctx := r.Context()
	p, err := s.db.countAttempt(ctx, id, s.now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if p.Attempts > s.cfg.MaxCodeAttempts {
		s.db.deleteEnrolment(ctx, id)
		s.metrics.enrolments.WithLabelValues("locked").Inc()
		s.writeError(w, r, &reasonError{err: kipass.Errorf(kipass.EFORBIDDEN, "too many wrong codes: start the enrolment again"), reason: "attempts_exhausted"})
		return
	}
	ok, err := s.cfg.Verifier.Check(ctx, id, req.Code)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !ok {
		left := s.cfg.MaxCodeAttempts - p.Attempts
		if left <= 0 {
			s.db.deleteEnrolment(ctx, id)
		}
		s.metrics.enrolments.WithLabelValues("wrong_code").Inc()
		s.writeError(w, r, &reasonError{err: &kipass.Error{Code: kipass.EINVALID, Field: "code",
			Message: "code: wrong or expired one-time code; attempts left: " + strconv.Itoa(left)}, reason: "wrong_code"})
		return
	}
	token, err := s.complete(ctx, &Enrolment{Name: p.Name, Phone: p.Phone, BirthDate: p.BirthDate, PersonID: p.PersonID}, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, &WalletCredential{WalletToken: token})
}

// complete stores the visitor of a verified enrolment and returns a new wallet token.
func (s *Service) complete(ctx context.Context, e *Enrolment, enrolmentID string) (string, error) {
	var raw [32]byte
	rand.Read(raw[:])
	token := "kpw_" + base64.RawURLEncoding.EncodeToString(raw[:])
	v := &visitor{PersonID: e.PersonID, Name: e.Name, Phone: e.Phone, BirthDate: e.BirthDate, UpdatedAt: s.now()}
	if err := s.db.enrol(ctx, v, hashToken(token), enrolmentID); err != nil {
		return "", err
	}
	s.metrics.enrolments.WithLabelValues("completed").Inc()
	s.log.Info("visitor enrolled", "visitor_id", v.ID)
	return token, nil
}

// EnrolDirect enrols a visitor without the identity check, for the demo and tests: the
// enrolment is validated and matched against the registry as POST /v1/enrolments does,
// and a wallet token is returned at once.
func (s *Service) EnrolDirect(ctx context.Context, e Enrolment) (walletToken string, err error) {
	if err := checkEnrolment(&e, kipass.DateOf(s.now())); err != nil {
		return "", err
	}
	if err := s.matchRegistry(ctx, &e); err != nil {
		return "", err
	}
	return s.complete(ctx, &e, "")
}
