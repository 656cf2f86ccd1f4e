package tracetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/scanner"
	"github.com/kipass/kipass/seal"
	"github.com/kipass/kipass/trace"
)

// Options shape a synthetic population.
type Options struct {
	Visitors     int
	Facilities   int
	Days         int // days of visits, ending on the clock's day
	VisitsPerDay int
	Seed         uint64
	// CaseVisitsPerDay are extra QR visits of People[0], the case, every day.
	CaseVisitsPerDay int
}

// Populate enrols the visitors, registers the facilities with one scanner each, and
// records the visits through the real APIs, moving the clock through the days; the
// clock ends where it started. People[0] is the case: it visits by QR code every day,
// and also calls a 안심콜 number now and then.
func (w *World) Populate(o Options) {
	tb := w.TB
	tb.Helper()
	ctx := context.Background()
	now := w.Clock.Now()
	rng := rand.New(rand.NewPCG(o.Seed, 0x7ace))
	for i := range o.Visitors {
		p := &Person{PersonID: fmt.Sprintf("T-%06d", i), Name: fmt.Sprintf("방문자%04d", i), Phone: fmt.Sprintf("010-%04d-%04d", 2000+i/10000, i%10000)}
		tok, err := w.Issuer.EnrolDirect(ctx, issuer.Enrolment{Name: p.Name, Phone: p.Phone, BirthDate: *w.holder.BirthDate, PersonID: p.PersonID})
		if err != nil {
			tb.Fatalf("enrol %d: %v", i, err)
		}
		p.Wallet = tok
		w.People = append(w.People, p)
	}
	admin := w.CentralClient(AdminToken)
	categories := []string{"restaurant", "gym", "karaoke", "cinema", "pc_room", "wedding_hall"}
	for i := range o.Facilities {
		phone, ok := kipass.NormalizePhone(fmt.Sprintf("080-%03d-%04d", 100+i/10000, i%10000))
		if !ok {
			tb.Fatalf("facility phone %d", i)
		}
		f := &kipass.Facility{Name: fmt.Sprintf("시설 %03d", i), BusinessNumber: strconv.Itoa(3000000000 + i),
			Category: categories[i%len(categories)], Region: "seoul", Address: "서울특별시", PhoneNumber: phone}
		if err := w.CentralDB.CreateFacility(ctx, f); err != nil {
			tb.Fatal(err)
		}
		code, err := admin.CreateEnrollmentCode(ctx, f.ID)
		if err != nil {
			tb.Fatal(err)
		}
		d, err := w.CentralClient("").Enroll(ctx, code.Code, "scanner")
		if err != nil {
			tb.Fatal(err)
		}
		w.devices[f.ID] = d.Token
		w.Facilities = append(w.Facilities, f)
	}

	// The ground truth: visits at random times between 09:00 and 22:00 KST.
	today := now.In(kipass.KST)
	day0 := time.Date(today.Year(), today.Month(), today.Day()-(o.Days-1), 0, 0, 0, 0, kipass.KST)
	latest := now.Add(-10 * time.Minute)
	methods := []string{kipass.MethodQR, kipass.MethodQR, kipass.MethodQR, kipass.MethodQR, kipass.MethodQR, kipass.MethodQR,
		kipass.MethodQR, kipass.MethodPhone, kipass.MethodSafeNumber, kipass.MethodManual}
	add := func(p *Person, at time.Time, method string) {
		if at.After(latest) {
			return
		}
		f := w.Facilities[rng.IntN(len(w.Facilities))]
		w.Visits = append(w.Visits, &Visit{Person: p, FacilityID: f.ID, At: at, Method: method})
	}
	for d := range o.Days {
		start := day0.AddDate(0, 0, d).Add(9 * time.Hour)
		for range o.VisitsPerDay {
			add(w.People[1+rng.IntN(len(w.People)-1)], start.Add(time.Duration(rng.IntN(13*3600))*time.Second), methods[rng.IntN(len(methods))])
		}
		for range o.CaseVisitsPerDay {
			add(w.People[0], start.Add(time.Duration(rng.IntN(13*3600))*time.Second), kipass.MethodQR)
		}
		if d%5 == 0 {
			add(w.People[0], start.Add(time.Duration(rng.IntN(13*3600))*time.Second), kipass.MethodPhone)
		}
	}
	sort.SliceStable(w.Visits, func(i, j int) bool { return w.Visits[i].At.Before(w.Visits[j].At) })
	w.record(o)
	w.Clock.Set(now)
	w.upload()
}

