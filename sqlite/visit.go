package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kipass/kipass"
)

// visitColumns are the stored columns of a visit, in insert and scan order.
const visitColumns = `id, facility_id, device_id, at, method, issuer_key_id, token_id, sref, dtag,
	decision, basis, contact, safe_number, received_at`

const visitColumnCount = 14

// insertChunk is the most rows in one INSERT statement (14 parameters each, far
// under SQLite's limit of 32766); a power of two.
const insertChunk = 128

// purgeChunk is the most rows one retention DELETE destroys, so that the group
// committer never waits long for the write connection.
const purgeChunk = 10000

// StoreVisits stores the batch through the group committer and returns once it is
// durably committed. See kipass.VisitService. The visits must not be modified until
// StoreVisits returns, nor after it returns with ctx's error.
func (db *DB) StoreVisits(ctx context.Context, visits []*kipass.Visit) ([]kipass.VisitStatus, error) {
	return db.ingest.Enqueue(ctx, visits)
}

// commitVisits is the group committer's groupcommit.Func: one IMMEDIATE transaction that
// inserts every visit whose id is new and compares the others with what is stored.
func (db *DB) commitVisits(ctx context.Context, visits []*kipass.Visit) ([]kipass.VisitStatus, error) {
	receivedAt := db.now().UnixMicro()

	// The first occurrence of an id in the group is the one inserted; a later
	// occurrence is compared with it (or with the stored row).
	first := make(map[string]int, len(visits))
	uniq := make([]*kipass.Visit, 0, len(visits))
	for i, v := range visits {
		if _, ok := first[v.ID]; !ok {
			first[v.ID] = i
			uniq = append(uniq, v)
		}
	}

	// Inserted in id order: scanners' ids begin with the time they were made, so the
	// group's ids fall at the right edge of the unique index (and, being times, near
	// the right edge of the time indexes), and in order they fill pages there as
	// appends do. Inserted as they come, in the order of the uploads, each out-of-order
	// key split a page in the middle and dirtied its neighbours: twice the pages
	// written per visit.
	slices.SortFunc(uniq, func(a, b *kipass.Visit) int { return strings.Compare(a.ID, b.ID) })

	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("ingest: begin: %w", err)
	}
	defer tx.Rollback()
	// Rows inserted by this transaction get rowids above the largest one stored.
	var lastRowid int64
	if err := tx.StmtContext(ctx, db.lastRowidStmt).QueryRowContext(ctx).Scan(&lastRowid); err != nil {
		return nil, fmt.Errorf("ingest: last rowid: %w", err)
	}
	partial, maxRowid, err := db.insertVisits(ctx, tx, uniq, receivedAt)
	if err != nil {
		return nil, fmt.Errorf("ingest: insert: %w", err)
	}
	// Usually every statement inserted all its rows. Where one skipped some, its ids
	// are looked up: a row above lastRowid is this transaction's, any other was
	// stored before and decides whether the visit is a duplicate or a conflict.
	inserted := make(map[string]bool, len(uniq))
	stored, err := findVisitsByID(ctx, tx, partial, lastRowid, inserted)
	if err != nil {
		return nil, fmt.Errorf("ingest: read stored: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("ingest: commit: %w", err)
	}
	db.ckpt.notify()
	if maxRowid > 0 {
		if partial == nil {
			// Every visit of uniq was inserted, in order, with consecutive rowids.
			db.index.handoff(maxRowid-int64(len(uniq))+1, uniq)
		}
		db.index.committed(maxRowid)
	}
	return answerVisits(visits, first, partial, inserted, stored)
}

