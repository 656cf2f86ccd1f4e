package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/registry"
)

// mixedCSV is the import test of issue 4: good rows and bad ones, a blank line, and a
// last line cut short. want lists the rejected lines and the field each names.
var mixedCSV = strings.Join([]string{
	/* 1 */ "person_id,birth_date,doses,tests,recoveries,exemptions",
	/* 2 */ "R-0001,1984-03-02,2021-06-10:pfizer;2021-07-22:pfizer;2021-12-20:moderna,,,",
	/* 3 */ "R-0002,1992-11-15,2021-09-01:moderna;2021-10-06:moderna,pcr:negative:2022-01-20T10:00:00+09:00,,",
	/* 4 */ "R-0003,1975-02-30,2021-06-01:astrazeneca,,,",
	/* 5 */ "R-0004,1988-02-09,2021-12-28:sputnik,,,",
	/* 6 */ "R-0005,1999-05-21,2021-13-20:pfizer,,,",
	/* 7 */ "",
	/* 8 */ "R-0006,1990-08-08,,,2021-12-20,",
	/* 9 */ "R-0007,1968-12-01,,pcr:negative:2022-01-26 15:00,,",
	/* 10 */ "R-0008,1979-04-17,,antibody:negative:2022-01-27T09:00:00+09:00,,",
	/* 11 */ "R-0002,1992-11-15,2021-09-01:moderna,,,",
	/* 12 */ `"R-0009",2008-06-30,,,,`,
	/* 13 */ "R-0010,1960-01-25,,,,medical:2021-12-01",
	/* 14 */ "R-0011,1983-10-10,2021-06-01:pfizer,2021-07-01",
	/* 15 */ "R-0012,1970-01-01,2023-01-01:pfizer,,,",
	/* 16 */ "R-0013,2001-05-05,2021-06-01:pfizer;2021-06-01:moderna,,,",
	/* 17 */ "R-0003,1975-02-28,2021-06-01:astrazeneca,,,",
	/* 18 */ "R-0014,1985-0",
}, "\n") // no line end after the last line

var mixedCSVWant = []registry.Rejection{
	{Line: 4, Field: "birth_date"},
	{Line: 5, Field: "doses[0].product"},
	{Line: 6, Field: "doses[0].date"},
	{Line: 9, Field: "tests[0].at"},
	{Line: 10, Field: "tests[0].kind"},
	{Line: 11, Field: "person_id"}, // R-0002 is on line 3
	{Line: 14, Field: ""},          // 4 fields, the header has 6
	{Line: 15, Field: "doses[0].date"},
	{Line: 16, Field: "doses[1].date"},
	{Line: 18, Field: ""}, // cut short
}

var mixedJSONL = strings.Join([]string{
	/* 1 */ `{"person_id":"R-0001","birth_date":"1984-03-02","doses":[{"date":"2021-06-10","product":"pfizer"},{"date":"2021-07-22","product":"pfizer"},{"date":"2021-12-20","product":"moderna"}]}`,
	/* 2 */ `{"person_id":"R-0003","birth_date":"1975-02-30"}`,
	/* 3 */ `{"person_id":"R-0004","birth_date":"1988-02-09","doses":[{"date":"2021-12-28","product":"sputnik"}]}`,
	/* 4 */ `{"person_id":"R-0005","birth_date":"1999-05-21","doses":[{"date":"2021-13-20","product":"pfizer"}]}`,
	/* 5 */ ``,
	/* 6 */ `{"person_id":"R-0006","birth_date":"1990-08-08","recoveries":["2021-12-20"]}`,
	/* 7 */ `{"person_id":"R-0007","birth_date":"1968-12-01","tests":[{"kind":"pcr","result":"negative","at":"2022-01-26 15:00"}]}`,
	/* 8 */ `{"person_id":"R-0008","birth_date":"1979-04-17","vaccinated":true}`,
	/* 9 */ `{"person_id":"R-0001","birth_date":"1984-03-02"}`,
	/* 10 */ `{"person_id":"R-0009","birth_date":"2008-06-30"}`,
	/* 11 */ `{"person_id":"R-0010","birth_date":"1960-01-25","exemptions":[{"kind":"medical","from":"2021-12-01"}]}`,
	/* 12 */ `{"person_id":"R-0011","birth_date":"1983-10-10","doses":[{"date":"2021-06-01"}]}`,
	/* 13 */ `{"person_id":"R-0003","birth_date":"1975-02-28"}`,
	/* 14 */ `R-0012,1970-01-01,,,,`,
	/* 15 */ `{"person_id":"R-0014","birth_date":"1985-0`,
}, "\r\n")

