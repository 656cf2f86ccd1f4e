package sqlite

// The visit index: how visits are found by day tag and by facility on SQLite.
//
// A B-tree index on a random key costs one page written to the WAL, and again to the
// file at the checkpoint, for nearly every row inserted once the index is larger than
// a commit. A day tag is a keyed hash, and with a million facilities a facility id is
// as good as random: measured on the 2-core machine, the day-tag index alone cost
// three quarters of the insert's CPU (docs/storage.md). So the visits table keeps
// only indexes that take new rows at their right edge (the visit id, which scanners
// make time-ordered, and the visit time), and a second file, the index file
// (<path>.index), holds runs: every RunSize visits, or every RunInterval when fewer
// arrive, the indexer goroutine reads the visits not yet indexed and writes their
// keys (day tag; facility and time) as one run, hashed into buckets of about 32
// entries, each bucket one row. A run is a few hundred rows written after every
// other run, so it fills pages as appends do, on its own connection to its own file:
// ingest never waits for it, and indexing costs about a tenth of what one B-tree
// entry per key did.
//
// Runs cut by time when visits arrive slowly are small; the indexer merges the last
// two while they are small and alike in size (mergeLast), so runs stay few.
//
// A lookup reads, in each run whose visits' time range meets the query window, the
// bucket its key hashes to and keeps the entries with that key; it scans the visits
// not yet indexed (those above the highest indexed rowid: about
// RunSize at most while the indexer keeps up) and then reads the visits themselves
// with the query's own conditions, so an index entry that no longer matches a visit
// can never return it. Visit rowids come from AUTOINCREMENT and so are never reused,
// and a transaction's rowids are above every committed one: a visit is always either
// in a run or above the mark.
//
// The index is derived data. It commits with synchronous=NORMAL; a run lost in a
// crash is written again from the visits. An index file that belongs to another
// ledger, or that claims visits the ledger does not have (a restored backup), is
// emptied and rebuilt.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kipass/kipass"
)

// indexFormat is the layout of the index file; a file of another layout is emptied
// and rebuilt.
const indexFormat = 3

// indexSchema creates the index file's tables. A run is the visits with rowids in
// [first_rowid, last_rowid], visits of them; min_at and max_at bound their times, and its entries
// are hashed into buckets rows, bucket b of run r being row r<<16 | b.
const indexSchema = `
CREATE TABLE IF NOT EXISTS meta (
	ledger_id TEXT NOT NULL,
	format    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
	run         INTEGER PRIMARY KEY,
	first_rowid INTEGER NOT NULL,
	last_rowid  INTEGER NOT NULL,
	min_at      INTEGER NOT NULL,
	max_at      INTEGER NOT NULL,
	buckets     INTEGER NOT NULL,
	visits      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS buckets (
	id   INTEGER PRIMARY KEY,
	data BLOB NOT NULL
);`

// Index entry kinds. In a bucket an entry is its kind, the key's length (uvarint)
// and bytes, for a facility entry the visit time (varint, unix microseconds), and
// the visit's rowid (uvarint).
const (
	keyDayTag   = 'd'
	keyFacility = 'f'
)

// Buckets: about bucketEntries entries each, at most maxBuckets in a run.
const (
	bucketEntries = 32
	maxBuckets    = 4096
	bucketBits    = 16 // bucket b of run r is row r<<bucketBits | b
)

