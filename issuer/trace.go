package issuer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/issuer/subject"
)

// Audit actions of the issuer's investigator queries.
const (
	AuditActionDayTags = "issuer_day_tags"
	AuditActionResolve = "issuer_resolve"
)

// MaxResolveItems bounds the srefs and safe numbers of one resolve request.
const MaxResolveItems = 1000

// TraceCase names the case and the reason of an investigator query; both go to the
// audit log.
type TraceCase struct {
	CaseID string `json:"case_id"`
	Reason string `json:"reason"`
}

// TraceSubject names a confirmed case by phone number or by registry person id: one
// of the two.
type TraceSubject struct {
	Phone    string `json:"phone,omitempty"`
	PersonID string `json:"person_id,omitempty"`
}

// DayTagsRequest is the body of POST /v1/trace/day-tags: the day tags of a subject for
// the KST days from From to To, both included, at most 28 days back.
type DayTagsRequest struct {
	TraceCase
	Subject *TraceSubject `json:"subject"`
	From    *kipass.Date  `json:"from"`
	To      *kipass.Date  `json:"to"`
}

// DayTag is a subject's day tag on one KST day.
type DayTag struct {
	Date   kipass.Date `json:"date"`
	DayTag []byte      `json:"day_tag"` // base64 in JSON
}

// DayTagsResponse answers POST /v1/trace/day-tags. Subjects is how many enrolled
// visitors matched (a phone number may be shared); MissingDates are days whose key
// has been destroyed or never existed.
type DayTagsResponse struct {
	DayTags      []DayTag      `json:"day_tags"`
	Subjects     int           `json:"subjects"`
	MissingDates []kipass.Date `json:"missing_dates,omitempty"`
	AuditSeq     int64         `json:"audit_seq"`
}

// ResolveRequest is the body of POST /v1/trace/resolve: sealed subject references
// (base64) and personal safe numbers from visit records.
type ResolveRequest struct {
	TraceCase
	SRefs       [][]byte `json:"srefs"`
	SafeNumbers []string `json:"safe_numbers"`
}

// Resolution is the answer for one sref or safe number. One that no key opens, no
// mapping holds or no visitor matches is Found false; the batch does not fail for it.
type Resolution struct {
	SRef       []byte `json:"sref,omitempty"`
	SafeNumber string `json:"safe_number,omitempty"`
	Found      bool   `json:"found"`
	Name       string `json:"name,omitempty"`
	Phone      string `json:"phone,omitempty"`
}

// ResolveResponse answers POST /v1/trace/resolve, in the order asked: srefs first,
// then safe numbers.
type ResolveResponse struct {
	Results  []Resolution `json:"results"`
	AuditSeq int64        `json:"audit_seq"`
}

// AuditList is the answer of GET /v1/audit.
type AuditList struct {
	Entries []*kipass.AuditEntry `json:"entries"`
}

// AuditVerification is the answer of GET /v1/audit/verify.
type AuditVerification struct {
	OK       bool   `json:"ok"`
	Entries  int64  `json:"entries"`
	BrokenAt int64  `json:"broken_at,omitempty"` // seq of the first entry that fails
	Message  string `json:"message,omitempty"`
}

// investigator returns the name of the investigator whose token r carries.
func (s *Service) investigator(r *http.Request) (string, error) {
	tok := bearerToken(r)
	if tok != "" {
		for name, want := range s.cfg.InvestigatorTokens {
			if want != "" && tokenEqual(tok, want) {
				return name, nil
			}
		}
	}
	return "", errUnauthorized("investigator token")
}

func (s *Service) auditor(r *http.Request) error {
	if tok := bearerToken(r); tok != "" && s.cfg.AuditorToken != "" && tokenEqual(tok, s.cfg.AuditorToken) {
		return nil
	}
	return errUnauthorized("auditor token")
}