var mixedJSONLWant = []registry.Rejection{
	{Line: 2, Field: "birth_date"},
	{Line: 3, Field: "doses[0].product"},
	{Line: 4, Field: "doses[0].date"},
	{Line: 7, Field: "tests[0].at"},
	{Line: 8, Field: "vaccinated"},
	{Line: 9, Field: "person_id"}, // R-0001 is on line 1
	{Line: 12, Field: "doses[0].product"},
	{Line: 14, Field: ""}, // not JSON
	{Line: 15, Field: ""}, // cut short
}

func TestImportMixed(t *testing.T) {
	tests := []struct {
		name, file, data string
		rows             int
		want             []registry.Rejection
		stored           []string
	}{
		{"CSV", "people.csv", mixedCSV, 16, mixedCSVWant, []string{"R-0001", "R-0002", "R-0003", "R-0006", "R-0009", "R-0010"}},
		{"JSONL", "people.jsonl", mixedJSONL, 14, mixedJSONLWant, []string{"R-0001", "R-0003", "R-0006", "R-0009", "R-0010"}},
		{"CSVDetectedByContent", "people.txt", mixedCSV, 16, mixedCSVWant, []string{"R-0001", "R-0002", "R-0003", "R-0006", "R-0009", "R-0010"}},
		{"JSONLDetectedByContent", "-", mixedJSONL, 14, mixedJSONLWant, []string{"R-0001", "R-0003", "R-0006", "R-0009", "R-0010"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := mustOpenStore(t)
			// R-0005 exists before the import: its bad row must leave it as it was.
			before := &registry.Person{PersonID: "R-0005", BirthDate: day("1999-05-21"), Doses: []kipass.Dose{{Date: day("2021-12-01"), Product: "pfizer"}}}
			if _, err := st.PutPerson(ctx, before); err != nil {
				t.Fatal(err)
			}
			var progress []registry.ImportProgress
			rep, err := registry.Import(ctx, strings.NewReader(tc.data), st, registry.ImportOptions{
				Name: tc.file, Size: int64(len(tc.data)), Now: now, BatchSize: 2,
				Progress: func(p registry.ImportProgress) { progress = append(progress, p) },
			})
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			var got []registry.Rejection
			for _, r := range rep.Rejections {
				if r.Message == "" {
					t.Errorf("line %d: no message", r.Line)
				}
				got = append(got, registry.Rejection{Line: r.Line, Field: r.Field})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("rejections:\n got %v\nwant %v\n%s", got, tc.want, describe(rep.Rejections))
			}
			if rep.Rows != tc.rows || rep.Stored != len(tc.stored) || rep.Rejected != len(tc.want) {
				t.Errorf("rows %d stored %d rejected %d, want %d %d %d", rep.Rows, rep.Stored, rep.Rejected, tc.rows, len(tc.stored), len(tc.want))
			}
			if last := rep.Rejections[len(rep.Rejections)-1]; !strings.Contains(last.Message, "cut short") {
				t.Errorf("the last line's message %q does not say it may be cut short", last.Message)
			}
			for _, id := range tc.stored {
				if _, err := st.Person(ctx, id); err != nil {
					t.Errorf("%s: %v", id, err)
				}
			}
			if n, _ := st.Count(ctx); n != len(tc.stored)+1 {
				t.Errorf("%d records stored, want %d", n, len(tc.stored)+1)
			}
			// The first valid row of an id wins: R-0001 keeps its three doses, and
			// R-0003 is the corrected row that follows its bad one.
			if p, _ := st.Person(ctx, "R-0001"); p == nil || len(p.Doses) != 3 {
				t.Errorf("R-0001 = %+v, want the three doses of its first row", p)
			}
			if p, _ := st.Person(ctx, "R-0003"); p == nil || p.BirthDate != day("1975-02-28") {
				t.Errorf("R-0003 = %+v, want birth date 1975-02-28", p)
			}
			if p, _ := st.Person(ctx, "R-0005"); p == nil || !reflect.DeepEqual(p.Doses, before.Doses) {
				t.Errorf("R-0005 = %+v, want it unchanged by its bad row", p)
			}
			if len(progress) == 0 || !progress[len(progress)-1].Done || progress[len(progress)-1].Bytes != int64(len(tc.data)) {
				t.Errorf("progress %+v: want a last call, Done, with every byte read", progress)
			}
		})
	}
}

