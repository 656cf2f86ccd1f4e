package sqlite_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/sqlite"
	"github.com/kipass/kipass/storetest"
)

// The conformance suite again with runs of three visits written as soon as they are
// due, so that lookups meet visits in runs, above the mark and on the way between.
func TestConformanceSmallIndexRuns(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		return openStoreOptions(t, filepath.Join(t.TempDir(), "central.db"), sqlite.Options{
			QueueSize: 1000, BusyTimeout: 30 * time.Second, IndexRunSize: 3, IndexRunInterval: time.Millisecond})
	})
}

// openStoreOptions opens a DB at path with opts, closed when the test ends.
func openStoreOptions(t *testing.T, path string, opts sqlite.Options) *testStore {
	t.Helper()
	db, err := sqlite.OpenOptions(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testStore{DB: db, path: path}
}

// indexModel is what was stored, to check lookups against.
type indexModel struct {
	visits []*kipass.Visit
	tags   [][]byte
	facs   []string
	t0     time.Time
}

// newIndexModel makes n visits over three days at five facilities, by 40 people
// whose day tags repeat across visits, and a few visits without a day tag.
func newIndexModel(n int) *indexModel {
	m := &indexModel{t0: time.Date(2022, 1, 24, 0, 0, 0, 0, time.UTC), facs: []string{"fac-a", "fac-b", "fac-c", "fac-d", "fac-e"}}
	for range 40 {
		m.tags = append(m.tags, randomBytes(16))
	}
	m.add(n)
	return m
}

// add makes n more visits.
func (m *indexModel) add(n int) []*kipass.Visit {
	var vs []*kipass.Visit
	for i := range n {
		k := len(m.visits) + i
		at := m.t0.Add(time.Duration(k*613%(72*3600)) * time.Second)
		v := &kipass.Visit{ID: fmt.Sprintf("v-%05d", k), FacilityID: m.facs[k%len(m.facs)], DeviceID: "dev", At: at,
			Method: kipass.MethodQR, IssuerKeyID: "naver-2022-01", TokenID: randomBytes(12), SRef: randomBytes(40),
			DTag: m.tags[k*7%len(m.tags)], Outcome: kipass.PASS, Basis: kipass.BasisBooster}
		if k%17 == 0 {
			v.Method, v.IssuerKeyID, v.TokenID, v.SRef, v.DTag, v.Contact = kipass.MethodPhone, "", nil, nil, nil, randomBytes(60)
			v.Outcome, v.Basis = "", ""
		}
		vs = append(vs, v)
	}
	m.visits = append(m.visits, vs...)
	return vs
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// store stores vs in batches of 37.
func store(t *testing.T, s *testStore, vs []*kipass.Visit) {
	t.Helper()
	for b := range slices.Chunk(vs, 37) {
		st, err := s.StoreVisits(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range st {
			if x.Status != kipass.VisitStored {
				t.Fatalf("visit %s: %+v", x.ID, x)
			}
		}
	}
}

// check compares lookups with what the model says, for windows of every facility
// and for sets of day tags.
func (m *indexModel) check(t *testing.T, s *testStore, cutoff time.Time) {
	t.Helper()
	ctx := context.Background()
	ids := func(vs []*kipass.Visit) []string {
		out := make([]string, len(vs))
		for i, v := range vs {
			out[i] = v.ID
		}
		return out
	}
	want := func(keep func(v *kipass.Visit) bool) []string {
		var vs []*kipass.Visit
		for _, v := range m.visits {
			if !v.At.Before(cutoff) && keep(v) {
				vs = append(vs, v)
			}
		}
		slices.SortFunc(vs, func(a, b *kipass.Visit) int {
			if c := a.At.Compare(b.At); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		return ids(vs)
	}
	windows := [][2]time.Time{
		{m.t0, m.t0.Add(72 * time.Hour)},
		{m.t0.Add(5 * time.Hour), m.t0.Add(11 * time.Hour)},
		{m.t0.Add(30 * time.Hour), m.t0.Add(30*time.Hour + 7*time.Minute)},
		{m.t0.Add(100 * time.Hour), m.t0.Add(101 * time.Hour)},
	}
	for _, w := range windows {
		in := func(v *kipass.Visit) bool { return !v.At.Before(w[0]) && v.At.Before(w[1]) }
		for _, f := range m.facs {
			got, err := s.FindVisitsAtFacility(ctx, f, w[0], w[1])
			if err != nil {
				t.Fatal(err)
			}
			if exp := want(func(v *kipass.Visit) bool { return v.FacilityID == f && in(v) }); !slices.Equal(ids(got), exp) {
				t.Fatalf("facility %s %v: got %d visits %v, want %d %v", f, w, len(got), ids(got), len(exp), exp)
			}
		}
		for _, tags := range [][][]byte{m.tags[:1], m.tags[3:9], m.tags, {randomBytes(16)}} {
			got, err := s.FindVisitsByDayTags(ctx, tags, w[0], w[1])
			if err != nil {
				t.Fatal(err)
			}
			exp := want(func(v *kipass.Visit) bool {
				return in(v) && slices.ContainsFunc(tags, func(tag []byte) bool { return bytes.Equal(tag, v.DTag) })
			})
			if !slices.Equal(ids(got), exp) {
				t.Fatalf("%d day tags %v: got %d visits, want %d", len(tags), w, len(got), len(exp))
			}
		}
	}
}

// indexFile opens the store's visit index file for reading, past the store.
func (s *testStore) indexFile(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", sqlite.IndexPath(s.path)+"?_busy_timeout=10000&_query_only=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// checkIndexFile checks that every entry of the index file names a stored visit
// under that visit's own key and time, in the right bucket, and returns the numbers
// of runs and entries.
func (s *testStore) checkIndexFile(t *testing.T) (runs, entries int) {
	t.Helper()
	ctx := context.Background()
	ix := s.indexFile(t)
	if err := ix.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs`).Scan(&runs); err != nil {
		t.Fatal(err)
	}
	es, err := sqlite.IndexEntries(ctx, ix)
	if err != nil {
		t.Fatal(err)
	}
	visits := s.raw(t)
	for _, e := range es {
		var facility string
		var dtag []byte
		var at int64
		if err := visits.QueryRowContext(ctx, `SELECT facility_id, dtag, at FROM visits WHERE rowid = ?`, e.Rowid).Scan(&facility, &dtag, &at); err != nil {
			t.Fatalf("index entry %+v: %v", e, err)
		}
		ok := e.Kind == 'd' && bytes.Equal(e.Key, dtag) || e.Kind == 'f' && string(e.Key) == facility && e.At == at
		if !ok || !e.InBucket {
			t.Fatalf("index entry %+v for a visit at %s at %d with day tag %x", e, facility, at, dtag)
		}
	}
	return runs, len(es)
}

func TestVisitIndexLookups(t *testing.T) {
	ctx := context.Background()
	s := openStoreOptions(t, filepath.Join(t.TempDir(), "central.db"), sqlite.Options{IndexRunSize: 50, IndexRunInterval: time.Hour})
	m := newIndexModel(0)
	store(t, s, m.add(420))
	never := m.t0.Add(-time.Hour)

	// Whatever the indexer has done by now, lookups are complete.
	m.check(t, s, never)

	if err := s.IndexVisits(ctx); err != nil {
		t.Fatal(err)
	}
	if lag := s.IngestStats().IndexLag; lag != 0 {
		t.Fatalf("index lag %d after IndexVisits", lag)
	}
	runs, entries := s.checkIndexFile(t)
	withTag := 0
	for _, v := range m.visits {
		if v.DTag != nil {
			withTag++
		}
	}
	if runs < 420/50 || entries != len(m.visits)+withTag {
		t.Fatalf("%d runs and %d entries for %d visits (%d with a day tag)", runs, entries, len(m.visits), withTag)
	}
	m.check(t, s, never) // all in runs

	store(t, s, m.add(45)) // under a run's worth: above the mark
	m.check(t, s, never)

	// Retention: the visits before the cutoff go, and so do their index entries.
	cutoff := m.t0.Add(40 * time.Hour)
	n, err := s.PurgeVisits(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	var old int
	for _, v := range m.visits {
		if v.At.Before(cutoff) {
			old++
		}
	}
	if int(n) != old {
		t.Fatalf("purged %d visits, want %d", n, old)
	}
	runs2, entries2 := s.checkIndexFile(t)
	if entries2 >= entries || runs2 == 0 {
		t.Fatalf("after the purge: %d runs and %d entries (before: %d and %d)", runs2, entries2, runs, entries)
	}
	m.check(t, s, cutoff)
	if err := s.IndexVisits(ctx); err != nil {
		t.Fatal(err)
	}
	m.check(t, s, cutoff)
	if _, entries3 := s.checkIndexFile(t); entries3 <= entries2 {
		t.Fatalf("%d entries after indexing the last visits, %d before", entries3, entries2)
	}
}

// The index is derived: deleted, or taken from another ledger, it is rebuilt, and
// lookups are right all along.
func TestVisitIndexRebuilt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := sqlite.Options{IndexRunSize: 40, IndexRunInterval: time.Hour}
	never := time.Time{}

	// Another ledger's index file, to put in the way later.
	other, err := sqlite.OpenOptions(filepath.Join(dir, "other.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	om := newIndexModel(0)
	if _, err := other.StoreVisits(ctx, om.add(30)); err != nil {
		t.Fatal(err)
	}
	if err := firstErr(other.IndexVisits(ctx), other.Close()); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "central.db")
	m := newIndexModel(0)
	func() {
		s := openStoreOptions(t, path, opts)
		store(t, s, m.add(200))
		if err := s.IndexVisits(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}()

	for _, tt := range []struct {
		name  string
		spoil func() error
	}{
		{"Deleted", func() error {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(sqlite.IndexPath(path) + suffix); err != nil && !os.IsNotExist(err) {
					return err
				}
			}
			return nil
		}},
		{"OtherLedger", func() error {
			b, err := os.ReadFile(sqlite.IndexPath(filepath.Join(dir, "other.db")))
			if err != nil {
				return err
			}
			return os.WriteFile(sqlite.IndexPath(path), b, 0o600)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spoil(); err != nil {
				t.Fatal(err)
			}
			s := openStoreOptions(t, path, opts)
			if lag := s.IngestStats().IndexLag; lag != int64(len(m.visits)) {
				t.Fatalf("index lag %d on opening, want %d (every visit)", lag, len(m.visits))
			}
			m.check(t, s, never)
			if err := s.IndexVisits(ctx); err != nil {
				t.Fatal(err)
			}
			if runs, entries := s.checkIndexFile(t); runs < 200/40 || entries < 200 {
				t.Fatalf("rebuilt index: %d runs, %d entries", runs, entries)
			}
			m.check(t, s, never)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// firstErr returns the first error that is not nil.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// A ledger written by the first schema (a B-tree index per lookup) is migrated: its
// visits are kept, in order, and found through the visit index.
func TestMigrationToVisitIndex(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "central.db")
	v1, err := os.ReadFile("migrations/0001_central.sql")
	if err != nil {
		t.Fatal(err)
	}
	old, err := sql.Open("sqlite", path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	m := newIndexModel(0)
	vs := m.add(150)
	stmts := []string{string(v1),
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, 'migrations/0001_central.sql', 0)`}
	for _, q := range stmts {
		if _, err := old.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range vs {
		if _, err := old.ExecContext(ctx, `INSERT INTO visits (id, facility_id, device_id, at, method, issuer_key_id, token_id,
			sref, dtag, decision, basis, contact, safe_number, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
			v.ID, v.FacilityID, v.DeviceID, v.At.UnixMicro(), v.Method, v.IssuerKeyID, nullable(v.TokenID), nullable(v.SRef),
			nullable(v.DTag), string(v.Outcome), v.Basis, nullable(v.Contact), v.SafeNumber, v.At.UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s := openStoreOptions(t, path, sqlite.Options{IndexRunSize: 64, IndexRunInterval: time.Hour})
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	m.check(t, s, time.Time{})
	if err := s.IndexVisits(ctx); err != nil {
		t.Fatal(err)
	}
	m.check(t, s, time.Time{})
	// Replays are still recognised, and new visits take rowids after the old ones.
	st, err := s.StoreVisits(ctx, vs[:3])
	if err != nil || st[0].Status != kipass.VisitDuplicate {
		t.Fatalf("replay after migration: %+v, %v", st, err)
	}
	store(t, s, m.add(10))
	m.check(t, s, time.Time{})
}

func nullable(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Runs cut by time hold few visits; the indexer merges them, so that lookups read few
// buckets, and the merged runs still name every visit under its own keys.
func TestVisitIndexMergesSmallRuns(t *testing.T) {
	ctx := context.Background()
	s := openStoreOptions(t, filepath.Join(t.TempDir(), "central.db"), sqlite.Options{IndexRunSize: 64, IndexRunInterval: time.Hour})
	m := newIndexModel(0)
	for range 40 {
		store(t, s, m.add(8))
		if err := s.IndexVisits(ctx); err != nil {
			t.Fatal(err)
		}
	}
	runs, entries := s.checkIndexFile(t)
	// 320 visits: five full runs of 64 and none left over, or a few more on the way.
	if runs > 9 || entries < 320 {
		t.Fatalf("%d runs, %d entries for 40 runs of 8 visits with runs of 64 at most", runs, entries)
	}
	var biggest int
	if err := s.indexFile(t).QueryRowContext(ctx, `SELECT MAX(visits) FROM runs`).Scan(&biggest); err != nil || biggest > 64 {
		t.Fatalf("largest run %d visits (%v), at most 64", biggest, err)
	}
	m.check(t, s, time.Time{})
}