// keyHash hashes an entry's kind and key (32-bit FNV-1a) to pick its bucket.
func keyHash(kind byte, key []byte) uint32 {
	h := uint32(2166136261)
	h = (h ^ uint32(kind)) * 16777619
	for _, c := range key {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// appendEntry appends an entry to a bucket.
func appendEntry(b []byte, kind byte, key []byte, at, rowid int64) []byte {
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	if kind == keyFacility {
		b = binary.AppendVarint(b, at)
	}
	return binary.AppendUvarint(b, uint64(rowid))
}

// errBadBucket is a bucket that does not parse: the index file is damaged.
var errBadBucket = errors.New("visit index bucket is damaged")

// probe is what a lookup looks for: visits with a key of a kind, and for facility
// keys a visit time in [from, to).
type probe struct {
	kind     byte
	key      []byte
	from, to int64
}

// match appends to rowids the rowids of the entries of bucket b that probe p finds.
func (p *probe) match(b []byte, rowids []int64) ([]int64, error) {
	err := parseBucket(b, func(kind byte, key []byte, at, rowid int64) {
		if kind == p.kind && bytes.Equal(key, p.key) && (kind != keyFacility || at >= p.from && at < p.to) {
			rowids = append(rowids, rowid)
		}
	})
	return rowids, err
}

// parseBucket calls fn with each entry of bucket b (at is 0 but for facility
// entries); key is valid only during the call.
func parseBucket(b []byte, fn func(kind byte, key []byte, at, rowid int64)) error {
	for len(b) > 0 {
		kind := b[0]
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || n > uint64(len(b)-1-k) || kind != keyDayTag && kind != keyFacility {
			return errBadBucket
		}
		key := b[1+k : 1+k+int(n)]
		b = b[1+k+int(n):]
		var at int64
		if kind == keyFacility {
			if at, k = binary.Varint(b); k <= 0 {
				return errBadBucket
			}
			b = b[k:]
		}
		rowid, k := binary.Uvarint(b)
		if k <= 0 || rowid > 1<<63-1 {
			return errBadBucket
		}
		b = b[k:]
		fn(kind, key, at, int64(rowid))
	}
	return nil
}

// visitIndex is the index file and its indexer.
type visitIndex struct {
	visits *sql.DB // the ledger's read pool
	w      *sql.DB // the index file, one connection, for writes
	r      *sql.DB // the index file, for lookups
	log    *slog.Logger

	runSize     int
	runInterval time.Duration

	lastRowid atomic.Int64 // the largest visit rowid committed, kept by ingest
	upto      atomic.Int64 // the largest visit rowid indexed
	lastRun   atomic.Int64 // unix nanoseconds of the latest run (or of the start)
	failures  atomic.Int64 // runs that failed

	// runMu is held while a run is built and written, and while the index is purged:
	// a run built from visits read (or handed over) before a purge destroyed some of
	// them is written before the purge looks at the runs, never after.
	runMu sync.Mutex

	// Visits handed over by ingest as it commits them, with consecutive rowids from
	// buf[0].rowid: a run built from them needs no reading back.
	bufMu sync.Mutex
	buf   []indexed

	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

// openIndex opens (creating or repairing if needed) the index file at path for the
// ledger whose read pool is visits and whose ledger id and visit sequence are given,
// and starts the indexer.
func openIndex(ctx context.Context, path string, visits *sql.DB, ledgerID string, lastRowid int64, busy string, opts Options) (*visitIndex, error) {
	ix := &visitIndex{visits: visits, log: opts.Logger, runSize: opts.IndexRunSize, runInterval: opts.IndexRunInterval,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	var err error
	ix.w, err = sql.Open("sqlite", path+"?_busy_timeout="+busy+"&_txlock=immediate&_journal_mode=WAL&_synchronous=NORMAL"+
		"&_pragma=cache_size(-4096)")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open index: %w", err)
	}
	ix.w.SetMaxOpenConns(1)
	ix.w.SetMaxIdleConns(1)
	ix.w.SetConnMaxIdleTime(0)
	deadline := time.Now().Add(opts.BusyTimeout)
	for {
		err := ix.prepare(ctx, ledgerID, lastRowid)
		if err == nil {
			break
		}
		if !isBusy(err) || time.Now().After(deadline) { // see migrate
			ix.w.Close()
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ix.r, err = sql.Open("sqlite", path+"?_busy_timeout="+busy+"&_query_only=1&_pragma=cache_size(-4096)"); err != nil {
		ix.w.Close()
		return nil, fmt.Errorf("sqlite: open index: %w", err)
	}
	ix.r.SetMaxOpenConns(opts.ReadConns)
	ix.r.SetMaxIdleConns(opts.ReadConns)
	ix.lastRowid.Store(lastRowid)
	ix.lastRun.Store(time.Now().UnixNano())
	go ix.run()
	return ix, nil
}

// prepare creates the schema, empties an index that is not this ledger's, is of
// another layout or claims visits the ledger does not have, and reads the indexed
// mark.
func (ix *visitIndex) prepare(ctx context.Context, ledgerID string, lastRowid int64) error {
	tx, err := ix.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: index: %w", err)
	}
	defer tx.Rollback()
	var have string
	var format int
	switch err := tx.QueryRowContext(ctx, `SELECT ledger_id, format FROM meta`).Scan(&have, &format); {
	case err == nil, errors.Is(err, sql.ErrNoRows):
	case strings.Contains(err.Error(), "no such"):
		// A new file, or one of a layout without format.
	default:
		return fmt.Errorf("sqlite: index: %w", err)
	}
	var upto int64
	if format == indexFormat {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(last_rowid), 0) FROM runs`).Scan(&upto); err != nil {
			return fmt.Errorf("sqlite: index: %w", err)
		}
	}
	if have != ledgerID || format != indexFormat || upto > lastRowid {
		if have != "" {
			ix.log.Warn("visit index does not match the ledger; rebuilding it", "format", format, "indexed_rowid", upto, "ledger_rowid", lastRowid)
		}
		for _, q := range []string{`DROP TABLE IF EXISTS entries`, `DROP TABLE IF EXISTS buckets`, `DROP TABLE IF EXISTS runs`,
			`DROP TABLE IF EXISTS meta`, indexSchema} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("sqlite: index reset: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (ledger_id, format) VALUES (?, ?)`, ledgerID, indexFormat); err != nil {
			return fmt.Errorf("sqlite: index reset: %w", err)
		}
		upto = 0
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: index: %w", err)
	}
	ix.upto.Store(upto)
	return nil
}

// close stops the indexer and closes the index file.
func (ix *visitIndex) close() error {
	ix.once.Do(func() { close(ix.stop) })
	<-ix.stopped
	return errors.Join(ix.r.Close(), ix.w.Close())
}

// committed records that ingest committed visits up to rowid and wakes the indexer
// when a run's worth is waiting.
func (ix *visitIndex) committed(rowid int64) {
	ix.lastRowid.Store(rowid)
	if rowid-ix.upto.Load() >= int64(ix.runSize) {
		select {
		case ix.wake <- struct{}{}:
		default:
		}
	}
}

// handoff gives the indexer the visits one transaction inserted, in rowid order with
// consecutive rowids from first (as one writer's inserts get them), so that their run
// need not read them back. Visits that do not follow the ones buffered start the
// buffer again; a run that finds its first visit missing reads the ledger instead.
func (ix *visitIndex) handoff(first int64, vs []*kipass.Visit) {
	ix.bufMu.Lock()
	defer ix.bufMu.Unlock()
	if n := len(ix.buf); n > 0 && ix.buf[n-1].rowid+1 != first || n+len(vs) > 2*ix.runSize {
		ix.buf = ix.buf[:0]
	}
	for i, v := range vs {
		ix.buf = append(ix.buf, indexed{rowid: first + int64(i), facility: v.FacilityID, at: v.At.UnixMicro(), dtag: v.DTag})
	}
}

// takeBuffered returns up to limit buffered visits from rowid first on, or nil if
// the buffer does not hold rowid first, and forgets the buffered visits before them.
func (ix *visitIndex) takeBuffered(first int64, limit int) []indexed {
	ix.bufMu.Lock()
	defer ix.bufMu.Unlock()
	if len(ix.buf) == 0 || first < ix.buf[0].rowid || first > ix.buf[len(ix.buf)-1].rowid {
		return nil
	}
	rest := ix.buf[first-ix.buf[0].rowid:]
	vs := slices.Clone(rest[:min(limit, len(rest))])
	ix.buf = append(ix.buf[:0], rest[len(vs):]...)
	return vs
}

// lag is how many visit rowids are above the indexed mark.
func (ix *visitIndex) lag() int64 { return max(ix.lastRowid.Load()-ix.upto.Load(), 0) }

// due reports whether a run should be written now.
func (ix *visitIndex) due() bool {
	lag := ix.lag()
	return lag >= int64(ix.runSize) ||
		lag > 0 && time.Since(time.Unix(0, ix.lastRun.Load())) >= ix.runInterval
}

// run is the indexer goroutine: it writes runs while they are due.
func (ix *visitIndex) run() {
	defer close(ix.stopped)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-ix.stop
		cancel()
	}()
	tick := time.NewTicker(min(ix.runInterval, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ix.stop:
			return
		case <-tick.C:
		case <-ix.wake:
		}
		for ix.due() && ctx.Err() == nil {
			if _, err := ix.indexNext(ctx); err != nil {
				if ctx.Err() == nil {
					ix.failures.Add(1)
					ix.log.Error("visit index run failed; lookups scan the unindexed visits meanwhile", "err", err)
				}
				break
			}
		}
	}
}

// catchUp indexes every visit committed so far.
func (ix *visitIndex) catchUp(ctx context.Context) error {
	for {
		n, err := ix.indexNext(ctx)
		if err != nil || n == 0 {
			return err
		}
	}
}

// indexed is one visit as the index sees it.
type indexed struct {
	rowid    int64
	facility string
	at       int64
	dtag     []byte
}

// readVisits reads the visits with rowids in [first, last] (last < 0: no upper
// bound), at most limit of them (limit <= 0: all), in rowid order.
func (ix *visitIndex) readVisits(ctx context.Context, first, last int64, limit int) ([]indexed, error) {
	if last < 0 {
		last = 1<<63 - 1
	}
	if limit <= 0 {
		limit = -1
	}
	rows, err := ix.visits.QueryContext(ctx, `SELECT rowid, facility_id, at, dtag FROM visits
		WHERE rowid >= ? AND rowid <= ? ORDER BY rowid LIMIT ?`, first, last, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var vs []indexed
	for rows.Next() {
		if len(vs)%256 == 255 {
			runtime.Gosched() // see yieldEvery
		}
		var v indexed
		if err := rows.Scan(&v.rowid, &v.facility, &v.at, &v.dtag); err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, rows.Err()
}

// timeRange returns the least and greatest visit time of vs (not empty).
func timeRange(vs []indexed) (lo, hi int64) {
	lo, hi = vs[0].at, vs[0].at
	for _, v := range vs[1:] {
		lo, hi = min(lo, v.at), max(hi, v.at)
	}
	return lo, hi
}

// indexNext writes the next run: up to runSize visits above the indexed mark. It
// reports how many visits the run holds (0: none were waiting).
func (ix *visitIndex) indexNext(ctx context.Context) (int, error) {
	ix.runMu.Lock()
	defer ix.runMu.Unlock()
	upto := ix.upto.Load()
	vs := ix.takeBuffered(upto+1, ix.runSize)
	if vs == nil {
		var err error
		if vs, err = ix.readVisits(ctx, upto+1, -1, ix.runSize); err != nil {
			return 0, fmt.Errorf("read visits: %w", err)
		}
	}
	if len(vs) == 0 {
		// Nothing committed above the mark (the rowids in between were rolled back or
		// purged): move the clock on, not the mark.
		ix.lastRun.Store(time.Now().UnixNano())
		return 0, nil
	}
	last := vs[len(vs)-1].rowid
	if err := ix.writeRun(ctx, 0, upto+1, last, vs); err != nil {
		return 0, err
	}
	ix.upto.Store(last)
	ix.lastRun.Store(time.Now().UnixNano())
	if err := ix.mergeLast(ctx); err != nil {
		return len(vs), fmt.Errorf("merge runs: %w", err)
	}
	return len(vs), nil
}

// mergeLast merges the last two runs into one while together they hold at most
// runSize visits and the older is at most twice the newer. When visits arrive slowly
// runs are cut by RunInterval and hold few visits, and a lookup reads one bucket per
// run: merged like a binary counter, a day of minute runs becomes a handful, each
// visit rewritten a few times (read back from the ledger). Full runs never merge.
func (ix *visitIndex) mergeLast(ctx context.Context) error {
	type span struct{ run, first, last, visits int64 }
	for {
		rows, err := ix.w.QueryContext(ctx, `SELECT run, first_rowid, last_rowid, visits FROM runs ORDER BY run DESC LIMIT 2`)
		if err != nil {
			return err
		}
		var ss []span
		for rows.Next() {
			var x span
			if err := rows.Scan(&x.run, &x.first, &x.last, &x.visits); err != nil {
				rows.Close()
				return err
			}
			ss = append(ss, x)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if len(ss) < 2 {
			return nil
		}
		newer, older := ss[0], ss[1]
		if older.visits+newer.visits > int64(ix.runSize) || older.visits > 2*newer.visits {
			return nil
		}
		vs, err := ix.readVisits(ctx, older.first, newer.last, 0)
		if err != nil {
			return err
		}
		if err := ix.writeRun(ctx, older.run, older.first, newer.last, vs, newer.run); err != nil {
			return err
		}
		if len(vs) == 0 {
			return nil // both emptied by a purge: nothing left to merge
		}
	}
}

// writeRun writes the entries of vs as run number run (0: a new run after every
// other) covering visit rowids [first, last], replacing the run if it exists, and
// deletes the runs in drop, in one transaction; with vs empty it deletes the run.
func (ix *visitIndex) writeRun(ctx context.Context, run, first, last int64, vs []indexed, drop ...int64) error {
	nb := 0
	for _, v := range vs {
		nb++
		if len(v.dtag) > 0 {
			nb++
		}
	}
	nb = min(max(nb/bucketEntries, 1), maxBuckets)
	data := make([][]byte, nb)
	for _, v := range vs {
		fk := []byte(v.facility)
		h := keyHash(keyFacility, fk) % uint32(nb)
		data[h] = appendEntry(data[h], keyFacility, fk, v.at, v.rowid)
		if len(v.dtag) > 0 {
			h := keyHash(keyDayTag, v.dtag) % uint32(nb)
			data[h] = appendEntry(data[h], keyDayTag, v.dtag, 0, v.rowid)
		}
	}

	tx, err := ix.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index begin: %w", err)
	}
	defer tx.Rollback()
	if run != 0 && len(vs) == 0 {
		drop = append(drop, run)
	}
	for _, r := range append(drop, run) {
		if r == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM buckets WHERE id >= ? AND id < ?`, r<<bucketBits, (r+1)<<bucketBits); err != nil {
			return fmt.Errorf("index delete run: %w", err)
		}
	}
	for _, r := range drop {
		if _, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE run = ?`, r); err != nil {
			return fmt.Errorf("index delete run: %w", err)
		}
	}
	if len(vs) == 0 {
		return tx.Commit()
	}
	lo, hi := timeRange(vs)
	if run == 0 {
		if err := tx.QueryRowContext(ctx, `INSERT INTO runs (first_rowid, last_rowid, min_at, max_at, buckets, visits)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING run`, first, last, lo, hi, nb, len(vs)).Scan(&run); err != nil {
			return fmt.Errorf("index insert run: %w", err)
		}
	} else if _, err := tx.ExecContext(ctx, `UPDATE runs SET first_rowid = ?, last_rowid = ?, min_at = ?, max_at = ?, buckets = ?,
		visits = ? WHERE run = ?`, first, last, lo, hi, nb, len(vs), run); err != nil {
		return fmt.Errorf("index update run: %w", err)
	}
	insert, err := tx.PrepareContext(ctx, `INSERT INTO buckets (id, data) VALUES (?, ?)`)
	if err != nil {
		return fmt.Errorf("index insert buckets: %w", err)
	}
	defer insert.Close()
	for b, d := range data {
		if len(d) == 0 {
			continue
		}
		if b%32 == 31 {
			runtime.Gosched() // see yieldEvery
		}
		if _, err := insert.ExecContext(ctx, run<<bucketBits|int64(b), d); err != nil {
			return fmt.Errorf("index insert buckets: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index commit: %w", err)
	}
	return nil
}

// lookup returns the rowids of the visits that the probes find in the runs whose
// time range meets [from, to), and the highest indexed rowid: visits above it are
// not in the index yet.
func (ix *visitIndex) lookup(ctx context.Context, probes []probe, from, to int64) ([]int64, int64, error) {
	tx, err := ix.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback()
	var upto int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(last_rowid), 0) FROM runs`).Scan(&upto); err != nil {
		return nil, 0, err
	}
	stmt, err := tx.PrepareContext(ctx, `SELECT b.data FROM runs r JOIN buckets b ON b.id = (r.run << `+strconv.Itoa(bucketBits)+`) + (?1 % r.buckets)
		WHERE r.max_at >= ?2 AND r.min_at < ?3`)
	if err != nil {
		return nil, 0, err
	}
	defer stmt.Close()
	var rowids []int64
	for i := range probes {
		p := &probes[i]
		rows, err := stmt.QueryContext(ctx, int64(keyHash(p.kind, p.key)), from, to)
		if err != nil {
			return nil, 0, err
		}
		for rows.Next() {
			var data []byte
			if err := rows.Scan(&data); err != nil {
				rows.Close()
				return nil, 0, err
			}
			if rowids, err = p.match(data, rowids); err != nil {
				rows.Close()
				return nil, 0, err
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, 0, err
		}
	}
	return rowids, upto, nil
}

// purge brings the index in line with a ledger from which every visit before cutoff
// (unix microseconds) was destroyed: it deletes the runs whose visits are all older
// and writes again, from the visits left, the runs that held some, so that no key of
// a destroyed visit stays behind. It reports how many runs it deleted and rewrote.
func (ix *visitIndex) purge(ctx context.Context, cutoff int64) (deleted, rewritten int, err error) {
	ix.runMu.Lock()
	defer ix.runMu.Unlock()
	// Visits handed over may have been destroyed since: later runs read the ledger.
	ix.bufMu.Lock()
	ix.buf = ix.buf[:0]
	ix.bufMu.Unlock()
	type span struct{ run, first, last, maxAt int64 }
	rows, err := ix.r.QueryContext(ctx, `SELECT run, first_rowid, last_rowid, max_at FROM runs WHERE min_at < ? ORDER BY run`, cutoff)
	if err != nil {
		return 0, 0, fmt.Errorf("index purge: %w", err)
	}
	var spans []span
	for rows.Next() {
		var s span
		if err := rows.Scan(&s.run, &s.first, &s.last, &s.maxAt); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("index purge: %w", err)
		}
		spans = append(spans, s)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, 0, fmt.Errorf("index purge: %w", err)
	}
	for _, s := range spans {
		var vs []indexed
		if s.maxAt >= cutoff {
			if vs, err = ix.readVisits(ctx, s.first, s.last, 0); err != nil {
				return deleted, rewritten, fmt.Errorf("index purge: %w", err)
			}
		}
		if err := ix.writeRun(ctx, s.run, s.first, s.last, vs); err != nil {
			return deleted, rewritten, fmt.Errorf("index purge: %w", err)
		}
		if len(vs) == 0 {
			deleted++
		} else {
			rewritten++
		}
	}
	return deleted, rewritten, nil
}