// answerVisits decides each visit's status once the group is committed. A visit whose
// id is not in partial was inserted; for the others, inserted and stored tell.
func answerVisits(visits []*kipass.Visit, first map[string]int, partial []string, inserted map[string]bool, stored map[string]*kipass.Visit) ([]kipass.VisitStatus, error) {
	checked := make(map[string]bool, len(partial))
	for _, id := range partial {
		checked[id] = true
	}
	statuses := make([]kipass.VisitStatus, len(visits))
	for i, v := range visits {
		var winner *kipass.Visit
		if !checked[v.ID] || inserted[v.ID] {
			if first[v.ID] == i {
				statuses[i] = kipass.VisitStatus{ID: v.ID, Status: kipass.VisitStored}
				continue
			}
			winner = visits[first[v.ID]]
		} else if winner = stored[v.ID]; winner == nil {
			return nil, fmt.Errorf("ingest: visit neither inserted nor stored")
		}
		if v.SameContent(winner) {
			statuses[i] = kipass.VisitStatus{ID: v.ID, Status: kipass.VisitDuplicate}
		} else {
			statuses[i] = kipass.VisitStatus{ID: v.ID, Status: kipass.VisitRejected, Reason: kipass.ReasonVisitConflict}
		}
	}
	return statuses, nil
}

// insertVisits inserts visits with multi-row INSERT OR IGNORE statements, which skip
// an id already stored, and returns the ids of every statement that inserted fewer
// rows than it was given (which of them were skipped is for the caller to find out)
// and the largest rowid it inserted (0: none).
// No RETURNING: handing each inserted id back to Go cost a fifth of the insert's CPU,
// and a replayed visit is the exception. OR IGNORE rather than ON CONFLICT DO
// NOTHING: a statement that cannot abort needs no statement journal, which cost
// another fifth. Every other constraint (NOT NULL) is met by construction.
func (db *DB) insertVisits(ctx context.Context, tx *sql.Tx, visits []*kipass.Visit, receivedAt int64) (partial []string, maxRowid int64, err error) {
	args := make([]any, 0, min(len(visits), insertChunk)*visitColumnCount)
	for len(visits) > 0 {
		// Statements exist for power-of-two row counts: take the largest that fits.
		n := insertChunk
		for n > len(visits) {
			n /= 2
		}
		chunk := visits[:n]
		visits = visits[n:]
		args = args[:0]
		for _, v := range chunk {
			args = append(args, v.ID, v.FacilityID, v.DeviceID, v.At.UnixMicro(), v.Method, v.IssuerKeyID,
				nullBytes(v.TokenID), nullBytes(v.SRef), nullBytes(v.DTag), string(v.Outcome), v.Basis,
				nullBytes(v.Contact), v.SafeNumber, receivedAt)
		}
		res, err := tx.StmtContext(ctx, db.insertStmts[n]).ExecContext(ctx, args...)
		if err != nil {
			return nil, 0, err
		}
		k, err := res.RowsAffected()
		if err != nil {
			return nil, 0, err
		}
		if int(k) < n {
			for _, v := range chunk {
				partial = append(partial, v.ID)
			}
		}
		if k > 0 {
			// The rowid of the statement's last inserted row, the largest so far.
			if maxRowid, err = res.LastInsertId(); err != nil {
				return nil, 0, err
			}
		}
	}
	return partial, maxRowid, nil
}

// prepareInserts prepares the multi-row INSERTs of 1, 2, 4 ... insertChunk rows and
// the last-rowid query. They are prepared before ingest starts: the write connection
// is the only one, and a transaction holding it cannot wait for a Prepare that needs it.
func (db *DB) prepareInserts(ctx context.Context) error {
	row := "(" + placeholders(visitColumnCount) + ")"
	db.insertStmts = make(map[int]*sql.Stmt)
	for n := 1; n <= insertChunk; n *= 2 {
		q := "INSERT OR IGNORE INTO visits (" + visitColumns + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+",", n), ",")
		s, err := db.writer.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		db.insertStmts[n] = s
	}
	var err error
	if db.lastRowidStmt, err = db.writer.PrepareContext(ctx, `SELECT COALESCE(MAX(rowid), 0) FROM visits`); err != nil {
		return fmt.Errorf("sqlite: prepare: %w", err)
	}
	return nil
}