// record makes the visit records of the ground truth, a day at a time: the clock is
// set to the day's first visit, the day's passes are minted at once (a few in
// parallel) and decided by a scanner at their issue time; each record carries the
// visit's own time. Phone calls are forwarded by the gateway afterwards.
func (w *World) record(o Options) {
	tb := w.TB
	ctx := context.Background()
	byFacility := map[string]*kipass.Facility{}
	for _, f := range w.Facilities {
		byFacility[f.ID] = f
	}
	w.pending = map[string][]*kipass.Visit{}
	type job struct {
		i  int
		v  *Visit
		pr issuer.PassResponse
	}
	var calls []job
	for lo := 0; lo < len(w.Visits); {
		day := kipass.DateOf(w.Visits[lo].At)
		hi := lo
		for hi < len(w.Visits) && kipass.DateOf(w.Visits[hi].At) == day {
			hi++
		}
		w.Clock.Set(w.Visits[lo].At)
		var qr []*job
		for i := lo; i < hi; i++ {
			if w.Visits[i].Method == kipass.MethodQR {
				qr = append(qr, &job{i: i, v: w.Visits[i]})
			}
		}
		parallel(tb, len(qr), func(k int) error {
			return w.IssuerClient(qr[k].v.Person.Wallet).Do(ctx, "GET", "/v1/pass?qr=none", nil, &qr[k].pr)
		})
		sc, err := scanner.New(w.Bundle)
		if err != nil {
			tb.Fatal(err)
		}
		passes := map[int]*job{}
		for _, j := range qr {
			passes[j.i] = j
		}
		for i := lo; i < hi; i++ {
			v := w.Visits[i]
			f := byFacility[v.FacilityID]
			id := fmt.Sprintf("v%07d", i)
			var rec *kipass.Visit
			switch v.Method {
			case kipass.MethodQR:
				pr := passes[i].pr
				r := sc.Decide(pr.Pass, kipass.Place{Category: f.Category, Region: f.Region}, 1, pr.IssuedAt)
				if r.Outcome == scanner.Refused {
					tb.Fatalf("scan refused: %s", r.Detail)
				}
				rec = r.Visit(id, f.ID, "", v.At)
			case kipass.MethodPhone:
				calls = append(calls, job{i: i, v: v})
				continue
			case kipass.MethodSafeNumber:
				if v.Person.SafeNumber == "" {
					var sn issuer.SafeNumberResponse
					if err := w.IssuerClient(v.Person.Wallet).Do(ctx, "GET", "/v1/safe-number", nil, &sn); err != nil {
						tb.Fatalf("safe number: %v", err)
					}
					v.Person.SafeNumber = sn.SafeNumber
				}
				rec = &kipass.Visit{ID: id, FacilityID: f.ID, At: v.At, Method: kipass.MethodSafeNumber, SafeNumber: v.Person.SafeNumber}
			case kipass.MethodManual:
				sealed, err := seal.Seal(w.Bundle.SealingKey, seal.InfoContact, []byte(v.Person.Phone))
				if err != nil {
					tb.Fatal(err)
				}
				rec = &kipass.Visit{ID: id, FacilityID: f.ID, At: v.At, Method: kipass.MethodManual, Contact: sealed}
			}
			w.pending[f.ID] = append(w.pending[f.ID], rec)
		}
		lo = hi
	}
	w.Clock.Set(w.Visits[len(w.Visits)-1].At.Add(time.Minute))
	parallel(tb, len(calls), func(k int) error {
		return w.phoneCheckin(fmt.Sprintf("v%07d", calls[k].i), byFacility[calls[k].v.FacilityID], calls[k].v)
	})
}

// parallel runs f(0..n-1) on a few goroutines and fails tb on the first error.
func parallel(tb testing.TB, n int, f func(int) error) {
	tb.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := 0
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				k := next
				next++
				stop := first != nil
				mu.Unlock()
				if k >= n || stop {
					return
				}
				if err := f(k); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		tb.Fatal(first)
	}
}

