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
// (<path>.index), holds sorted runs: every RunSize visits, or every RunInterval when
// fewer arrive, the indexer goroutine reads the visits not yet indexed, sorts their
// keys and writes them as one run. A run is written in key order after every other
// run, so it fills pages as appends do, and on its own connection to its own file:
// ingest never waits for it.
//
// A lookup seeks once per run whose visits' time range meets the query window,
// scans the visits not yet indexed (those above the highest indexed rowid: about
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
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// indexSchema creates the index file's tables. A run is the visits with rowids in
// [first_rowid, last_rowid]; min_at and max_at bound their times.
const indexSchema = `
CREATE TABLE IF NOT EXISTS meta (
	ledger_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
	run         INTEGER PRIMARY KEY,
	first_rowid INTEGER NOT NULL,
	last_rowid  INTEGER NOT NULL,
	min_at      INTEGER NOT NULL,
	max_at      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
	run  INTEGER NOT NULL,
	key  BLOB NOT NULL,
	vrow INTEGER NOT NULL,
	PRIMARY KEY (run, key, vrow)
) WITHOUT ROWID;`

// Index keys: a day tag, or a facility id and a visit time (facility ids never hold
// a NUL byte: central makes them).
const (
	keyDayTag   = 'd'
	keyFacility = 'f'
)

// dayTagKey is the index key of a day tag.
func dayTagKey(dtag []byte) []byte {
	return append([]byte{keyDayTag}, dtag...)
}

// facilityKey is the index key of a visit at a facility at the unix microsecond at;
// keys of one facility sort by time.
func facilityKey(facilityID string, at int64) []byte {
	k := make([]byte, 0, 1+len(facilityID)+1+8)
	k = append(k, keyFacility)
	k = append(k, facilityID...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(at)^1<<63)
}

// entryInsertRows is the most entries one INSERT statement writes.
const entryInsertRows = 256

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

	insertStmt *sql.Stmt // entryInsertRows entries

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
		"&_pragma=cache_size(-16384)")
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
	if ix.r, err = sql.Open("sqlite", path+"?_busy_timeout="+busy+"&_query_only=1&_pragma=cache_size(-8192)"); err != nil {
		ix.insertStmt.Close()
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

// prepare creates the schema, empties an index that is not this ledger's (or claims
// visits it does not have), reads the indexed mark and prepares the entry insert.
func (ix *visitIndex) prepare(ctx context.Context, ledgerID string, lastRowid int64) error {
	tx, err := ix.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: index: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, indexSchema); err != nil {
		return fmt.Errorf("sqlite: index schema: %w", err)
	}
	var have string
	switch err := tx.QueryRowContext(ctx, `SELECT ledger_id FROM meta`).Scan(&have); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("sqlite: index: %w", err)
	}
	var upto int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(last_rowid), 0) FROM runs`).Scan(&upto); err != nil {
		return fmt.Errorf("sqlite: index: %w", err)
	}
	if have != ledgerID || upto > lastRowid {
		if have != "" {
			ix.log.Warn("visit index does not match the ledger; rebuilding it", "indexed_rowid", upto, "ledger_rowid", lastRowid)
		}
		for _, q := range []string{`DELETE FROM entries`, `DELETE FROM runs`, `DELETE FROM meta`} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("sqlite: index reset: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (ledger_id) VALUES (?)`, ledgerID); err != nil {
			return fmt.Errorf("sqlite: index reset: %w", err)
		}
		upto = 0
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: index: %w", err)
	}
	ix.upto.Store(upto)
	row := "(?,?,?)"
	q := "INSERT INTO entries (run, key, vrow) VALUES " + row + string(bytes.Repeat([]byte(","+row), entryInsertRows-1))
	if ix.insertStmt, err = ix.w.PrepareContext(ctx, q); err != nil {
		return fmt.Errorf("sqlite: index prepare: %w", err)
	}
	return nil
}

// close stops the indexer and closes the index file.
func (ix *visitIndex) close() error {
	ix.once.Do(func() { close(ix.stop) })
	<-ix.stopped
	ix.insertStmt.Close()
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
		var v indexed
		if err := rows.Scan(&v.rowid, &v.facility, &v.at, &v.dtag); err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, rows.Err()
}

// entry is one index entry.
type entry struct {
	key  []byte
	vrow int64
}