// queryer is what reads need of a *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// findVisitsByID returns the stored visits with the ids, by id. Where inserted is not
// nil, the ids of rows with a rowid above lastRowid go into it instead.
func findVisitsByID(ctx context.Context, q queryer, ids []string, lastRowid int64, inserted map[string]bool) (map[string]*kipass.Visit, error) {
	found := make(map[string]*kipass.Visit, len(ids))
	for chunk := range slices.Chunk(ids, 500) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := q.QueryContext(ctx, `SELECT rowid, `+visitColumns+` FROM visits WHERE id IN (`+placeholders(len(chunk))+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var rowid int64
			v, err := scanVisit(rows, &rowid)
			if err != nil {
				rows.Close()
				return nil, err
			}
			if inserted != nil && rowid > lastRowid {
				inserted[v.ID] = true
			} else {
				found[v.ID] = v
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// queryVisits runs a query selecting visitColumns and scans the visits.
func queryVisits(ctx context.Context, q queryer, query string, args ...any) ([]*kipass.Visit, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	visits := []*kipass.Visit{}
	for rows.Next() {
		v, err := scanVisit(rows)
		if err != nil {
			return nil, err
		}
		visits = append(visits, v)
	}
	return visits, rows.Err()
}

// scanVisit scans one row of visitColumns, after the destinations in before.
func scanVisit(rows *sql.Rows, before ...any) (*kipass.Visit, error) {
	var v kipass.Visit
	var at, receivedAt int64
	var outcome string
	dest := append(before, &v.ID, &v.FacilityID, &v.DeviceID, &at, &v.Method, &v.IssuerKeyID, &v.TokenID, &v.SRef,
		&v.DTag, &outcome, &v.Basis, &v.Contact, &v.SafeNumber, &receivedAt)
	if err := rows.Scan(dest...); err != nil {
		return nil, err
	}
	v.At, v.ReceivedAt, v.Outcome = fromMicro(at), fromMicro(receivedAt), kipass.Outcome(outcome)
	return &v, nil
}

// placeholders returns n comma-separated "?".
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// FindVisitsByDayTags returns the visits carrying any of the day tags, at or after
// from and before to, ordered by time and id. The visit index finds the indexed
// ones; the rest are scanned (see index.go).
func (db *DB) FindVisitsByDayTags(ctx context.Context, tags [][]byte, from, to time.Time) ([]*kipass.Visit, error) {
	if len(tags) == 0 {
		return []*kipass.Visit{}, nil
	}
	probes := make([]probe, len(tags))
	for i, t := range tags {
		probes[i] = probe{kind: keyDayTag, key: t}
	}
	rowids, upto, err := db.index.lookup(ctx, probes, micro(from), micro(to))
	if err != nil {
		return nil, fmt.Errorf("find visits by day tags: index: %w", err)
	}
	// The indexed visits are read once, whatever the number of tags, and kept if
	// their day tag is one asked for.
	indexed := newVisitSet()
	if err := db.findIndexed(ctx, indexed, rowids, `at >= ? AND at < ?`, []any{micro(from), micro(to)}); err != nil {
		return nil, fmt.Errorf("find visits by day tags: %w", err)
	}
	want := make(map[string]bool, len(tags))
	for _, t := range tags {
		want[string(t)] = true
	}
	found := newVisitSet()
	for id, v := range indexed.byID {
		if want[string(v.DTag)] {
			found.byID[id] = v
		}
	}
	for chunk := range slices.Chunk(tags, 500) {
		args := make([]any, 0, len(chunk)+3)
		for _, t := range chunk {
			args = append(args, t)
		}
		cond := `dtag IN (` + placeholders(len(chunk)) + `) AND at >= ? AND at < ?`
		args = append(args, micro(from), micro(to))
		if err := found.add(queryVisits(ctx, db.reader, db.unindexedQuery(upto)+cond, append([]any{upto}, args...)...)); err != nil {
			return nil, fmt.Errorf("find visits by day tags: %w", err)
		}
	}
	return found.sorted(), nil
}

// FindVisitsAtFacility returns the visits of a facility at or after from and before
// to, ordered by time and id.
func (db *DB) FindVisitsAtFacility(ctx context.Context, facilityID string, from, to time.Time) ([]*kipass.Visit, error) {
	rowids, upto, err := db.index.lookup(ctx, []probe{{kind: keyFacility, key: []byte(facilityID), from: micro(from), to: micro(to)}},
		micro(from), micro(to))
	if err != nil {
		return nil, fmt.Errorf("find visits at facility: index: %w", err)
	}
	found := newVisitSet()
	const cond = `facility_id = ? AND at >= ? AND at < ?`
	args := []any{facilityID, micro(from), micro(to)}
	if err := db.findIndexed(ctx, found, rowids, cond, args); err != nil {
		return nil, fmt.Errorf("find visits at facility: %w", err)
	}
	if err := found.add(queryVisits(ctx, db.reader, db.unindexedQuery(upto)+cond, append([]any{upto}, args...)...)); err != nil {
		return nil, fmt.Errorf("find visits at facility: %w", err)
	}
	return found.sorted(), nil
}

// unindexedQuery begins the query for the visits above the indexed mark upto; the
// caller appends its conditions and passes upto as the first argument. While the
// indexer keeps up they are a short run of rowids, read in rowid order; when it is
// far behind (an index being rebuilt), the planner may rather use the time index.
func (db *DB) unindexedQuery(upto int64) string {
	if db.index.lastRowid.Load()-upto <= 4*int64(db.opts.IndexRunSize) {
		return `SELECT ` + visitColumns + ` FROM visits NOT INDEXED WHERE rowid > ? AND `
	}
	return `SELECT ` + visitColumns + ` FROM visits WHERE rowid > ? AND `
}

// findIndexed adds to found the visits with the rowids that meet cond (with args).
func (db *DB) findIndexed(ctx context.Context, found *visitSet, rowids []int64, cond string, args []any) error {
	for chunk := range slices.Chunk(rowids, 500) {
		a := make([]any, 0, len(chunk)+len(args))
		for _, r := range chunk {
			a = append(a, r)
		}
		a = append(a, args...)
		if err := found.add(queryVisits(ctx, db.reader, `SELECT `+visitColumns+` FROM visits WHERE rowid IN (`+
			placeholders(len(chunk))+`) AND `+cond, a...)); err != nil {
			return err
		}
	}
	return nil
}

// visitSet gathers the visits a lookup finds, each once.
type visitSet struct {
	byID map[string]*kipass.Visit
}

func newVisitSet() *visitSet { return &visitSet{byID: map[string]*kipass.Visit{}} }

// add adds the visits of a query's answer, or returns its error.
func (s *visitSet) add(vs []*kipass.Visit, err error) error {
	if err != nil {
		return err
	}
	for _, v := range vs {
		s.byID[v.ID] = v
	}
	return nil
}

// sorted returns the visits ordered by time, then id.
func (s *visitSet) sorted() []*kipass.Visit {
	vs := make([]*kipass.Visit, 0, len(s.byID))
	for _, v := range s.byID {
		vs = append(vs, v)
	}
	sortVisits(vs)
	return vs
}

// sortVisits orders visits by time, then id.
func sortVisits(visits []*kipass.Visit) {
	slices.SortFunc(visits, func(a, b *kipass.Visit) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// PurgeVisits destroys every visit recorded before cutoff, purgeChunk rows per
// transaction so that ingest is never held up for long, then the visit index's keys
// of those visits, and reports how many visits.
func (db *DB) PurgeVisits(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		res, err := db.writer.ExecContext(ctx, `DELETE FROM visits WHERE rowid IN
			(SELECT rowid FROM visits WHERE at < ? LIMIT ?)`, micro(cutoff), purgeChunk)
		if err != nil {
			return total, fmt.Errorf("purge visits: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("purge visits: %w", err)
		}
		total += n
		if n < purgeChunk {
			break
		}
	}
	deleted, rewritten, err := db.index.purge(ctx, micro(cutoff))
	if err != nil {
		return total, fmt.Errorf("purge visits: %w", err)
	}
	if deleted+rewritten > 0 {
		db.opts.Logger.Info("visit index purged", "runs_deleted", deleted, "runs_rewritten", rewritten)
	}
	return total, nil
}

// FindSharedTokens returns token ids seen at more than one facility at or after from,
// ordered by first sighting.
func (db *DB) FindSharedTokens(ctx context.Context, from time.Time) ([]kipass.SharedToken, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT v.token_id, v.facility_id, MIN(v.at), MAX(v.at)
		FROM visits v
		WHERE v.at >= ?1 AND v.token_id IN (
			SELECT token_id FROM visits WHERE at >= ?1 AND token_id IS NOT NULL
			GROUP BY token_id HAVING COUNT(DISTINCT facility_id) > 1)
		GROUP BY v.token_id, v.facility_id
		ORDER BY v.token_id, v.facility_id`, micro(from))
	if err != nil {
		return nil, fmt.Errorf("find shared tokens: %w", err)
	}
	defer rows.Close()
	shared := []kipass.SharedToken{}
	for rows.Next() {
		var token []byte
		var facility string
		var firstAt, lastAt int64
		if err := rows.Scan(&token, &facility, &firstAt, &lastAt); err != nil {
			return nil, fmt.Errorf("find shared tokens: %w", err)
		}
		shared = addSighting(shared, token, facility, fromMicro(firstAt), fromMicro(lastAt))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find shared tokens: %w", err)
	}
	sortShared(shared)
	return shared, nil
}

// addSighting folds one (token, facility) row, ordered by token, into shared.
func addSighting(shared []kipass.SharedToken, token []byte, facility string, firstAt, lastAt time.Time) []kipass.SharedToken {
	if n := len(shared); n > 0 && bytes.Equal(shared[n-1].TokenID, token) {
		s := &shared[n-1]
		s.FacilityIDs = append(s.FacilityIDs, facility)
		if firstAt.Before(s.FirstAt) {
			s.FirstAt = firstAt
		}
		if lastAt.After(s.LastAt) {
			s.LastAt = lastAt
		}
		return shared
	}
	return append(shared, kipass.SharedToken{TokenID: token, FacilityIDs: []string{facility}, FirstAt: firstAt, LastAt: lastAt})
}

// sortShared orders shared tokens by first sighting, then token id.
func sortShared(shared []kipass.SharedToken) {
	slices.SortFunc(shared, func(a, b kipass.SharedToken) int {
		if c := a.FirstAt.Compare(b.FirstAt); c != 0 {
			return c
		}
		return bytes.Compare(a.TokenID, b.TokenID)
	})
}

// RawInsert inserts visits with the multi-row INSERTs ingest uses, without RETURNING,
// in transactions of batch rows each, one after another on the write connection: no
// group committer, no duplicate detection (a stored id is skipped silently). It
// measures the database's insert ceiling for the benchmark that compares ingest with
// it; give it visits with ids not yet stored.
func RawInsert(ctx context.Context, db *DB, visits []*kipass.Visit, batch int) error {
	if batch <= 0 {
		return fmt.Errorf("raw insert: batch must be positive")
	}
	receivedAt := db.now().UnixMicro()
	for chunk := range slices.Chunk(visits, batch) {
		tx, err := db.writer.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("raw insert: %w", err)
		}
		_, maxRowid, err := db.insertVisits(ctx, tx, chunk, receivedAt)
		if err != nil {
			tx.Rollback()
			return fmt.Errorf("raw insert: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("raw insert: %w", err)
		}
		db.ckpt.notify()
		if maxRowid > 0 {
			db.index.committed(maxRowid)
		}
	}
	return nil
}
