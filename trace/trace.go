// Package trace is the investigator's workflow (DESIGN.md flow 7, "Trace"): from a
// confirmed case to the list of people to call. It asks the case's issuer for the
// case's day tags, central for the case's visits and the visits around them, each
// issuer to resolve the sealed subject references and safe numbers of those visits,
// and opens the sealed phone numbers of phone check-ins and manual entries locally
// with the authority's private sealing key, which never leaves the caller's machine.
// No server ever sees both halves; every query names a case id and a reason and is
// written to the audit log of the service that answers it.
package trace

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/seal"
)

// DefaultDays is how many KST days back a trace looks: the whole retention period.
const DefaultDays = 28

// Config is what a trace needs of the outside world.
type Config struct {
	Central *kiphttp.Client // central, with an investigator token
	// Issuer is the case's issuer (day tags) and the resolver of any issuer key id
	// that IssuersByKey does not name. Its client carries an investigator token.
	Issuer *kiphttp.Client
	// IssuersByKey maps an issuer key id (a visit's issuer_key_id) to the client of the
	// issuer that holds that key; nil or missing ids go to Issuer.
	IssuersByKey map[string]*kiphttp.Client
	SealKey      []byte // the authority's private sealing key (seal.KeySize bytes)
	// Progress, if set, is told each step as it starts, in words for a person.
	Progress func(step string)
}

// Case is one investigation: a confirmed case named by phone number or registry person
// id at Config.Issuer, or a venue-based case named by a facility and a time window.
type Case struct {
	ID     string // the case id every query names
	Reason string // why; goes to every audit log

	Phone    string // the case's phone number, or
	PersonID string // the case's registry person id, or
	Facility string // a facility id, with From and To
	From, To time.Time

	Days   int           // KST days back, today included (default DefaultDays)
	Before time.Duration // window before each case visit (default 1 h)
	After  time.Duration // window after each case visit (default 2 h)
	Now    time.Time     // the investigation's clock (default time.Now)
}

// Exposure is one visit of a contact that overlaps a case visit.
type Exposure struct {
	VisitID    string        `json:"visit_id"`
	FacilityID string        `json:"facility_id"`
	At         time.Time     `json:"at"`
	Method     string        `json:"method"`
	CaseAt     time.Time     `json:"case_at"` // the case visit it overlaps (the nearest)
	Offset     time.Duration `json:"offset"`  // At - CaseAt
}

// Contact is one person to call, with every overlapping visit. People are told apart
// by phone number; Name is empty when only sealed phone numbers named them.
type Contact struct {
	Name      string     `json:"name,omitempty"`
	Phone     string     `json:"phone"`
	Exposures []Exposure `json:"exposures"`
}

// Result is the outcome of a trace.
type Result struct {
	CaseID     string          `json:"case_id"`
	DayTags    int             `json:"day_tags"`    // day tags the issuer gave
	CaseVisits []*kipass.Visit `json:"case_visits"` // the case's visits (none for a venue case)
	CoVisits   int             `json:"co_visits"`   // visits central returned around them
	Contacts   []Contact       `json:"contacts"`    // sorted by first exposure, then phone
	Unresolved int             `json:"unresolved"`  // co-visits no issuer or key could name
}

// Errors of a trace that are the caller's to fix.
var (
	ErrNoSubject = errors.New("trace: the issuer knows no visitor by that phone number or person id")
	ErrNoCase    = errors.New("trace: give a phone number, a person id, or a facility with from and to")
)

func (c *Case) defaults() error {
	n := 0
	for _, s := range []string{c.Phone, c.PersonID, c.Facility} {
		if s != "" {
			n++
		}
	}
	if n != 1 || (c.Facility != "" && (c.From.IsZero() || c.To.IsZero())) {
		return ErrNoCase
	}
	if c.Days == 0 {
		c.Days = DefaultDays
	}
	if c.Before == 0 {
		c.Before = kiphttp.DefaultCoBefore
	}
	if c.After == 0 {
		c.After = kiphttp.DefaultCoAfter
	}
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	return nil
}

