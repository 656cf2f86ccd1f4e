package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kipass/kipass"
)

const auditColumns = `seq, at, actor, action, case_id, reason, query, prev_hash, hash`

// AppendAudit chains e to the last entry and appends it. The write connection's
// IMMEDIATE transaction holds the database's write lock from the read of the chain
// head to the commit, so appends from any connection or process serialize.
func (db *DB) AppendAudit(ctx context.Context, e *kipass.AuditEntry) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	defer tx.Rollback()
	var seq int64
	var prev []byte
	err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("append audit: %w", err)
	}
	entry := *e
	if entry.At.IsZero() {
		entry.At = db.now()
	}
	entry.At = entry.At.Truncate(time.Microsecond).UTC()
	entry.Seq, entry.PrevHash = seq+1, prev
	if entry.PrevHash == nil {
		entry.PrevHash = []byte{}
	}
	entry.Hash = entry.ComputeHash()
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		entry.Seq, micro(entry.At), entry.Actor, entry.Action, entry.CaseID, entry.Reason, entry.Query,
		entry.PrevHash, entry.Hash); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if err := tx.Commit(); err != nil {
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
	}, `SELECT `+auditColumns+` FROM audit_log WHERE at >= ? AND at < ? ORDER BY seq`, micro(from), micro(to))
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
	rows, err := db.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var e kipass.AuditEntry
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.CaseID, &e.Reason, &e.Query, &e.PrevHash, &e.Hash); err != nil {
			return err
		}
		e.At = fromMicro(at)
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
	_, err := db.writer.ExecContext(ctx, `INSERT INTO notices (id, level, message_ko, message_en, created_at, ended_at)
		VALUES (?, ?, ?, ?, ?, ?)`, n.ID, n.Level, n.MessageKO, n.MessageEN, micro(n.CreatedAt), nullMicro(n.EndedAt))
	if err != nil {
		return constraintErr(err, "create notice", map[string]string{"id": "a notice with this id already exists"})
	}
	return nil
}

// EndNotice ends the notice at at; ending it again keeps the first end.
func (db *DB) EndNotice(ctx context.Context, id string, at time.Time) error {
	res, err := db.writer.ExecContext(ctx, `UPDATE notices SET ended_at = COALESCE(ended_at, ?) WHERE id = ?`, micro(at), id)
	if err != nil {
		return fmt.Errorf("end notice: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("end notice: %w", err)
	} else if n == 0 {
		return kipass.Errorf(kipass.ENOTFOUND, "notice not found")
	}
	return nil
}

// ListActiveNotices returns the notices not ended, oldest first.
func (db *DB) ListActiveNotices(ctx context.Context) ([]*kipass.Notice, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT id, level, message_ko, message_en, created_at
		FROM notices WHERE ended_at IS NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list notices: %w", err)
	}
	defer rows.Close()
	out := []*kipass.Notice{}
	for rows.Next() {
		var n kipass.Notice
		var createdAt int64
		if err := rows.Scan(&n.ID, &n.Level, &n.MessageKO, &n.MessageEN, &createdAt); err != nil {
			return nil, fmt.Errorf("list notices: %w", err)
		}
		n.CreatedAt = fromMicro(createdAt)
		out = append(out, &n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list notices: %w", err)
	}
	return out, nil
}