func checkCase(c TraceCase) error {
	switch {
	case c.CaseID == "":
		return kipass.FieldErrorf("case_id", "missing: every query names its case")
	case len(c.CaseID) > 64 || !plainText(c.CaseID):
		return kipass.FieldErrorf("case_id", "must be at most 64 bytes of printable text")
	case strings.TrimSpace(c.Reason) == "":
		return kipass.FieldErrorf("reason", "missing: every query gives its reason")
	case utf8.RuneCountInString(c.Reason) > 500 || !plainText(c.Reason):
		return kipass.FieldErrorf("reason", "must be at most 500 characters of printable text")
	}
	return nil
}

func plainText(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// audit appends the query to the audit log; the answer goes out only after it.
func (s *Service) audit(ctx context.Context, actor, action string, c TraceCase, query any) (int64, error) {
	q, err := json.Marshal(query)
	if err != nil {
		return 0, fmt.Errorf("audit query: %w", err)
	}
	e := &kipass.AuditEntry{At: s.now(), Actor: actor, Action: action, CaseID: c.CaseID, Reason: c.Reason, Query: string(q)}
	if err := s.db.AppendAudit(ctx, e); err != nil {
		return 0, err
	}
	s.metrics.traceQueries.WithLabelValues(action).Inc()
	s.log.Info("trace query", "action", action, "actor", actor, "audit_seq", e.Seq)
	return e.Seq, nil
}

func visitorIDs(vs []*visitor) []string {
	ids := make([]string, 0, len(vs))
	for _, v := range vs {
		ids = append(ids, v.ID)
	}
	return ids
}

func (s *Service) handleDayTags(w http.ResponseWriter, r *http.Request) {
	actor, err := s.investigator(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req DayTagsRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkCase(req.TraceCase); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now()
	today := kipass.DateOf(now)
	sub := req.Subject
	switch {
	case sub == nil || (sub.Phone == "" && sub.PersonID == ""):
		err = kipass.FieldErrorf("subject", "missing: give subject.phone or subject.person_id")
	case sub.Phone != "" && sub.PersonID != "":
		err = kipass.FieldErrorf("subject", "give subject.phone or subject.person_id, not both")
	case req.From == nil:
		err = kipass.FieldErrorf("from", "missing")
	case req.To == nil:
		err = kipass.FieldErrorf("to", "missing")
	case *req.To > today:
		err = kipass.FieldErrorf("to", "after today (%s)", today)
	case *req.From < today.AddDays(-subject.RetentionDays):
		err = kipass.FieldErrorf("from", "more than %d days back: day keys are destroyed after %d days", subject.RetentionDays, subject.RetentionDays)
	case *req.From > *req.To:
		err = kipass.FieldErrorf("from", "after to")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	var vs []*visitor
	query := map[string]any{"from": req.From, "to": req.To}
	if sub.Phone != "" {
		phone, ok := NormalizePhone(sub.Phone)
		if !ok {
			s.writeError(w, r, kipass.FieldErrorf("subject.phone", "not a Korean mobile number"))
			return
		}
		query["by"] = "phone"
		vs, err = s.db.visitorsByPhone(ctx, phone)
	} else {
		query["by"] = "person_id"
		var v *visitor
		if v, err = s.db.visitorByPersonID(ctx, sub.PersonID); err == nil {
			vs = []*visitor{v}
		} else if kipass.ErrorCode(err) == kipass.ENOTFOUND {
			err = nil
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The audit names visitors by their random issuer id, never by phone number.
	query["visitors"] = visitorIDs(vs)
	keys := s.keys.get()
	resp := &DayTagsResponse{DayTags: []DayTag{}, Subjects: len(vs)}
	for d := *req.From; d <= *req.To; d++ {
		if !keys.HasDay(d) {
			resp.MissingDates = append(resp.MissingDates, d)
			continue
		}
		for _, v := range vs {
			tag, err := keys.DayTag(v.Subject, d)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			resp.DayTags = append(resp.DayTags, DayTag{Date: d, DayTag: tag})
		}
	}
	if resp.AuditSeq, err = s.audit(ctx, actor, AuditActionDayTags, req.TraceCase, query); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(vs) == 0 {
		s.writeError(w, r, kipass.Errorf(kipass.ENOTFOUND, "no enrolled visitor matches the subject (audit seq %d)", resp.AuditSeq))
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Service) handleResolve(w http.ResponseWriter, r *http.Request) {
	actor, err := s.investigator(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req ResolveRequest
	if err := decodeJSONLimit(w, r, 256<<10, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkCase(req.TraceCase); err != nil {
		s.writeError(w, r, err)
		return
	}
	if n := len(req.SRefs) + len(req.SafeNumbers); n == 0 {
		s.writeError(w, r, kipass.FieldErrorf("srefs", "nothing to resolve: give srefs or safe_numbers"))
		return
	} else if n > MaxResolveItems {
		s.writeError(w, r, kipass.FieldErrorf("srefs", "at most %d srefs and safe numbers together", MaxResolveItems))
		return
	}
	ctx := r.Context()
	keys := s.keys.get()
	digest := sha256.New()
	resp := &ResolveResponse{Results: make([]Resolution, 0, len(req.SRefs)+len(req.SafeNumbers))}
	var found []*visitor
	resolve := func(res Resolution, v *visitor, err error) error {
		switch kipass.ErrorCode(err) {
		case "":
			res.Found, res.Name, res.Phone = true, v.Name, v.Phone
			found = append(found, v)
		case kipass.ENOTFOUND:
		default:
			return err
		}
		resp.Results = append(resp.Results, res)
		return nil
	}
	for _, sref := range req.SRefs {
		digest.Write(sref)
		id, oerr := keys.Open(sref)
		var v *visitor
		if errors.Is(oerr, subject.ErrCannotOpen) {
			err = kipass.Errorf(kipass.ENOTFOUND, "cannot open")
		} else {
			v, err = s.db.visitorBySubject(ctx, id)
		}
		if err = resolve(Resolution{SRef: sref}, v, err); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	for _, n := range req.SafeNumbers {
		digest.Write([]byte("\x00" + n))
		var v *visitor
		if norm, ok := subject.NormalizeSafeNumber(n); ok {
			v, err = s.db.visitorBySafeNumber(ctx, norm)
		} else {
			err = kipass.Errorf(kipass.ENOTFOUND, "malformed safe number")
		}
		if err = resolve(Resolution{SafeNumber: n}, v, err); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	query := map[string]any{
		"srefs": len(req.SRefs), "safe_numbers": len(req.SafeNumbers),
		"items_sha256": hex.EncodeToString(digest.Sum(nil)), "resolved_visitors": visitorIDs(found),
	}
	if resp.AuditSeq, err = s.audit(ctx, actor, AuditActionResolve, req.TraceCase, query); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Service) handleListAudit(w http.ResponseWriter, r *http.Request) {
	if err := s.auditor(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	from, err := queryTime(r, "from", time.Unix(0, 0))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	to, err := queryTime(r, "to", s.now().Add(time.Minute))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	es, err := s.db.ListAudit(r.Context(), from, to)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &AuditList{Entries: es})
}

func (s *Service) handleVerifyAudit(w http.ResponseWriter, r *http.Request) {
	if err := s.auditor(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	n, err := s.db.verifyAudit(r.Context())
	var chainErr *kipass.AuditChainError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, &AuditVerification{OK: true, Entries: n})
	case errors.As(err, &chainErr):
		s.log.Error("audit chain broken", "seq", chainErr.Seq, "reason", chainErr.Reason)
		writeJSON(w, http.StatusOK, &AuditVerification{OK: false, Entries: n, BrokenAt: chainErr.Seq, Message: chainErr.Error()})
	default:
		s.writeError(w, r, err)
	}
}