// phoneCheckin posts one signed call of the telco gateway.
func (w *World) phoneCheckin(id string, f *kipass.Facility, v *Visit) error {
	body, _ := json.Marshal(kiphttp.PhoneCheckin{Dialled: f.PhoneNumber, Caller: v.Person.Phone, At: v.At, ID: id})
	ts := w.Clock.Now().Unix()
	req, _ := http.NewRequest("POST", w.CentralURL+"/v1/phone-checkins", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(kiphttp.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(kiphttp.HeaderSignature, kiphttp.SignPhoneCheckin(PhoneSecret, ts, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("phone check-in: HTTP %d", resp.StatusCode)
	}
	return nil
}

// upload sends each facility's visits through its scanner's credential, in batches of
// at most 1000.
func (w *World) upload() {
	tb := w.TB
	ctx := context.Background()
	for _, f := range w.Facilities {
		vs := w.pending[f.ID]
		cl := w.CentralClient(w.devices[f.ID])
		for i := 0; i < len(vs); i += 1000 {
			batch := vs[i:min(i+1000, len(vs))]
			st, err := cl.UploadVisits(ctx, batch)
			if err != nil {
				tb.Fatalf("upload: %v", err)
			}
			for _, s := range st {
				if s.Status != kipass.VisitStored {
					tb.Fatalf("upload %s: %s %s", s.ID, s.Status, s.Reason)
				}
			}
		}
	}
	w.pending = nil
}

// Expected returns the contacts of the case person computed from the ground truth: the
// people other than the case with a visit, by any method, at the facility of one of the
// case's QR visits, from before ahead of it to after after it. Names are known when
// one of those visits was by pass or safe number. Exposures carry only facility, time
// and method.
func (w *World) Expected(casePerson *Person, before, after time.Duration) []trace.Contact {
	var cases []*Visit
	for _, v := range w.Visits {
		if v.Person == casePerson && v.Method == kipass.MethodQR {
			cases = append(cases, v)
		}
	}
	byPhone := map[string]*trace.Contact{}
	for _, v := range w.Visits {
		if v.Person == casePerson {
			continue
		}
		hit := false
		for _, c := range cases {
			if c.FacilityID == v.FacilityID && !v.At.Before(c.At.Add(-before)) && v.At.Before(c.At.Add(after)) {
				hit = true
				break
			}
		}
		if !hit {
			continue
		}
		ct := byPhone[v.Person.Phone]
		if ct == nil {
			ct = &trace.Contact{Phone: v.Person.Phone}
			byPhone[v.Person.Phone] = ct
		}
		if v.Method == kipass.MethodQR || v.Method == kipass.MethodSafeNumber {
			ct.Name = v.Person.Name
		}
		ct.Exposures = append(ct.Exposures, trace.Exposure{FacilityID: v.FacilityID, At: v.At, Method: v.Method})
	}
	return Canonical(mapValues(byPhone))
}

func mapValues(m map[string]*trace.Contact) []trace.Contact {
	out := make([]trace.Contact, 0, len(m))
	for _, c := range m {
		out = append(out, *c)
	}
	return out
}

// Canonical returns contacts in a form to compare: sorted by phone, each exposure
// reduced to facility, time (UTC, to the microsecond) and method, sorted.
func Canonical(cs []trace.Contact) []trace.Contact {
	out := make([]trace.Contact, len(cs))
	for i, c := range cs {
		out[i] = trace.Contact{Name: c.Name, Phone: c.Phone}
		for _, e := range c.Exposures {
			out[i].Exposures = append(out[i].Exposures, trace.Exposure{FacilityID: e.FacilityID, At: e.At.UTC().Truncate(time.Microsecond), Method: e.Method})
		}
		sort.Slice(out[i].Exposures, func(a, b int) bool {
			x, y := out[i].Exposures[a], out[i].Exposures[b]
			if !x.At.Equal(y.At) {
				return x.At.Before(y.At)
			}
			return x.FacilityID < y.FacilityID
		})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Phone < out[b].Phone })
	return out
}
