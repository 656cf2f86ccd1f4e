package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kipass/kipass"
)

// Limits of an investigator query.
const (
	MaxDayTags        = 1000
	MaxCaseVisits     = 100
	MaxCoVisitWindow  = 24 * time.Hour
	DefaultCoBefore   = time.Hour
	DefaultCoAfter    = 2 * time.Hour
	retentionSlack    = 5 * time.Minute // tolerated clock skew of a "28 days ago" bound
	auditActionByTag  = "visits_by_day_tags"
	auditActionFacil  = "facility_visits"
	auditActionCoVist = "co_visits"
)

func (s *Server) registerTraceRoutes() {
	s.handle("POST /v1/trace/visits-by-day-tags", s.handleTraceByDayTags)
	s.handle("POST /v1/trace/facility-visits", s.handleTraceFacility)
	s.handle("POST /v1/trace/co-visits", s.handleTraceCoVisits)
	s.handle("GET /v1/audit", s.handleListAudit)
	s.handle("GET /v1/audit/verify", s.handleVerifyAudit)
	s.handle("GET /v1/shared-tokens", s.handleSharedTokens)
}

// TraceCase names the case and the reason of an investigator query; both go to the
// audit log.
type TraceCase struct {
	CaseID string `json:"case_id"`
	Reason string `json:"reason"`
}

// TraceByDayTagsRequest asks for the visits carrying any of a case's day tags.
type TraceByDayTagsRequest struct {
	TraceCase
	DayTags [][]byte  `json:"day_tags"`
	From    time.Time `json:"from,omitzero"`
	To      time.Time `json:"to,omitzero"`
}

