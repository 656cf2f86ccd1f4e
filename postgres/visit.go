package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kipass/kipass"
)

// visitColumns are the stored columns of a visit, in copy and scan order.
var visitColumns = []string{"id", "facility_id", "device_id", "at", "method", "issuer_key_id", "token_id", "sref",
	"dtag", "decision", "basis", "contact", "safe_number", "received_at"}

// selectVisits selects visitColumns.
var selectVisits = `SELECT ` + strings.Join(visitColumns, ", ") + ` FROM visits `

// purgeChunk is the most rows one retention DELETE destroys.
const purgeChunk = 10000

// StoreVisits stores the batch through the group committer and returns once it is
// committed. See kipass.VisitService. The visits must not be modified until
// StoreVisits returns, nor after it returns with ctx's error.
func (db *DB) StoreVisits(ctx context.Context, visits []*kipass.Visit) ([]kipass.VisitStatus, error) {
	return db.ingest.Enqueue(ctx, visits)
}

// digest returns SHA-256 over the content of v: the fields kipass.Visit.SameContent
// compares, At in microseconds, each length-prefixed. Stored digests must stay
// comparable, so this encoding never changes.
func digest(v *kipass.Visit) []byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	str := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	str(v.ID)
	str(v.FacilityID)
	str(v.DeviceID)
	var at [8]byte
	binary.BigEndian.PutUint64(at[:], uint64(v.At.UnixMicro()))
	field(at[:])
	str(v.Method)
	str(v.IssuerKeyID)
	field(v.TokenID)
	field(v.SRef)
	field(v.DTag)
	str(string(v.Outcome))
	str(v.Basis)
	field(v.Contact)
	str(v.SafeNumber)
	return h.Sum(nil)
}

// commitVisits is the group committer's groupcommit.Func. It makes sure the days have
// partitions, then in one transaction claims the new ids in visit_ids, compares the
// digests of the ids already claimed, and copies the new visits in.
func (db *DB) commitVisits(ctx context.Context, visits []*kipass.Visit) ([]kipass.VisitStatus, error) {
	first := make(map[string]int, len(visits))
	uniq := make([]*kipass.Visit, 0, len(visits))
	var days []kipass.Date
	for i, v := range visits {
		if _, ok := first[v.ID]; !ok {
			first[v.ID] = i
			uniq = append(uniq, v)
			if d := kipass.DateOf(v.At); !slices.Contains(days, d) {
				days = append(days, d)
			}
		}
	}
	// Claim ids in one order on every node, so that two nodes storing overlapping
	// batches cannot deadlock on each other's uncommitted keys.
	slices.SortFunc(uniq, func(a, b *kipass.Visit) int { return strings.Compare(a.ID, b.ID) })

	var statuses []kipass.VisitStatus
	for attempt := 0; ; attempt++ {
		if err := db.ensurePartitions(ctx, days); err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
		var err error
		statuses, err = db.commitOnce(ctx, visits, uniq, first)
		if err == nil {
			return statuses, nil
		}
		if pgCode(err) != pgNoPartition || attempt > 0 {
			return nil, fmt.Errorf("ingest: %w", err)
		}
		// Another node dropped a partition this one still knew: learn again.
		db.forgetPartitions()
	}
}

