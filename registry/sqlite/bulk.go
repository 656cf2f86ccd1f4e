package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/kipass/kipass/registry"
)

// chunkRows is the most rows one INSERT carries (at most 4 parameters a row, far below
// SQLite's limit of 32766).
const chunkRows = 200

// table is the multi-row INSERT of one table.
type table struct {
	name, columns string
	width         int    // parameters a row
	suffix        string // after the VALUES
}

var (
	personsTable    = table{"persons", "person_id, birth_date, updated_at", 3, " ON CONFLICT (person_id) DO NOTHING RETURNING person_id"}
	dosesTable      = table{"doses", "person_id, day, product", 3, ""}
	testsTable      = table{"tests", "person_id, at, kind, result", 4, ""}
	recoveriesTable = table{"recoveries", "person_id, day", 2, ""}
	exemptionsTable = table{"exemptions", "person_id, kind, from_day", 3, ""}
)

// sql returns the INSERT of rows rows.
func (t table) sql(rows int) string {
	row := "(" + strings.Repeat("?, ", t.width-1) + "?)"
	var b strings.Builder
	b.WriteString("INSERT INTO " + t.name + " (" + t.columns + ") VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString(t.suffix)
	return b.String()
}

// txWriter writes within one transaction.
type txWriter struct {
	ctx context.Context
	s   *Store
	tx  *sql.Tx
	st  *statements // bound to tx
	now time.Time
}

// write runs fn in one IMMEDIATE transaction on the writer and commits it.
func (s *Store) write(ctx context.Context, fn func(w *txWriter) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return unavailable("begin", err)
	}
	defer tx.Rollback()
	if err := fn(&txWriter{ctx: ctx, s: s, tx: tx, st: s.stmts.bind(ctx, tx), now: s.opts.Now()}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return unavailable("commit", err)
	}
	return nil
}

// tables are the tables written with multi-row INSERTs.
var tables = []table{personsTable, dosesTable, testsTable, recoveriesTable, exemptionsTable}

// stmt returns the INSERT of rows rows bound to the transaction. Full chunks use the
// statement prepared at Open (the writer's one connection is the transaction's now);
// a shorter last chunk is prepared in the transaction.
func (w *txWriter) stmt(t table, rows int) (*sql.Stmt, error) {
	if rows != chunkRows {
		return w.tx.PrepareContext(w.ctx, t.sql(rows))
	}
	return w.tx.StmtContext(w.ctx, w.s.stmts.bulk[t.name]), nil
}

// insert inserts the rows whose parameters are args, chunkRows at a time; each
// returned row's first column is passed to returned.
func (w *txWriter) insert(t table, args []any, returned func(string)) error {
	for len(args) > 0 {
		n := min(len(args)/t.width, chunkRows)
		st, err := w.stmt(t, n)
		if err != nil {
			return fmt.Errorf("insert %s: %w", t.name, err)
		}
		chunk := args[:n*t.width]
		args = args[n*t.width:]
		if returned == nil {
			_, err = st.ExecContext(w.ctx, chunk...)
		} else {
			err = queryStrings(w.ctx, st, chunk, returned)
		}
		if err != nil {
			return fmt.Errorf("insert %s: %w", t.name, err)
		}
	}
	return nil
}

func queryStrings(ctx context.Context, st *sql.Stmt, args []any, fn func(string)) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		fn(s)
	}
	return rows.Err()
}

// put writes one record.
func (w *txWriter) put(p *registry.Person) (created bool, err error) {
	n, err := w.putAll([]*registry.Person{p})
	return n == 1, err
}

// putAll writes records and returns how many were new. New persons take one insert per
// chunk of rows; a known one has its row updated and its children deleted first.
func (w *txWriter) putAll(ps []*registry.Person) (created int, err error) {
	ts := w.now.UnixMicro()
	ids := make(map[string]bool, len(ps)) // id -> created
	args := make([]any, 0, len(ps)*personsTable.width)
	for _, p := range ps {
		if _, dup := ids[p.PersonID]; dup {
			return 0, fmt.Errorf("put persons: the person id %q is given twice", p.PersonID)
		}
		ids[p.PersonID] = false
		args = append(args, p.PersonID, int64(p.BirthDate), ts)
	}
	if err := w.insert(personsTable, args, func(id string) { ids[id] = true }); err != nil {
		return 0, err
	}
	var doses, tests, recoveries, exemptions []any
	for _, p := range ps {
		if ids[p.PersonID] {
			created++
		} else if err := w.replace(p, ts); err != nil {
			return 0, err
		}
		for _, d := range p.Doses {
			doses = append(doses, p.PersonID, int64(d.Date), d.Product)
		}
		for _, t := range p.Tests {
			tests = append(tests, p.PersonID, t.At.Unix(), t.Kind, t.Result)
		}
		for _, r := range p.Recoveries {
			recoveries = append(recoveries, p.PersonID, int64(r))
		}
		for _, e := range p.Exemptions {
			var from any
			if e.From != nil {
				from = int64(*e.From)
			}
			exemptions = append(exemptions, p.PersonID, e.Kind, from)
		}
	}
	for _, x := range []struct {
		t    table
		args []any
	}{{dosesTable, doses}, {testsTable, tests}, {recoveriesTable, recoveries}, {exemptionsTable, exemptions}} {
		if err := w.insert(x.t, x.args, nil); err != nil {
			return 0, err
		}
	}
	for _, p := range ps {
		p.UpdatedAt = time.UnixMicro(ts).UTC()
	}
	return created, nil
}

// replace updates a known person's row and deletes its children.
func (w *txWriter) replace(p *registry.Person, ts int64) error {
	if _, err := w.st.updatePerson.ExecContext(w.ctx, int64(p.BirthDate), ts, p.PersonID); err != nil {
		return fmt.Errorf("update person: %w", err)
	}
	for _, d := range w.st.deletes {
		if _, err := d.ExecContext(w.ctx, p.PersonID); err != nil {
			return fmt.Errorf("replace person: %w", err)
		}
	}
	return nil
}