// TraceFacilityRequest asks for the visits at one facility within a time window.
type TraceFacilityRequest struct {
	TraceCase
	FacilityID string    `json:"facility_id"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
}

// TraceCoVisitsRequest asks for the visits at the facilities of a case's visits within
// a window around each (by default from 1 h before to 2 h after).
type TraceCoVisitsRequest struct {
	TraceCase
	Visits []CaseVisit `json:"visits"`
	Before *Duration   `json:"before,omitempty"`
	After  *Duration   `json:"after,omitempty"`
}

// CaseVisit is one visit of a confirmed case.
type CaseVisit struct {
	FacilityID string    `json:"facility_id"`
	At         time.Time `json:"at"`
}

// TraceResponse answers an investigator query, with the audit entry that records it.
type TraceResponse struct {
	Visits   []*kipass.Visit `json:"visits"`
	AuditSeq int64           `json:"audit_seq"`
}

// AuditList is the answer of GET /v1/audit.
type AuditList struct {
	Entries []*kipass.AuditEntry `json:"entries"`
}

// AuditVerification is the answer of GET /v1/audit/verify.
type AuditVerification struct {
	OK       bool   `json:"ok"`
	BrokenAt int64  `json:"broken_at,omitempty"` // seq of the first entry that fails
	Message  string `json:"message,omitempty"`
}

// SharedTokenList is the answer of GET /v1/shared-tokens.
type SharedTokenList struct {
	SharedTokens []kipass.SharedToken `json:"shared_tokens"`
}

func checkCase(c TraceCase) error {
	if c.CaseID == "" {
		return kipass.FieldErrorf("case_id", "missing: every query names its case")
	}
	if len(c.CaseID) > 64 || !plainText(c.CaseID) {
		return kipass.FieldErrorf("case_id", "must be at most 64 bytes of printable text")
	}
	if c.Reason == "" {
		return kipass.FieldErrorf("reason", "missing: every query gives its reason")
	}
	if utf8.RuneCountInString(c.Reason) > 500 || !plainText(c.Reason) {
		return kipass.FieldErrorf("reason", "must be at most 500 characters of printable text")
	}
	return nil
}

func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// window checks and completes a query window: from defaults to 28 days ago and may
// not lie before it (visits are destroyed then); to defaults to now.
func (s *Server) window(from, to time.Time, now time.Time, prefix string) (time.Time, time.Time, error) {
	oldest := now.Add(-kipass.Retention)
	if from.IsZero() {
		from = oldest
	} else if from.Before(oldest.Add(-retentionSlack)) {
		return from, to, kipass.FieldErrorf(prefix+"from", "older than 28 days: visits are destroyed after 28 days")
	} else if from.Before(oldest) {
		from = oldest
	}
	if to.IsZero() {
		to = now.Add(MaxFutureSkew)
	}
	if !to.After(from) {
		return from, to, kipass.FieldErrorf(prefix+"to", "must be after from")
	}
	return from.UTC(), to.UTC(), nil
}

// audit appends the query to the audit log before it is answered.
func (s *Server) audit(ctx context.Context, p *principal, action string, c TraceCase, query any) (int64, error) {
	q, err := json.Marshal(query)
	if err != nil {
		return 0, fmt.Errorf("audit query: %w", err)
	}
	e := &kipass.AuditEntry{At: s.Now().UTC(), Actor: p.Name, Action: action, CaseID: c.CaseID, Reason: c.Reason, Query: string(q)}
	if err := s.AuditService.AppendAudit(ctx, e); err != nil {
		return 0, fmt.Errorf("append audit: %w", err)
	}
	s.metrics.traceQueries.WithLabelValues(action).Inc()
	s.Logger.Info("trace query", "action", action, "audit_seq", e.Seq)
	return e.Seq, nil
}

func (s *Server) handleTraceByDayTags(w http.ResponseWriter, r *http.Request) {
	p, err := s.require(r, roleInvestigator)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	var req TraceByDayTagsRequest
	if err := decodeJSON(w, r, MaxBodySize, &req); err != nil {
		s.Error(w, r, err)
		return
	}
	if err := checkCase(req.TraceCase); err != nil {
		s.Error(w, r, err)
		return
	}
	if len(req.DayTags) == 0 || len(req.DayTags) > MaxDayTags {
		s.Error(w, r, kipass.FieldErrorf("day_tags", "must hold 1 to %d day tags", MaxDayTags))
		return
	}
	for i, t := range req.DayTags {
		if len(t) != DayTagSize {
			s.Error(w, r, kipass.FieldErrorf(fmt.Sprintf("day_tags[%d]", i), "must be %d bytes", DayTagSize))
			return
		}
	}
	from, to, err := s.window(req.From, req.To, s.Now(), "")
	if err != nil {
		s.Error(w, r, err)
		return
	}
	query := struct {
		DayTags [][]byte  `json:"day_tags"`
		From    time.Time `json:"from"`
		To      time.Time `json:"to"`
	}{req.DayTags, from, to}
	seq, err := s.audit(r.Context(), p, auditActionByTag, req.TraceCase, query)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	vs, err := s.VisitService.FindVisitsByDayTags(r.Context(), req.DayTags, from, to)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &TraceResponse{Visits: nonNil(vs), AuditSeq: seq})
}

func (s *Server) handleTraceFacility(w http.ResponseWriter, r *http.Request) {
	p, err := s.require(r, roleInvestigator)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	var req TraceFacilityRequest
	if err := decodeJSON(w, r, MaxBodySize, &req); err != nil {
		s.Error(w, r, err)
		return
	}
	if err := checkCase(req.TraceCase); err != nil {
		s.Error(w, r, err)
		return
	}
	if req.FacilityID == "" || len(req.FacilityID) > 64 {
		s.Error(w, r, kipass.FieldErrorf("facility_id", "must be 1 to 64 bytes"))
		return
	}
	if req.From.IsZero() {
		s.Error(w, r, kipass.FieldErrorf("from", "missing"))
		return
	}
	if req.To.IsZero() {
		s.Error(w, r, kipass.FieldErrorf("to", "missing"))
		return
	}
	from, to, err := s.window(req.From, req.To, s.Now(), "")
	if err != nil {
		s.Error(w, r, err)
		return
	}
	query := struct {
		FacilityID string    `json:"facility_id"`
		From       time.Time `json:"from"`
		To         time.Time `json:"to"`
	}{req.FacilityID, from, to}
	seq, err := s.audit(r.Context(), p, auditActionFacil, req.TraceCase, query)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	vs, err := s.VisitService.FindVisitsAtFacility(r.Context(), req.FacilityID, from, to)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &TraceResponse{Visits: nonNil(vs), AuditSeq: seq})
}

func (s *Server) handleTraceCoVisits(w http.ResponseWriter, r *http.Request) {
	p, err := s.require(r, roleInvestigator)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	var req TraceCoVisitsRequest
	if err := decodeJSON(w, r, MaxBodySize, &req); err != nil {
		s.Error(w, r, err)
		return
	}
	if err := checkCase(req.TraceCase); err != nil {
		s.Error(w, r, err)
		return
	}
	before, after := DefaultCoBefore, DefaultCoAfter
	if req.Before != nil {
		before = time.Duration(*req.Before)
	}
	if req.After != nil {
		after = time.Duration(*req.After)
	}
	if before < 0 || before > MaxCoVisitWindow {
		s.Error(w, r, kipass.FieldErrorf("before", "must be between 0 and 24h"))
		return
	}
	if after < 0 || after > MaxCoVisitWindow {
		s.Error(w, r, kipass.FieldErrorf("after", "must be between 0 and 24h"))
		return
	}
	if len(req.Visits) == 0 || len(req.Visits) > MaxCaseVisits {
		s.Error(w, r, kipass.FieldErrorf("visits", "must hold 1 to %d case visits", MaxCaseVisits))
		return
	}
	now := s.Now()
	type window struct {
		FacilityID string    `json:"facility_id"`
		From       time.Time `json:"from"`
		To         time.Time `json:"to"`
	}
	windows := make([]window, len(req.Visits))
	for i, cv := range req.Visits {
		field := fmt.Sprintf("visits[%d].", i)
		if cv.FacilityID == "" || len(cv.FacilityID) > 64 {
			s.Error(w, r, kipass.FieldErrorf(field+"facility_id", "must be 1 to 64 bytes"))
			return
		}
		if cv.At.IsZero() {
			s.Error(w, r, kipass.FieldErrorf(field+"at", "missing"))
			return
		}
		if cv.At.Before(now.Add(-kipass.Retention - retentionSlack)) {
			s.Error(w, r, kipass.FieldErrorf(field+"at", "older than 28 days: visits are destroyed after 28 days"))
			return
		}
		from, to, err := s.window(cv.At.Add(-before), cv.At.Add(after), now, field)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		windows[i] = window{cv.FacilityID, from, to}
	}
	query := struct {
		Windows []window `json:"windows"`
		Before  string   `json:"before"`
		After   string   `json:"after"`
	}{windows, before.String(), after.String()}
	seq, err := s.audit(r.Context(), p, auditActionCoVist, req.TraceCase, query)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	seen := map[string]bool{}
	var out []*kipass.Visit
	for _, win := range windows {
		vs, err := s.VisitService.FindVisitsAtFacility(r.Context(), win.FacilityID, win.From, win.To)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		for _, v := range vs {
			if !seen[v.ID] {
				seen[v.ID] = true
				out = append(out, v)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	writeJSON(w, http.StatusOK, &TraceResponse{Visits: nonNil(out), AuditSeq: seq})
}

func nonNil(vs []*kipass.Visit) []*kipass.Visit {
	if vs == nil {
		return []*kipass.Visit{}
	}
	return vs
}

// queryTime parses an optional RFC 3339 query parameter.
func queryTime(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return def, kipass.FieldErrorf(name, "a time must be RFC 3339, e.g. 2022-01-06T12:00:00+09:00")
	}
	return t, nil
}

func (s *Server) handleListAudit(w http.ResponseWriter, r *http.Request) {
	if _, err := s.require(r, roleAuditor); err != nil {
		s.Error(w, r, err)
		return
	}
	from, err := queryTime(r, "from", time.Unix(0, 0))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	to, err := queryTime(r, "to", s.Now().Add(time.Minute))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	es, err := s.AuditService.ListAudit(r.Context(), from, to)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if es == nil {
		es = []*kipass.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, &AuditList{Entries: es})
}

func (s *Server) handleVerifyAudit(w http.ResponseWriter, r *http.Request) {
	if _, err := s.require(r, roleAuditor); err != nil {
		s.Error(w, r, err)
		return
	}
	err := s.AuditService.VerifyAudit(r.Context())
	var chainErr *kipass.AuditChainError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, &AuditVerification{OK: true})
	case errors.As(err, &chainErr):
		s.Logger.Error("audit chain broken", "seq", chainErr.Seq, "reason", chainErr.Reason)
		writeJSON(w, http.StatusOK, &AuditVerification{OK: false, BrokenAt: chainErr.Seq, Message: chainErr.Error()})
	default:
		s.Error(w, r, err)
	}
}

func (s *Server) handleSharedTokens(w http.ResponseWriter, r *http.Request) {
	if _, err := s.require(r, roleAdmin); err != nil {
		s.Error(w, r, err)
		return
	}
	since, err := queryTime(r, "since", s.Now().Add(-kipass.Retention))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ts, err := s.VisitService.FindSharedTokens(r.Context(), since)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if ts == nil {
		ts = []kipass.SharedToken{}
	}
	writeJSON(w, http.StatusOK, &SharedTokenList{SharedTokens: ts})
}