// commitOnce runs the ingest transaction.
func (db *DB) commitOnce(ctx context.Context, visits, uniq []*kipass.Visit, first map[string]int) ([]kipass.VisitStatus, error) {
	receivedAt := utc(db.now())
	ids := make([]string, len(uniq))
	ats := make([]time.Time, len(uniq))
	digests := make([][]byte, len(uniq))
	byID := make(map[string][]byte, len(uniq))
	for i, v := range uniq {
		ids[i], ats[i], digests[i] = v.ID, utc(v.At), digest(v)
		byID[v.ID] = digests[i]
	}

	inserted := make(map[string]struct{}, len(uniq))
	stored := make(map[string][]byte)
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		newIDs, err := claimIDs(ctx, tx, ids, ats, digests)
		if err != nil {
			return err
		}
		for _, id := range newIDs {
			inserted[id] = struct{}{}
		}
		if len(newIDs) < len(uniq) {
			var others []string
			for _, id := range ids {
				if _, ok := inserted[id]; !ok {
					others = append(others, id)
				}
			}
			rows, err := tx.Query(ctx, `SELECT id, digest FROM visit_ids WHERE id = ANY($1)`, others)
			if err != nil {
				return err
			}
			var id string
			var d []byte
			if _, err := pgx.ForEachRow(rows, []any{&id, &d}, func() error {
				stored[id] = slices.Clone(d)
				return nil
			}); err != nil {
				return err
			}
		}
		if len(newIDs) == 0 {
			return nil
		}
		fresh := make([]*kipass.Visit, 0, len(newIDs))
		for _, v := range uniq {
			if _, ok := inserted[v.ID]; ok {
				fresh = append(fresh, v)
			}
		}
		return copyVisits(ctx, tx, fresh, receivedAt)
	})
	if err != nil {
		return nil, err
	}

	statuses := make([]kipass.VisitStatus, len(visits))
	for i, v := range visits {
		var winner []byte
		if _, ok := inserted[v.ID]; ok {
			if first[v.ID] == i {
				statuses[i] = kipass.VisitStatus{ID: v.ID, Status: kipass.VisitStored}
				continue
			}
			winner = byID[v.ID]
		} else if winner = stored[v.ID]; winner == nil {
			return nil, errors.New("visit neither inserted nor stored")
		}
		if bytes.Equal(digest(v), winner) {
			statuses[i] = kipass.VisitStatus{ID: v.ID, Status: kipass.VisitDuplicate}
		} else {
			statuses[i] = kipass.VisitStatus{ID: v.ID, Status: kipass.VisitRejected, Reason: kipass.ReasonVisitConflict}
		}
	}
	return statuses, nil
}

// claimIDs inserts the ids into visit_ids and returns those it inserted, the others
// being stored already. The common case, no id stored yet, takes a COPY in a
// savepoint, as fast as a plain insert; if an id is taken the savepoint is rolled back
// and the ids go in with INSERT ... ON CONFLICT DO NOTHING RETURNING id. ids must be
// sorted, so that every node locks keys in one order.
func claimIDs(ctx context.Context, tx pgx.Tx, ids []string, ats []time.Time, digests [][]byte) ([]string, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return nil, err
	}
	_, err = sp.CopyFrom(ctx, pgx.Identifier{"visit_ids"}, []string{"id", "at", "digest"},
		pgx.CopyFromSlice(len(ids), func(i int) ([]any, error) { return []any{ids[i], ats[i], digests[i]}, nil }))
	if err == nil {
		return ids, sp.Commit(ctx)
	}
	if rerr := sp.Rollback(ctx); rerr != nil || pgCode(err) != pgUniqueViolation {
		return nil, err
	}
	rows, err := tx.Query(ctx, `INSERT INTO visit_ids (id, at, digest)
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bytea[])
		ON CONFLICT (id) DO NOTHING RETURNING id`, ids, ats, digests)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// copyVisits copies visits into the visits table with COPY.
func copyVisits(ctx context.Context, tx pgx.Tx, visits []*kipass.Visit, receivedAt time.Time) error {
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"visits"}, visitColumns, pgx.CopyFromSlice(len(visits), func(i int) ([]any, error) {
		v := visits[i]
		return []any{v.ID, v.FacilityID, v.DeviceID, utc(v.At), v.Method, v.IssuerKeyID, nullBytes(v.TokenID),
			nullBytes(v.SRef), nullBytes(v.DTag), string(v.Outcome), v.Basis, nullBytes(v.Contact), v.SafeNumber,
			receivedAt}, nil
	}))
	return err
}

// queryVisits runs a query selecting visitColumns and scans the visits.
func (db *DB) queryVisits(ctx context.Context, query string, args ...any) ([]*kipass.Visit, error) {
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	visits := []*kipass.Visit{}
	for rows.Next() {
		var v kipass.Visit
		var outcome string
		if err := rows.Scan(&v.ID, &v.FacilityID, &v.DeviceID, &v.At, &v.Method, &v.IssuerKeyID, &v.TokenID, &v.SRef,
			&v.DTag, &outcome, &v.Basis, &v.Contact, &v.SafeNumber, &v.ReceivedAt); err != nil {
			return nil, err
		}
		v.At, v.ReceivedAt, v.Outcome = v.At.UTC(), v.ReceivedAt.UTC(), kipass.Outcome(outcome)
		visits = append(visits, &v)
	}
	return visits, rows.Err()
}

