package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kipass/kipass"
)

// Visits live in one partition per KST day, named visits_pYYYYMMDD and covering
// [00:00 KST, 24:00 KST). Retention drops whole partitions.

// partitionPrefix starts the name of every visits partition.
const partitionPrefix = "visits_p"

// partitionName returns the name of day's partition.
func partitionName(day kipass.Date) string {
	return partitionPrefix + strings.ReplaceAll(day.String(), "-", "")
}

// parsePartition returns the day of a partition name.
func parsePartition(name string) (kipass.Date, bool) {
	s, ok := strings.CutPrefix(name, partitionPrefix)
	if !ok || len(s) != 8 {
		return 0, false
	}
	t, err := time.Parse("20060102", s)
	if err != nil {
		return 0, false
	}
	return kipass.NewDate(t.Date()), true
}

// ensurePartitions creates the partitions of the days that lack one. It runs in its
// own transaction, serialized across nodes by an advisory lock, before the ingest
// transaction that needs the days.
func (db *DB) ensurePartitions(ctx context.Context, days []kipass.Date) error {
	db.partMu.Lock()
	var missing []kipass.Date
	for _, d := range days {
		if !db.partitions[d] && !slices.Contains(missing, d) {
			missing = append(missing, d)
		}
	}
	db.partMu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockPartition); err != nil {
			return err
		}
		for _, d := range missing {
			name := partitionName(d)
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
				return err
			}
			if exists {
				continue
			}
			// The bounds are formatted here from a Date, never from input.
			q := fmt.Sprintf(`CREATE TABLE %s PARTITION OF visits FOR VALUES FROM ('%s') TO ('%s')`,
				pgx.Identifier{name}.Sanitize(), d.Start().Format(time.RFC3339), d.End().Format(time.RFC3339))
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create visit partitions: %w", err)
	}
	db.partMu.Lock()
	for _, d := range missing {
		db.partitions[d] = true
	}
	db.partMu.Unlock()
	return nil
}

// forgetPartitions clears the cache of known partitions, after a partition is
// dropped here or found missing (dropped by another node).
func (db *DB) forgetPartitions() {
	db.partMu.Lock()
	clear(db.partitions)
	db.partMu.Unlock()
}

// PurgeVisits destroys every visit before cutoff: it drops the partitions of days that
// end at or before cutoff, deletes the earlier rows of the day cutoff falls in in
// chunks of purgeChunk, and forgets the ids of the destroyed visits. It reports how
// many visits it destroyed.
func (db *DB) PurgeVisits(ctx context.Context, cutoff time.Time) (int64, error) {
	rows, err := db.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'visits'::regclass`)
	if err != nil {
		return 0, fmt.Errorf("purge visits: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("purge visits: %w", err)
	}
	var total int64
	for _, name := range names {
		day, ok := parsePartition(name)
		if !ok {
			continue
		}
		switch {
		case !day.End().After(cutoff):
			n, err := db.dropPartition(ctx, name)
			total += n
			if err != nil {
				return total, err
			}
		case day.Start().Before(cutoff):
			n, err := db.deleteBefore(ctx, pgx.Identifier{name}.Sanitize(), "ctid", cutoff)
			total += n
			if err != nil {
				return total, fmt.Errorf("purge visits: %w", err)
			}
		}
	}
	if _, err := db.deleteBefore(ctx, "visit_ids", "id", cutoff); err != nil {
		return total, fmt.Errorf("purge visit ids: %w", err)
	}
	return total, nil
}

// dropPartition counts and drops one partition in one transaction; the exclusive
// lock makes the count exact.
func (db *DB) dropPartition(ctx context.Context, name string) (int64, error) {
	ident := pgx.Identifier{name}.Sanitize()
	var n int64
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE `+ident+` IN ACCESS EXCLUSIVE MODE`); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+ident).Scan(&n); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DROP TABLE `+ident)
		return err
	})
	db.forgetPartitions()
	if err != nil {
		return 0, fmt.Errorf("purge visits: drop partition: %w", err)
	}
	return n, nil
}

// deleteBefore deletes the rows of table with at before cutoff, purgeChunk rows per
// statement (each its own transaction), and reports how many. key is a column that
// identifies a row within table.
func (db *DB) deleteBefore(ctx context.Context, table, key string, cutoff time.Time) (int64, error) {
	q := fmt.Sprintf(`DELETE FROM %[1]s WHERE %[2]s = ANY(ARRAY(SELECT %[2]s FROM %[1]s WHERE at < $1 LIMIT %[3]d))`,
		table, key, purgeChunk)
	var total int64
	for {
		tag, err := db.pool.Exec(ctx, q, cutoff)
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < purgeChunk {
			return total, nil
		}
	}
}