// entriesOf returns the sorted index entries of visits.
func entriesOf(vs []indexed) []entry {
	es := make([]entry, 0, 2*len(vs))
	for _, v := range vs {
		es = append(es, entry{facilityKey(v.facility, v.at), v.rowid})
		if len(v.dtag) > 0 {
			es = append(es, entry{dayTagKey(v.dtag), v.rowid})
		}
	}
	slices.SortFunc(es, func(a, b entry) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return int(a.vrow - b.vrow)
	})
	return es
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
	upto := ix.upto.Load()
	vs, err := ix.readVisits(ctx, upto+1, -1, ix.runSize)
	if err != nil {
		return 0, fmt.Errorf("read visits: %w", err)
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
	return len(vs), nil
}

// writeRun writes the entries of vs as run number run (0: a new run after every
// other) covering visit rowids [first, last], replacing the run's entries if it
// exists; with vs empty it deletes the run.
func (ix *visitIndex) writeRun(ctx context.Context, run, first, last int64, vs []indexed) error {
	es := entriesOf(vs)
	tx, err := ix.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index begin: %w", err)
	}
	defer tx.Rollback()
	if run != 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM entries WHERE run = ?`, run); err != nil {
			return fmt.Errorf("index delete run: %w", err)
		}
		if len(vs) == 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE run = ?`, run); err != nil {
				return fmt.Errorf("index delete run: %w", err)
			}
			return tx.Commit()
		}
	}
	lo, hi := timeRange(vs)
	if run == 0 {
		if err := tx.QueryRowContext(ctx, `INSERT INTO runs (first_rowid, last_rowid, min_at, max_at) VALUES (?, ?, ?, ?)
			RETURNING run`, first, last, lo, hi).Scan(&run); err != nil {
			return fmt.Errorf("index insert run: %w", err)
		}
	} else if _, err := tx.ExecContext(ctx, `UPDATE runs SET min_at = ?, max_at = ? WHERE run = ?`, lo, hi, run); err != nil {
		return fmt.Errorf("index update run: %w", err)
	}
	stmt := tx.StmtContext(ctx, ix.insertStmt)
	args := make([]any, 0, 3*entryInsertRows)
	for len(es) > 0 {
		n := min(len(es), entryInsertRows)
		args = args[:0]
		for _, e := range es[:n] {
			args = append(args, run, e.key, e.vrow)
		}
		if n == entryInsertRows {
			_, err = stmt.ExecContext(ctx, args...)
		} else {
			q := "INSERT INTO entries (run, key, vrow) VALUES (?,?,?)" + string(bytes.Repeat([]byte(",(?,?,?)"), n-1))
			_, err = tx.ExecContext(ctx, q, args...)
		}
		if err != nil {
			return fmt.Errorf("index insert entries: %w", err)
		}
		es = es[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index commit: %w", err)
	}
	return nil
}

// lookup returns the rowids of the visits indexed under one of keys, or under a key
// in [lo, hi) when keys is nil, in the runs whose time range meets [from, to), and
// the highest indexed rowid: visits above it are not in the index yet.
func (ix *visitIndex) lookup(ctx context.Context, keys [][]byte, lo, hi []byte, from, to int64) ([]int64, int64, error) {
	tx, err := ix.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback()
	var upto int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(last_rowid), 0) FROM runs`).Scan(&upto); err != nil {
		return nil, 0, err
	}
	const inRuns = `run IN (SELECT run FROM runs WHERE max_at >= ? AND min_at < ?)`
	var rowids []int64
	scan := func(q string, args ...any) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r int64
			if err := rows.Scan(&r); err != nil {
				return err
			}
			rowids = append(rowids, r)
		}
		return rows.Err()
	}
	if keys == nil {
		err = scan(`SELECT vrow FROM entries WHERE `+inRuns+` AND key >= ? AND key < ?`, from, to, lo, hi)
	} else {
		for chunk := range slices.Chunk(keys, 500) {
			args := []any{from, to}
			for _, k := range chunk {
				args = append(args, k)
			}
			if err = scan(`SELECT vrow FROM entries WHERE `+inRuns+` AND key IN (`+placeholders(len(chunk))+`)`, args...); err != nil {
				break
			}
		}
	}
	if err != nil {
		return nil, 0, err
	}
	return rowids, upto, nil
}

// purge brings the index in line with a ledger from which every visit before cutoff
// (unix microseconds) was destroyed: it deletes the runs whose visits are all older
// and writes again, from the visits left, the runs that held some, so that no key of
// a destroyed visit stays behind. It reports how many runs it deleted and rewrote.
func (ix *visitIndex) purge(ctx context.Context, cutoff int64) (deleted, rewritten int, err error) {
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
