package registry_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/registry"
)

func TestClientPerson(t *testing.T) {
	ts := mustServeStore(t)
	ctx := context.Background()
	admin := registry.NewClient(ts.URL, adminToken, nil)
	p := validPerson()
	stored, err := admin.PutPerson(ctx, p)
	if err != nil {
		t.Fatalf("PutPerson: %v", err)
	}
	if stored.UpdatedAt.IsZero() || len(stored.Doses) != 2 {
		t.Fatalf("PutPerson = %+v", stored)
	}
	if _, err := admin.AddDose(ctx, p.PersonID, kipass.Dose{Date: day("2021-12-20"), Product: "moderna"}); err != nil {
		t.Fatalf("AddDose: %v", err)
	}
	if _, err := admin.AddTest(ctx, p.PersonID, kipass.Test{Kind: "rat", Result: "negative", At: at("2022-01-27T08:00:00+09:00")}); err != nil {
		t.Fatalf("AddTest: %v", err)
	}
	rec, err := admin.AddRecovery(ctx, p.PersonID, day("2021-12-30"))
	if err != nil {
		t.Fatalf("AddRecovery: %v", err)
	}
	if got, err := admin.PersonRecord(ctx, p.PersonID); err != nil || !reflect.DeepEqual(got.Recoveries, rec.Recoveries) {
		t.Fatalf("PersonRecord = %+v, %v", got, err)
	}

	issuer := registry.NewClient(ts.URL, issuerToken, nil)
	r, err := issuer.Person(ctx, p.PersonID)
	if err != nil {
		t.Fatalf("Person: %v", err)
	}
	full, _ := ts.Store.Person(ctx, p.PersonID)
	want := full.Facts(now)
	if r.PersonID != p.PersonID || !r.UpdatedAt.Equal(full.UpdatedAt) || !r.AsOf.Equal(now) ||
		!reflect.DeepEqual(normalizeHolder(r.Holder), normalizeHolder(want)) {
		t.Fatalf("Person = %+v\nwant holder %+v", r, want)
	}
	if len(r.Holder.Doses) != 3 || *r.Holder.RecoveredOn != day("2021-12-30") || len(r.Holder.Tests) != 2 {
		t.Fatalf("holder %+v: want 3 doses, the latest recovery, a PCR and a RAT", r.Holder)
	}
}

func TestClientErrors(t *testing.T) {
	ts := mustServeStore(t)
	ctx := context.Background()
	tests := []struct {
		name, token, id string
		code            string
	}{
		{"ErrNotFound", issuerToken, "R-404", kipass.ENOTFOUND},
		{"ErrBadToken", "guess", "R-404", kipass.EUNAUTHORIZED},
		{"ErrBadID", issuerToken, "R 1", kipass.EINVALID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registry.NewClient(ts.URL, tc.token, nil).Person(ctx, tc.id)
			if kipass.ErrorCode(err) != tc.code {
				t.Fatalf("Person = %v, want %s", err, tc.code)
			}
		})
	}
}

// TestClientUnavailable: every way the registry can fail to answer is EUNAVAILABLE,
// and none of them makes the caller wait longer than the client's timeout.
func TestClientUnavailable(t *testing.T) {
	stopped := func(t *testing.T) string {
		ts := mustServeStore(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := ts.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		return ts.URL
	}
	silent := func(t *testing.T) string { // accepts connections and never answers
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		return "http://" + ln.Addr().String()
	}
	status := func(code int) func(t *testing.T) string {
		return func(t *testing.T) string {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				w.Write([]byte(`{"error":{"code":"not_found","message":"a proxy's page"}}`))
			}))
			t.Cleanup(s.Close)
			return s.URL
		}
	}
	garbage := func(t *testing.T) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }))
		t.Cleanup(s.Close)
		return s.URL
	}
	tests := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"ServerStopped", stopped},
		{"NeverAnswers", silent},
		{"InternalError", status(500)},
		{"BadGateway", status(502)},
		{"Overloaded", status(429)},
		{"MalformedAnswer", garbage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := registry.NewClient(tc.url(t), issuerToken, nil)
			c.Timeout = 300 * time.Millisecond
			start := time.Now()
			_, err := c.Person(context.Background(), "R-0001")
			if kipass.ErrorCode(err) != kipass.EUNAVAILABLE {
				t.Fatalf("Person = %v, want %s", err, kipass.EUNAVAILABLE)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("Person took %v, want at most about the 300 ms timeout", d)
			}
		})
	}
	t.Run("CallerDeadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := registry.NewClient(silent(t), issuerToken, nil).Person(ctx, "R-0001")
		if kipass.ErrorCode(err) != kipass.EUNAVAILABLE {
			t.Fatalf("Person = %v, want %s", err, kipass.EUNAVAILABLE)
		}
	})
	t.Run("CallerCancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := registry.NewClient(silent(t), issuerToken, nil).Person(ctx, "R-0001")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Person = %v, want context.Canceled", err)
		}
	})
	t.Run("DefaultTimeoutBounded", func(t *testing.T) {
		start := time.Now()
		_, err := registry.NewClient(silent(t), issuerToken, &http.Client{}).Person(context.Background(), "R-0001")
		if d := time.Since(start); kipass.ErrorCode(err) != kipass.EUNAVAILABLE || d > registry.DefaultClientTimeout+time.Second {
			t.Fatalf("Person = %v after %v, want %s within the default timeout", err, d, kipass.EUNAVAILABLE)
		}
	})
}

// BenchmarkClientPerson measures look-ups through the client and the HTTP server, in
// parallel, over a real database of synthetic people.
func BenchmarkClientPerson(b *testing.B) {
	ts := mustServeStore(b)
	var ps []*registry.Person
	for p := range registry.Synth(registry.SynthOptions{People: 10_000, Seed: 1}) {
		ps = append(ps, p)
	}
	if err := ts.Store.PutPersons(context.Background(), ps); err != nil {
		b.Fatal(err)
	}
	c := registry.NewClient(ts.URL, issuerToken, nil)
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := c.Person(context.Background(), ps[i%len(ps)].PersonID); err != nil {
				b.Error(err)
				return
			}
			i += 7
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/lookup")
}
