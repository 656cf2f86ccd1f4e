package http

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/kipass/kipass"
	"github.com/kipass/kipass/pass"
)

// Limits of a visit record at ingest.
const (
	MaxFutureSkew = 10 * time.Minute // a visit may lie this far ahead of the server clock
	TokenIDSize   = pass.TokenIDSize // qr: the pass's random token id
	DayTagSize    = pass.DTagSize    // qr: the day tag
	SRefSize      = pass.SRefSize    // qr: the sealed subject reference
	MaxContact    = 256              // manual, phone: the sealed phone number
)

func (s *Server) registerVisitRoutes() {
	s.handle("POST /v1/visits", s.handleUploadVisits)
}

// UploadRequest is the body of POST /v1/visits.
type UploadRequest struct {
	Visits []*kipass.Visit `json:"visits"`
}

// UploadResponse is the answer of POST /v1/visits: one status per visit, in order.
type UploadResponse struct {
	Results []kipass.VisitStatus `json:"results"`
}

func (s *Server) handleUploadVisits(w http.ResponseWriter, r *http.Request) {
	p, err := s.require(r, roleDevice)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if ok, wait := s.limiter.allow(p.Device.ID, time.Now()); !ok {
		s.shedRequest(w, r, "device_rate", wait, "too many uploads from this device: retry later")
		return
	}
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		s.shedRequest(w, r, "inflight", time.Second, "central is busy: retry later, your visits are safe on the device")
		return
	}

	r.Body = http.MaxBytesReader(w, r.Body, MaxVisitBodySize)
	visits, err := decodeVisitBatch(r.Body)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	results, err := s.ingest(r.Context(), p.Device, visits)
	if kipass.ErrorCode(err) == kipass.ETOOMANY {
		s.shedRequest(w, r, "store_queue", time.Second, "central is busy: retry later, your visits are safe on the device")
		return
	} else if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &UploadResponse{Results: results})
}

// shedRequest answers 429 at once with a Retry-After of at least a second.
func (s *Server) shedRequest(w http.ResponseWriter, r *http.Request, cause string, wait time.Duration, msg string) {
	s.metrics.shed.WithLabelValues(cause).Inc()
	s.shed.add(s.Now())
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	s.Error(w, r, kipass.Errorf(kipass.ETOOMANY, "%s", msg))
}

// ingest validates the visits of one device's batch, stores the valid ones and
// answers for each, in order.
func (s *Server) ingest(ctx context.Context, d *kipass.Device, visits []*kipass.Visit) ([]kipass.VisitStatus, error) {
	now := s.Now()
	results := make([]kipass.VisitStatus, len(visits))
	valid := make([]*kipass.Visit, 0, len(visits))
	index := make([]int, 0, len(visits)) // index[i]: position in the batch of valid[i]
	var first map[string]int             // visit id -> batch position of its first valid occurrence
	var repeats []int                    // batch positions repeating an earlier id
	for i, v := range visits {
		results[i].ID = v.ID
		if reason := checkVisit(v, d, now); reason != "" {
			results[i].Status, results[i].Reason = kipass.VisitRejected, reason
			continue
		}
		v.DeviceID = d.ID
		if len(visits) > 1 {
			if first == nil {
				first = make(map[string]int, len(visits))
			}
			if _, dup := first[v.ID]; dup {
				repeats = append(repeats, i)
				continue
			}
			first[v.ID] = i
		}
		valid = append(valid, v)
		index = append(index, i)
	}
	s.metrics.batchSize.Observe(float64(len(visits)))
	if len(valid) > 0 {
		start := time.Now()
		statuses, err := s.VisitService.StoreVisits(ctx, valid)
		if err != nil {
			return nil, fmt.Errorf("store visits: %w", err)
		}
		lat := time.Since(start)
		s.lastStoreLatency.Store(int64(lat))
		s.metrics.commitLatency.Observe(lat.Seconds())
		if len(statuses) != len(valid) {
			return nil, fmt.Errorf("store visits: %d answers for %d visits", len(statuses), len(valid))
		}
		for j, st := range statuses {
			st.ID = valid[j].ID
			results[index[j]] = st
		}
	}
	for _, i := range repeats {
		f := first[visits[i].ID]
		switch {
		case results[f].Status == kipass.VisitRejected:
			results[i] = results[f]
		case visits[f].SameContent(visits[i]):
			results[i] = kipass.VisitStatus{ID: visits[i].ID, Status: kipass.VisitDuplicate}
		default:
			results[i] = kipass.VisitStatus{ID: visits[i].ID, Status: kipass.VisitRejected, Reason: kipass.ReasonVisitConflict}
		}
	}
	var stored, dups, rejected int
	for _, st := range results {
		switch st.Status {
		case kipass.VisitStored:
			stored++
		case kipass.VisitDuplicate:
			dups++
		default:
			rejected++
		}
	}
	s.metrics.visitsStored.Add(float64(stored))
	s.metrics.visitsDuplicate.Add(float64(dups))
	s.metrics.visitsRejected.Add(float64(rejected))
	return results, nil
}

