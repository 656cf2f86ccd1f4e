// Package outbox is a scanner's durable local outbox: every admitted visit is written
// here (SQLite, WAL, synchronous=FULL) before the visitor is waved in, and removed only
// when central has acknowledged it. A Syncer uploads in batches with backoff, jitter,
// Retry-After and fail-over between central URLs. The kiosk CLI and the load generator
// use it; the browser scanner does the same in IndexedDB.
package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/kipass/kipass"
)

const schema = `
CREATE TABLE IF NOT EXISTS outbox (
	seq   INTEGER PRIMARY KEY AUTOINCREMENT,
	id    TEXT NOT NULL UNIQUE,
	visit BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
	id     TEXT PRIMARY KEY,
	visit  BLOB NOT NULL,
	reason TEXT NOT NULL,
	at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
);`

// Outbox is a durable queue of visits waiting for central's acknowledgement.
type Outbox struct {
	db *sql.DB
}

// Open opens (creating if needed) the outbox database at path.
func Open(path string) (*Outbox, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("outbox: open: %w", err)
	}
	db.SetMaxOpenConns(1) // one connection: writes are serialised and cheap
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox: %s: %w", path, err)
	}
	return &Outbox{db: db}, nil
}

// Close closes the database.
func (o *Outbox) Close() error { return o.db.Close() }

// Add stores a visit durably. Adding a visit id that is already queued is a no-op.
func (o *Outbox) Add(ctx context.Context, v *kipass.Visit) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = o.db.ExecContext(ctx, `INSERT INTO outbox (id, visit) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, v.ID, b)
	if err != nil {
		return fmt.Errorf("outbox: add: %w", err)
	}
	return nil
}

// Next returns up to n of the oldest queued visits.
func (o *Outbox) Next(ctx context.Context, n int) ([]*kipass.Visit, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT visit FROM outbox ORDER BY seq LIMIT ?`, n)
	if err != nil {
		return nil, fmt.Errorf("outbox: next: %w", err)
	}
	defer rows.Close()
	var out []*kipass.Visit
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		v := &kipass.Visit{}
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("outbox: stored visit: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Ack applies central's per-visit answers: stored and duplicate visits leave the
// outbox; rejected ones move to the rejected list with their reason, so that the
// owner can see them (they are never silently dropped). It reports how many left.
func (o *Outbox) Ack(ctx context.Context, statuses []kipass.VisitStatus, now time.Time) (acked, rejected int, err error) {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	for _, s := range statuses {
		switch s.Status {
		case kipass.VisitStored, kipass.VisitDuplicate:
			res, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ?`, s.ID)
			if err != nil {
				return 0, 0, err
			}
			n, _ := res.RowsAffected()
			acked += int(n)
		case kipass.VisitRejected:
			if _, err := tx.ExecContext(ctx, `INSERT INTO rejected (id, visit, reason, at)
				SELECT id, visit, ?, ? FROM outbox WHERE id = ? ON CONFLICT (id) DO NOTHING`, s.Reason, now.Unix(), s.ID); err != nil {
				return 0, 0, err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ?`, s.ID); err != nil {
				return 0, 0, err
			}
			rejected++
		}
	}
	return acked, rejected, tx.Commit()
}

// Len returns the number of queued visits.
func (o *Outbox) Len(ctx context.Context) (int, error) {
	var n int
	err := o.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n)
	return n, err
}

// Rejection is a visit central refused, kept for the owner to see.
type Rejection struct {
	Visit  *kipass.Visit
	Reason string
	At     time.Time
}

// Rejected returns the visits central refused.
func (o *Outbox) Rejected(ctx context.Context) ([]Rejection, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT visit, reason, at FROM rejected ORDER BY at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Rejection
	for rows.Next() {
		var b []byte
		var r Rejection
		var at int64
		if err := rows.Scan(&b, &r.Reason, &at); err != nil {
			return nil, err
		}
		r.Visit, r.At = &kipass.Visit{}, time.Unix(at, 0)
		if err := json.Unmarshal(b, r.Visit); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ErrNoState is returned by State for a key never set.
var ErrNoState = errors.New("outbox: no such state")

// SetState stores a small value beside the outbox (the device credential, the trust
// bundle), durably.
func (o *Outbox) SetState(ctx context.Context, key string, value []byte) error {
	_, err := o.db.ExecContext(ctx, `INSERT INTO state (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

// State returns a value stored with SetState, or ErrNoState.
func (o *Outbox) State(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := o.db.QueryRowContext(ctx, `SELECT value FROM state WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoState
	}
	return v, err
}
