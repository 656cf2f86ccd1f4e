package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kipass/kipass"
)

const auditColumns = `seq, at, actor, action, case_id, reason, query, prev_hash, hash`

// AppendAudit chains e to the last entry and appends it. A transaction-scoped
// advisory lock serializes appends from every node, from the read of the chain head
// to the commit.
func (db *DB) AppendAudit(ctx context.Context, e *kipass.AuditEntry) error {
	entry := *e
	if entry.At.IsZero() {
		entry.At = db.now()
	}
	entry.At = utc(entry.At)
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockAudit); err != nil {
			return err
		}
		var seq int64
		var prev []byte
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		entry.Seq, entry.PrevHash = seq+1, prev
		if entry.PrevHash == nil {
			entry.PrevHash = []byte{}
		}
		entry.Hash = entry.ComputeHash()
		_, err = tx.Exec(ctx, `INSERT INTO audit_log (`+auditColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			entry.Seq, entry.At, entry.Actor, entry.Action, entry.CaseID, entry.Reason, entry.Query, entry.PrevHash, entry.Hash)
		return err
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	*e = entry
	return nil
}

// ListAudit returns the entries at or after from and before to, by seq.
func (db *DB) ListAudit(ctx context.Context, from, to time.Time) ([]*kipass.AuditEntry, error) {
	out := []*kipass.AuditEntry{}
	err := db.scanAudit(ctx, func(e *kipass.AuditEntry) error {
		out = append(out, e)
		return nil
	}, `SELECT `+auditColumns+` FROM audit_log WHERE at >= $1 AND at < $2 ORDER BY seq`, from, to)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}

// VerifyAudit walks the chain from the first entry and returns a
// *kipass.AuditChainError at the first entry that does not verify.
func (db *DB) VerifyAudit(ctx context.Context) error {
	var prev *kipass.AuditEntry
	var broken error
	err := db.scanAudit(ctx, func(e *kipass.AuditEntry) error {
		broken = e.VerifyLink(prev)
		prev = e
		return broken
	}, `SELECT `+auditColumns+` FROM audit_log ORDER BY seq`)
	if broken != nil {
		return broken
	} else if err != nil {
		return fmt.Errorf("verify audit: %w", err)
	}
	return nil
}

// scanAudit runs query and calls fn for each entry until fn returns an error.
func (db *DB) scanAudit(ctx context.Context, fn func(*kipass.AuditEntry) error, query string, args ...any) error {
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var e kipass.AuditEntry
		if err := rows.Scan(&e.Seq, &e.At, &e.Actor, &e.Action, &e.CaseID, &e.Reason, &e.Query, &e.PrevHash, &e.Hash); err != nil {
			return err
		}
		e.At = e.At.UTC()
		if e.PrevHash == nil {
			e.PrevHash = []byte{}
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// CreateNotice stores n; see kipass.NoticeService.
func (db *DB) CreateNotice(ctx context.Context, n *kipass.Notice) error {
	if n.ID == "" {
		n.ID = newID()
	}
	if n.CreatedAt.IsZero() {
		n.CreatedAt = db.now()
	}
	n.CreatedAt = n.CreatedAt.Truncate(time.Microsecond)
	var ended *time.Time
	if n.EndedAt != nil {
		t := utc(*n.EndedAt)
		ended = &t
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO notices (id, level, message_ko, message_en, created_at, ended_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, n.ID, n.Level, n.MessageKO, n.MessageEN, utc(n.CreatedAt), ended)
	if err != nil {
		return constraintErr(err, "create notice", map[string]string{"notices_pkey": "a notice with this id already exists"})
	}
	return nil
}

// EndNotice ends the notice at at; ending it again keeps the first end.
func (db *DB) EndNotice(ctx context.Context, id string, at time.Time) error {
	tag, err := db.pool.Exec(ctx, `UPDATE notices SET ended_at = COALESCE(ended_at, $1) WHERE id = $2`, utc(at), id)
	if err != nil {
		return fmt.Errorf("end notice: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return kipass.Errorf(kipass.ENOTFOUND, "notice not found")
	}
	return nil
}

// ListActiveNotices returns the notices not ended, oldest first.
func (db *DB) ListActiveNotices(ctx context.Context) ([]*kipass.Notice, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, level, message_ko, message_en, created_at
		FROM notices WHERE ended_at IS NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list notices: %w", err)
	}
	out := []*kipass.Notice{}
	var n kipass.Notice
	_, err = pgx.ForEachRow(rows, []any{&n.ID, &n.Level, &n.MessageKO, &n.MessageEN, &n.CreatedAt}, func() error {
		c := n
		c.CreatedAt = n.CreatedAt.UTC()
		out = append(out, &c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list notices: %w", err)
	}
	return out, nil
}