// checkVisit returns why a visit from device d is refused, or "" when it is valid.
func checkVisit(v *kipass.Visit, d *kipass.Device, now time.Time) string {
	if !validID(v.ID) {
		return "malformed: id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -"
	}
	if v.DeviceID != "" && v.DeviceID != d.ID {
		return "other device: device_id is not this device"
	}
	if v.FacilityID != d.FacilityID {
		return "other facility: this device is enrolled at another facility"
	}
	if !v.ReceivedAt.IsZero() {
		return "malformed: received_at is set by central, not by the scanner"
	}
	if v.At.IsZero() {
		return "malformed: at is missing"
	}
	if v.At.After(now.Add(MaxFutureSkew)) {
		return "future: more than 10 minutes ahead of the server clock"
	}
	if v.At.Before(now.Add(-kipass.Retention)) {
		return "too old: older than 28 days"
	}
	if v.Outcome != "" && v.Outcome != kipass.PASS && v.Outcome != kipass.FAIL && v.Outcome != kipass.NotRequired {
		return "malformed: decision must be PASS, FAIL or NOT_REQUIRED"
	}
	if len(v.Basis) > 64 {
		return "malformed: basis is longer than 64 bytes"
	}
	noPass := len(v.TokenID) == 0 && len(v.SRef) == 0 && len(v.DTag) == 0 && v.IssuerKeyID == ""
	switch v.Method {
	case kipass.MethodQR:
		switch {
		case len(v.TokenID) != TokenIDSize:
			return "malformed: token_id must be 12 bytes"
		case len(v.DTag) != DayTagSize:
			return "malformed: dtag must be 16 bytes"
		case len(v.SRef) != SRefSize:
			return "malformed: sref must be 44 bytes"
		case v.IssuerKeyID == "" || len(v.IssuerKeyID) > 64:
			return "malformed: issuer_key_id must be 1 to 64 bytes"
		case v.Outcome == "":
			return "malformed: decision is missing"
		case len(v.Contact) > 0 || v.SafeNumber != "":
			return "malformed: a qr visit carries no contact or safe number"
		}
	case kipass.MethodSafeNumber:
		switch {
		case !validSafeNumber(v.SafeNumber):
			return "malformed: safe_number must be 4 digits and 2 Hangul syllables"
		case len(v.Contact) > 0 || !noPass:
			return "malformed: a safe_number visit carries only the safe number"
		}
	case kipass.MethodManual:
		switch {
		case len(v.Contact) <= 48 || len(v.Contact) > MaxContact:
			return "malformed: contact must be a sealed phone number (49 to 256 bytes)"
		case v.SafeNumber != "" || !noPass:
			return "malformed: a manual visit carries only the sealed contact"
		}
	case kipass.MethodPhone:
		return "malformed: phone visits come only from the telco gateway"
	default:
		return "malformed: method must be qr, safe_number or manual"
	}
	return ""
}

// validID reports whether id is 1 to 64 characters of [A-Za-z0-9_-].
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validSafeNumber reports whether s is a personal safe number (개인안심번호) as a
// scanner sends it: already normalized, without spaces or hyphens.
func validSafeNumber(s string) bool {
	n, ok := kipass.NormalizeSafeNumber(s)
	return ok && n == s
}

// decoderPool keeps batch decoders and their buffers between requests.
var decoderPool = sync.Pool{New: func() any { return jsontext.NewDecoder(eofReader{}) }}

// eofReader is what an idle pooled decoder reads from.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// decodeVisitBatch reads {"visits":[...]} one visit at a time, so that a body of many
// tiny items cannot expand into more than MaxBatchSize visits in memory. Errors name
// the field, e.g. visits[3].at. It never panics, whatever the input.
func decodeVisitBatch(r io.Reader) ([]*kipass.Visit, error) {
	dec := decoderPool.Get().(*jsontext.Decoder)
	dec.Reset(r)
	defer func() {
		dec.Reset(eofReader{})
		decoderPool.Put(dec)
	}()
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, emptyOr(err)
	}
	if tok.Kind() != '{' {
		return nil, kipass.FieldErrorf("body", "must be a JSON object")
	}
	var visits []*kipass.Visit
	seen := false
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return nil, jsonError(err)
		}
		if name.String() != "visits" {
			return nil, kipass.FieldErrorf(clip(name.String()), "unknown field")
		}
		seen = true
		if dec.PeekKind() != '[' {
			if _, err := dec.ReadValue(); err != nil {
				return nil, jsonError(err)
			}
			return nil, kipass.FieldErrorf("visits", "must be an array")
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, jsonError(err)
		}
		visits = make([]*kipass.Visit, 0, 128)
		for i := 0; dec.PeekKind() != ']'; i++ {
			if i == MaxBatchSize {
				return nil, kipass.FieldErrorf("visits", "at most %d visits in one batch", MaxBatchSize)
			}
			if k := dec.PeekKind(); k != '{' {
				if k == 0 { // a syntax error or the end of input: let ReadToken say which
					_, err := dec.ReadToken()
					return nil, jsonError(err)
				}
				return nil, kipass.FieldErrorf(fmt.Sprintf("visits[%d]", i), "must be an object")
			}
			v := new(kipass.Visit)
			if err := jsonv2.UnmarshalDecode(dec, v, strictJSON); err != nil {
				return nil, jsonError(err)
			}
			visits = append(visits, v)
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, jsonError(err)
		}
	}
	if _, err := dec.ReadToken(); err != nil { // the closing brace
		return nil, jsonError(err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		if err != nil {
			return nil, jsonError(err)
		}
		return nil, kipass.Errorf(kipass.EINVALID, "the body must hold exactly one JSON object")
	}
	if !seen {
		return nil, kipass.FieldErrorf("visits", "missing")
	}
	return visits, nil
}

func emptyOr(err error) error {
	if err == io.EOF {
		return kipass.Errorf(kipass.EINVALID, "the body is empty: want a JSON object")
	}
	return jsonError(err)
}