// Run runs the whole investigation of c and returns its contact list.
func Run(ctx context.Context, cfg Config, c Case) (*Result, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	if cfg.Central == nil || cfg.Issuer == nil {
		return nil, errors.New("trace: central and issuer clients are required")
	}
	if len(cfg.SealKey) != seal.KeySize {
		return nil, errors.New("trace: the sealing private key must be 32 bytes")
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string) {}
	}
	tc := kiphttp.TraceCase{CaseID: c.ID, Reason: c.Reason}
	res := &Result{CaseID: c.ID, CaseVisits: []*kipass.Visit{}, Contacts: []Contact{}}
	var coVisits []*kipass.Visit
	own := map[string]bool{} // the case's own day tags
	if c.Facility == "" {
		tags, err := dayTags(ctx, cfg.Issuer, c, progress)
		if err != nil {
			return nil, err
		}
		res.DayTags = len(tags)
		for _, t := range tags {
			own[string(t)] = true
		}
		progress(fmt.Sprintf("central: visits of %d day tags", len(tags)))
		from := kipass.DateOf(c.Now).AddDays(-(c.Days - 1)).Start()
		for i := 0; i < len(tags); i += kiphttp.MaxDayTags {
			var out kiphttp.TraceResponse
			req := kiphttp.TraceByDayTagsRequest{TraceCase: tc, DayTags: tags[i:min(i+kiphttp.MaxDayTags, len(tags))], From: from}
			if err := cfg.Central.Do(ctx, "POST", "/v1/trace/visits-by-day-tags", req, &out); err != nil {
				return nil, fmt.Errorf("central: case visits: %w", err)
			}
			res.CaseVisits = append(res.CaseVisits, out.Visits...)
		}
		sort.SliceStable(res.CaseVisits, func(i, j int) bool { return res.CaseVisits[i].At.Before(res.CaseVisits[j].At) })
		progress(fmt.Sprintf("central: visits around %d case visits", len(res.CaseVisits)))
		before, after := kiphttp.Duration(c.Before), kiphttp.Duration(c.After)
		seen := map[string]bool{}
		for i := 0; i < len(res.CaseVisits); i += kiphttp.MaxCaseVisits {
			req := kiphttp.TraceCoVisitsRequest{TraceCase: tc, Before: &before, After: &after}
			for _, v := range res.CaseVisits[i:min(i+kiphttp.MaxCaseVisits, len(res.CaseVisits))] {
				req.Visits = append(req.Visits, kiphttp.CaseVisit{FacilityID: v.FacilityID, At: v.At})
			}
			var out kiphttp.TraceResponse
			if err := cfg.Central.Do(ctx, "POST", "/v1/trace/co-visits", req, &out); err != nil {
				return nil, fmt.Errorf("central: co-visits: %w", err)
			}
			for _, v := range out.Visits {
				if !seen[v.ID] {
					seen[v.ID] = true
					coVisits = append(coVisits, v)
				}
			}
		}
	} else {
		progress("central: visits at the facility")
		var out kiphttp.TraceResponse
		req := kiphttp.TraceFacilityRequest{TraceCase: tc, FacilityID: c.Facility, From: c.From, To: c.To}
		if err := cfg.Central.Do(ctx, "POST", "/v1/trace/facility-visits", req, &out); err != nil {
			return nil, fmt.Errorf("central: facility visits: %w", err)
		}
		coVisits = out.Visits
	}
	res.CoVisits = len(coVisits)

	caseIDs := map[string]bool{}
	for _, v := range res.CaseVisits {
		caseIDs[v.ID] = true
	}
	// The case's own visits are resolved too: their phone number names the case, so
	// that its phone check-ins and manual entries are not listed as contacts.
	people, err := resolve(ctx, cfg, tc, append(append([]*kipass.Visit{}, res.CaseVisits...), coVisits...), progress)
	if err != nil {
		return nil, err
	}
	casePhones := map[string]bool{}
	if p, ok := issuer.NormalizePhone(c.Phone); ok {
		casePhones[p] = true
	}
	for _, v := range res.CaseVisits {
		if p := people[v.ID]; p.Phone != "" {
			casePhones[p.Phone] = true
		}
	}

	progress("building the contact list")
	byPhone := map[string]*Contact{}
	for _, v := range coVisits {
		if caseIDs[v.ID] || own[string(v.DTag)] {
			continue
		}
		p, ok := people[v.ID]
		if !ok || p.Phone == "" {
			res.Unresolved++
			continue
		}
		if casePhones[p.Phone] {
			continue
		}
		ct := byPhone[p.Phone]
		if ct == nil {
			ct = &Contact{Phone: p.Phone}
			byPhone[p.Phone] = ct
		}
		if ct.Name == "" {
			ct.Name = p.Name
		}
		e := Exposure{VisitID: v.ID, FacilityID: v.FacilityID, At: v.At, Method: v.Method}
		if c.Facility != "" {
			e.CaseAt = c.From
		} else {
			e.CaseAt = nearest(res.CaseVisits, v, c.Before, c.After)
		}
		e.Offset = e.At.Sub(e.CaseAt)
		ct.Exposures = append(ct.Exposures, e)
	}
	for _, ct := range byPhone {
		sort.Slice(ct.Exposures, func(i, j int) bool {
			a, b := ct.Exposures[i], ct.Exposures[j]
			if !a.At.Equal(b.At) {
				return a.At.Before(b.At)
			}
			return a.VisitID < b.VisitID
		})
		res.Contacts = append(res.Contacts, *ct)
	}
	sort.Slice(res.Contacts, func(i, j int) bool {
		a, b := res.Contacts[i].Exposures[0].At, res.Contacts[j].Exposures[0].At
		if !a.Equal(b) {
			return a.Before(b)
		}
		return res.Contacts[i].Phone < res.Contacts[j].Phone
	})
	progress(fmt.Sprintf("done: %d contacts", len(res.Contacts)))
	return res, nil
}