// FindVisitsByDayTags returns the visits carrying any of the day tags, at or after
// from and before to, ordered by time and id.
func (db *DB) FindVisitsByDayTags(ctx context.Context, tags [][]byte, from, to time.Time) ([]*kipass.Visit, error) {
	if len(tags) == 0 {
		return []*kipass.Visit{}, nil
	}
	visits, err := db.queryVisits(ctx, selectVisits+`WHERE dtag = ANY($1) AND at >= $2 AND at < $3 ORDER BY at, id`,
		tags, from, to)
	if err != nil {
		return nil, fmt.Errorf("find visits by day tags: %w", err)
	}
	return visits, nil
}

// FindVisitsAtFacility returns the visits of a facility at or after from and before
// to, ordered by time and id.
func (db *DB) FindVisitsAtFacility(ctx context.Context, facilityID string, from, to time.Time) ([]*kipass.Visit, error) {
	visits, err := db.queryVisits(ctx, selectVisits+`WHERE facility_id = $1 AND at >= $2 AND at < $3 ORDER BY at, id`,
		facilityID, from, to)
	if err != nil {
		return nil, fmt.Errorf("find visits at facility: %w", err)
	}
	return visits, nil
}

// FindSharedTokens returns token ids seen at more than one facility at or after from,
// ordered by first sighting.
func (db *DB) FindSharedTokens(ctx context.Context, from time.Time) ([]kipass.SharedToken, error) {
	rows, err := db.pool.Query(ctx, `SELECT v.token_id, v.facility_id, MIN(v.at), MAX(v.at)
		FROM visits v
		WHERE v.at >= $1 AND v.token_id IN (
			SELECT token_id FROM visits WHERE at >= $1 AND token_id IS NOT NULL
			GROUP BY token_id HAVING COUNT(DISTINCT facility_id) > 1)
		GROUP BY v.token_id, v.facility_id
		ORDER BY v.token_id, v.facility_id`, from)
	if err != nil {
		return nil, fmt.Errorf("find shared tokens: %w", err)
	}
	shared := []kipass.SharedToken{}
	var token []byte
	var facility string
	var firstAt, lastAt time.Time
	_, err = pgx.ForEachRow(rows, []any{&token, &facility, &firstAt, &lastAt}, func() error {
		shared = addSighting(shared, slices.Clone(token), facility, firstAt.UTC(), lastAt.UTC())
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find shared tokens: %w", err)
	}
	slices.SortFunc(shared, func(a, b kipass.SharedToken) int {
		if c := a.FirstAt.Compare(b.FirstAt); c != 0 {
			return c
		}
		return bytes.Compare(a.TokenID, b.TokenID)
	})
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

// RawInsert copies visits into visits and visit_ids in transactions of batch rows
// each, one after another on one connection: no group committer, no duplicate
// detection. It measures the database's insert ceiling for the benchmark that
// compares ingest with it; the visits must have ids not yet stored.
func RawInsert(ctx context.Context, db *DB, visits []*kipass.Visit, batch int) error {
	if batch <= 0 {
		return errors.New("raw insert: batch must be positive")
	}
	var days []kipass.Date
	for _, v := range visits {
		if d := kipass.DateOf(v.At); !slices.Contains(days, d) {
			days = append(days, d)
		}
	}
	if err := db.ensurePartitions(ctx, days); err != nil {
		return fmt.Errorf("raw insert: %w", err)
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("raw insert: %w", err)
	}
	defer conn.Release()
	receivedAt := utc(db.now())
	for chunk := range slices.Chunk(visits, batch) {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"visit_ids"}, []string{"id", "at", "digest"},
				pgx.CopyFromSlice(len(chunk), func(i int) ([]any, error) {
					return []any{chunk[i].ID, utc(chunk[i].At), digest(chunk[i])}, nil
				}))
			if err != nil {
				return err
			}
			return copyVisits(ctx, tx, chunk, receivedAt)
		})
		if err != nil {
			return fmt.Errorf("raw insert: %w", err)
		}
	}
	return nil
}