func describe(rs []registry.Rejection) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintln(&b, r)
	}
	return b.String()
}

func TestImportMessages(t *testing.T) {
	rep, err := registry.Import(context.Background(), strings.NewReader(mixedCSV), mustOpenStore(t), registry.ImportOptions{Name: "x.csv", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{
		4:  `birth_date: "1975-02-30" is not a date of the form YYYY-MM-DD`,
		5:  `doses[0].product: unknown vaccine product "sputnik" (want pfizer, moderna, astrazeneca, novavax, janssen)`,
		11: `person_id: "R-0002" is already in this file, on line 3`,
		14: `4 fields, but the header has 6`,
		18: `2 fields, but the header has 6 (the file ends without a line end: this line may be cut short)`,
	}
	for _, r := range rep.Rejections {
		if w, ok := want[r.Line]; ok && r.Message != w {
			t.Errorf("line %d: %q, want %q", r.Line, r.Message, w)
		}
	}
}

func TestImportMessagesJSONL(t *testing.T) {
	rep, err := registry.Import(context.Background(), strings.NewReader(mixedJSONL), mustOpenStore(t), registry.ImportOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{
		7:  `tests[0].at: "2022-01-26 15:00" is not an RFC 3339 time such as 2022-01-20T10:00:00+09:00`,
		8:  `vaccinated: unknown field`,
		12: `doses[0].product: missing`,
		15: `the JSON ends in the middle of a value (the file ends without a line end: this line may be cut short)`,
	}
	for _, r := range rep.Rejections {
		if w, ok := want[r.Line]; ok && r.Message != w {
			t.Errorf("line %d: %q, want %q", r.Line, r.Message, w)
		}
	}
}

func TestImportFileErrors(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"ErrEmpty", "", "empty"},
		{"ErrNoHeader", "R-0001,1984-03-02,,,,\n", `unknown column "r-0001"`},
		{"ErrUnknownColumn", "person_id,birth_date,vaccine\n", `unknown column "vaccine"`},
		{"ErrColumnTwice", "person_id,birth_date,doses,doses\n", `"doses" twice`},
		{"ErrNoBirthDate", "person_id,doses\n", "person_id and birth_date"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registry.Import(context.Background(), strings.NewReader(tc.data), mustOpenStore(t), registry.ImportOptions{Format: registry.FormatCSV, Now: now})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Import = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestImportSyntax(t *testing.T) {
	tests := []struct {
		name, data string
		stored     int
	}{
		{"HeaderAnyOrderSomeColumns", "birth_date,person_id\n1984-03-02,R-1\n", 1},
		{"ExemptionAlias", "person_id,birth_date,exemption\nR-1,1984-03-02,medical\n", 1},
		{"ByteOrderMark", "\xef\xbb\xbfperson_id,birth_date\nR-1,1984-03-02\n", 1},
		{"CRLF", "person_id,birth_date\r\nR-1,1984-03-02\r\nR-2,1984-03-02\r\n", 2},
		{"QuotedFields", "\"person_id\",\"birth_date\",\"doses\"\n\"R-1\",\"1984-03-02\",\"2021-06-10:pfizer; 2021-07-22:pfizer;\"\n", 1},
		{"StrayQuoteSpoilsOneRow", "person_id,birth_date\n\"R-1,1984-03-02\nR-2,1984-03-02\n", 1},
		{"SpacesAroundItems", "person_id,birth_date,tests\nR-1, 1984-03-02 , pcr : negative : 2022-01-20T10:00:00+09:00 \n", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := registry.Import(context.Background(), strings.NewReader(tc.data), mustOpenStore(t), registry.ImportOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Stored != tc.stored {
				t.Fatalf("stored %d, want %d: %s", rep.Stored, tc.stored, describe(rep.Rejections))
			}
		})
	}
}

func TestImportLongLine(t *testing.T) {
	data := "person_id,birth_date\nR-1," + strings.Repeat("x", registry.MaxLineSize+10) + "\nR-2,1984-03-02\n"
	rep, err := registry.Import(context.Background(), strings.NewReader(data), mustOpenStore(t), registry.ImportOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stored != 1 || rep.Rejected != 1 || rep.Rejections[0].Line != 2 || !strings.Contains(rep.Rejections[0].Message, "longer than") {
		t.Fatalf("report %+v", rep)
	}
}

func TestImportMaxReported(t *testing.T) {
	var b strings.Builder
	b.WriteString("person_id,birth_date\n")
	for i := range 30 {
		fmt.Fprintf(&b, "R-%d,not-a-date\n", i)
	}
	rep, err := registry.Import(context.Background(), strings.NewReader(b.String()), mustOpenStore(t), registry.ImportOptions{Now: now, MaxReported: 5})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected != 30 || len(rep.Rejections) != 5 || rep.Rejections[4].Line != 6 {
		t.Fatalf("rejected %d, listed %d (%v)", rep.Rejected, len(rep.Rejections), rep.Rejections)
	}
}

// failingWriter stores the first batches and then fails, as a full disk would.
type failingWriter struct {
	registry.PersonWriter
	okBatches int
}

func (w *failingWriter) PutPersons(ctx context.Context, ps []*registry.Person) error {
	if w.okBatches == 0 {
		return errors.New("disk full")
	}
	w.okBatches--
	return w.PersonWriter.PutPersons(ctx, ps)
}

func TestImportStoreFails(t *testing.T) {
	var b bytes.Buffer
	if _, err := registry.WriteSynth(&b, registry.FormatJSONL, registry.SynthOptions{People: 1000, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	st := mustOpenStore(t)
	rep, err := registry.Import(context.Background(), &b, &failingWriter{PersonWriter: st, okBatches: 2}, registry.ImportOptions{Now: now, BatchSize: 100})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Import = %v, want the store's error", err)
	}
	if n, _ := st.Count(context.Background()); rep.Stored != 200 || n != 200 {
		t.Fatalf("report says %d stored, the store has %d; want the 2 committed batches, 200", rep.Stored, n)
	}
}

func TestImportCancelled(t *testing.T) {
	var b bytes.Buffer
	registry.WriteSynth(&b, registry.FormatJSONL, registry.SynthOptions{People: 5000, Seed: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := registry.Import(ctx, &b, mustOpenStore(t), registry.ImportOptions{Now: now}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Import = %v, want context.Canceled", err)
	}
}

// BenchmarkImport measures rows per second from a synthetic file to a fresh SQLite
// database on disk (WAL, synchronous=FULL). docs/registry.md reports the figures.
func BenchmarkImport(b *testing.B) {
	for _, format := range []string{registry.FormatJSONL, registry.FormatCSV} {
		b.Run(format, func(b *testing.B) {
			const n = 100_000
			var data bytes.Buffer
			if _, err := registry.WriteSynth(&data, format, registry.SynthOptions{People: n, Seed: 1}); err != nil {
				b.Fatal(err)
			}
			rows := 0
			cpu0 := cpuTime()
			for b.Loop() {
				b.StopTimer()
				st := mustOpenStore(b)
				b.StartTimer()
				rep, err := registry.Import(context.Background(), bytes.NewReader(data.Bytes()), st, registry.ImportOptions{Format: format, Now: registry.SynthAt})
				if err != nil || rep.Stored != n {
					b.Fatalf("import: %v, %+v", err, rep)
				}
				rows += rep.Rows
				b.StopTimer()
				st.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(rows), "cpu-µs/row")
		})
	}
}

// cpuTime returns the CPU time the process has used, user and system: a measure that
// other processes on a shared machine do not inflate.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