// dayTags asks the case's issuer for the case's day tags over the window.
func dayTags(ctx context.Context, iss *kiphttp.Client, c Case, progress func(string)) ([][]byte, error) {
	progress(fmt.Sprintf("issuer: day tags of the last %d days", c.Days))
	today := kipass.DateOf(c.Now)
	from := today.AddDays(-(c.Days - 1))
	req := issuer.DayTagsRequest{
		TraceCase: issuer.TraceCase{CaseID: c.ID, Reason: c.Reason},
		Subject:   &issuer.TraceSubject{Phone: c.Phone, PersonID: c.PersonID},
		From:      &from, To: &today,
	}
	var out issuer.DayTagsResponse
	if err := iss.Do(ctx, "POST", "/v1/trace/day-tags", req, &out); kipass.ErrorCode(err) == kipass.ENOTFOUND {
		return nil, ErrNoSubject
	} else if err != nil {
		return nil, fmt.Errorf("issuer: day tags: %w", err)
	}
	if out.Subjects == 0 {
		return nil, ErrNoSubject
	}
	tags := make([][]byte, 0, len(out.DayTags))
	for _, t := range out.DayTags {
		tags = append(tags, t.DayTag)
	}
	return tags, nil
}

// nearest returns the time of the case visit at v's facility nearest to v whose window
// holds v.
func nearest(cases []*kipass.Visit, v *kipass.Visit, before, after time.Duration) time.Time {
	var best time.Time
	var bestD time.Duration = -1
	for _, cv := range cases {
		if cv.FacilityID != v.FacilityID || v.At.Before(cv.At.Add(-before)) || !v.At.Before(cv.At.Add(after)) {
			continue
		}
		d := v.At.Sub(cv.At)
		if d < 0 {
			d = -d
		}
		if bestD < 0 || d < bestD {
			best, bestD = cv.At, d
		}
	}
	return best
}

// person is who a visit names once resolved or opened.
type person struct{ Name, Phone string }

// normalize returns a phone number as 010-1234-5678 when it is a Korean mobile number,
// else as given, so that one person's numbers from every source compare equal.
func normalize(phone string) string {
	if p, ok := issuer.NormalizePhone(phone); ok {
		return p
	}
	return strings.TrimSpace(phone)
}
