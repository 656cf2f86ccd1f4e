package issuer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kipass/kipass"
)

// The issuer's audit log is the same hash-chained kipass.AuditEntry log that central
// keeps, in the issuer's own database.
var _ kipass.AuditService = (*store)(nil)

const auditColumns = `seq, at, actor, action, case_id, reason, query, prev_hash, hash`

// AppendAudit chains e to the last entry and appends it. The write connection's
// IMMEDIATE transaction holds the write lock from reading the chain head to the commit.
func (s *store) AppendAudit(ctx context.Context, e *kipass.AuditEntry) error {
	tx, err := s.writer.BeginTx(ctx, nil)
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
		entry.At = s.now()
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
func (s *store) ListAudit(ctx context.Context, from, to time.Time) ([]*kipass.AuditEntry, error) {
	out := []*kipass.AuditEntry{}
	err := s.scanAudit(ctx, func(e *kipass.AuditEntry) error {
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
func (s *store) VerifyAudit(ctx context.Context) error {
	_, err := s.verifyAudit(ctx)
	return err
}

// verifyAudit is VerifyAudit that also counts the entries it checked.
func (s *store) verifyAudit(ctx context.Context) (int64, error) {
	var prev *kipass.AuditEntry
	var broken error
	var n int64
	err := s.scanAudit(ctx, func(e *kipass.AuditEntry) error {
		broken = e.VerifyLink(prev)
		prev = e
		n++
		return broken
	}, `SELECT `+auditColumns+` FROM audit_log ORDER BY seq`)
	if broken != nil {
		return n, broken
	} else if err != nil {
		return n, fmt.Errorf("verify audit: %w", err)
	}
	return n, nil
}

func (s *store) scanAudit(ctx context.Context, fn func(*kipass.AuditEntry) error, query string, args ...any) error {
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e := &kipass.AuditEntry{}
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.CaseID, &e.Reason, &e.Query, &e.PrevHash, &e.Hash); err != nil {
			return err
		}
		e.At = fromMicro(at)
		if e.PrevHash == nil {
			e.PrevHash = []byte{}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}
