package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/registry"
	"github.com/kipass/kipass/registry/sqlite"
)

var clock = time.Date(2022, 1, 27, 12, 0, 0, 0, kipass.KST)

func mustOpen(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	st, err := sqlite.OpenOptions(path, sqlite.Options{Now: func() time.Time { return clock }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func day(s string) kipass.Date { return kipass.MustParseDate(s) }

func fullPerson(id string) *registry.Person {
	from := day("2021-12-01")
	p := &registry.Person{
		PersonID:   id,
		BirthDate:  day("1984-03-02"),
		Doses:      []kipass.Dose{{Date: day("2021-06-10"), Product: "pfizer"}, {Date: day("2021-07-22"), Product: "pfizer"}},
		Tests:      []kipass.Test{{Kind: "pcr", Result: "negative", At: time.Date(2022, 1, 26, 15, 0, 0, 0, kipass.KST)}},
		Recoveries: []kipass.Date{day("2021-03-01"), day("2021-12-20")},
		Exemptions: []registry.Exemption{{Kind: "medical", From: &from}},
	}
	p.Normalize()
	return p
}

func TestPutGet(t *testing.T) {
	ctx := context.Background()
	st := mustOpen(t, filepath.Join(t.TempDir(), sqlite.FileName))
	p := fullPerson("R-0001")
	created, err := st.PutPerson(ctx, p)
	if err != nil || !created {
		t.Fatalf("PutPerson = %v, %v; want created", created, err)
	}
	got, err := st.Person(ctx, "R-0001")
	if err != nil {
		t.Fatal(err)
	}
	if !got.UpdatedAt.Equal(clock) {
		t.Errorf("UpdatedAt = %v, want the store clock", got.UpdatedAt)
	}
	got.UpdatedAt = p.UpdatedAt
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("Person =\n%+v\nwant\n%+v", got, p)
	}

	// Replacing drops the children of the old record.
	q := &registry.Person{PersonID: "R-0001", BirthDate: day("1984-03-03"), Doses: []kipass.Dose{{Date: day("2021-08-01"), Product: "janssen"}}}
	if created, err := st.PutPerson(ctx, q); err != nil || created {
		t.Fatalf("PutPerson = %v, %v; want replaced", created, err)
	}
	got, _ = st.Person(ctx, "R-0001")
	if got.BirthDate != q.BirthDate || len(got.Doses) != 1 || got.Tests != nil || got.Recoveries != nil || got.Exemptions != nil {
		t.Fatalf("after replace: %+v", got)
	}
	if _, err := st.Person(ctx, "R-0002"); kipass.ErrorCode(err) != kipass.ENOTFOUND {
		t.Fatalf("unknown person: %v, want ENOTFOUND", err)
	}
}

// TestIdentifiers stores every product, test kind, result and exemption kipass knows:
// the schema's CHECK lists must follow the domain's lists.
func TestIdentifiers(t *testing.T) {
	ctx := context.Background()
	st := mustOpen(t, filepath.Join(t.TempDir(), sqlite.FileName))
	p := &registry.Person{PersonID: "R-1", BirthDate: day("1980-01-01")}
	for i, prod := range kipass.Products {
		p.Doses = append(p.Doses, kipass.Dose{Date: day("2021-06-01") + kipass.Date(i), Product: prod})
	}
	for i, kind := range kipass.TestKinds {
		for j, res := range kipass.TestResults {
			p.Tests = append(p.Tests, kipass.Test{Kind: kind, Result: res, At: clock.Add(-time.Duration(i*10+j) * time.Hour)})
		}
	}
	for _, e := range kipass.Exemptions {
		p.Exemptions = append(p.Exemptions, registry.Exemption{Kind: e})
	}
	if err := p.Validate(clock); err != nil {
		t.Fatal(err)
	}
	p.Normalize()
	if _, err := st.PutPerson(ctx, p); err != nil {
		t.Fatalf("PutPerson: %v", err)
	}
	got, _ := st.Person(ctx, "R-1")
	if len(got.Doses) != len(kipass.Products) || len(got.Tests) != len(kipass.TestKinds)*len(kipass.TestResults) || len(got.Exemptions) != len(kipass.Exemptions) {
		t.Fatalf("stored %+v", got)
	}
}

func TestPutPersons(t *testing.T) {
	ctx := context.Background()
	st := mustOpen(t, filepath.Join(t.TempDir(), sqlite.FileName))
	var ps []*registry.Person
	for i := range 450 { // more than two chunks of rows
		ps = append(ps, fullPerson(fmt.Sprintf("R-%04d", i)))
	}
	if err := st.PutPersons(ctx, ps); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.Count(ctx); n != len(ps) {
		t.Fatalf("count %d, want %d", n, len(ps))
	}
	// A batch with a repeated id fails whole: nothing of it is stored.
	bad := []*registry.Person{fullPerson("N-1"), fullPerson("N-2"), fullPerson("N-1")}
	if err := st.PutPersons(ctx, bad); err == nil {
		t.Fatal("PutPersons accepted an id twice")
	}
	if _, err := st.Person(ctx, "N-2"); kipass.ErrorCode(err) != kipass.ENOTFOUND {
		t.Fatalf("N-2 of the failed batch: %v, want ENOTFOUND", err)
	}
	// Replacing in bulk keeps one set of children per person.
	if err := st.PutPersons(ctx, ps[:300]); err != nil {
		t.Fatal(err)
	}
	got, _ := st.Person(ctx, ps[0].PersonID)
	if len(got.Doses) != 2 || len(got.Recoveries) != 2 {
		t.Fatalf("after bulk replace: %+v", got)
	}
}

func TestUpdatePerson(t *testing.T) {
	ctx := context.Background()
	st := mustOpen(t, filepath.Join(t.TempDir(), sqlite.FileName))
	st.PutPerson(ctx, fullPerson("R-1"))
	add := func(p *registry.Person) (bool, error) {
		return p.AddDose(kipass.Dose{Date: day("2021-12-20"), Product: "moderna"}, clock)
	}
	p, err := st.UpdatePerson(ctx, "R-1", add)
	if err != nil || len(p.Doses) != 3 {
		t.Fatalf("UpdatePerson = %+v, %v", p, err)
	}
	if got, _ := st.Person(ctx, "R-1"); len(got.Doses) != 3 {
		t.Fatalf("stored %+v", got)
	}
	if _, err := st.UpdatePerson(ctx, "R-404", add); kipass.ErrorCode(err) != kipass.ENOTFOUND {
		t.Fatalf("UpdatePerson(unknown) = %v, want ENOTFOUND", err)
	}
	boom := errors.New("boom")
	if _, err := st.UpdatePerson(ctx, "R-1", func(p *registry.Person) (bool, error) {
		p.Doses = nil
		return true, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("UpdatePerson = %v, want fn's error", err)
	}
	if got, _ := st.Person(ctx, "R-1"); len(got.Doses) != 3 {
		t.Fatalf("a failed update changed the record: %+v", got)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st.PutPerson(ctx, fullPerson("R-1"))
	if err := st.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	st.Close()
	st2 := mustOpen(t, path) // migrations apply once
	if _, err := st2.Person(ctx, "R-1"); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	if err := st2.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

// TestWritersTakeTurns runs two stores on one file, as `kipass registry import` beside
// `kipass serve registry` does: both writers succeed.
func TestWritersTakeTurns(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	a, b := mustOpen(t, path), mustOpen(t, path)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, st := range []*sqlite.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ps []*registry.Person
			for j := range 1000 {
				ps = append(ps, fullPerson(fmt.Sprintf("W%d-%04d", i, j)))
			}
			for k := 0; k < len(ps); k += 100 {
				if err := st.PutPersons(ctx, ps[k:k+100]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, _ := a.Count(ctx); n != 2000 {
		t.Fatalf("count %d, want 2000", n)
	}
}
