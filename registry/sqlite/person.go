package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/registry"
)

// statements are prepared once on the writer connection and bound to each
// transaction. Rows are inserted many per statement (bulk.go): a statement costs far
// more than a row in it.
type statements struct {
	updatePerson *sql.Stmt
	deletes      []*sql.Stmt // the children of one person
	selectPerson *sql.Stmt
	bulk         map[string]*sql.Stmt // INSERTs of chunkRows rows by table; not bound
}

// selectPersonSQL reads a person and every child row in one statement, so that the
// answer is one consistent snapshot without an explicit read transaction. Column k
// says what the row is: 0 the person, 1 a dose, 2 a test, 3 a recovery, 4 an exemption.
const selectPersonSQL = `
SELECT 0 AS k, birth_date, updated_at, NULL, NULL FROM persons WHERE person_id = ?1
UNION ALL SELECT 1, day, NULL, product, NULL FROM doses WHERE person_id = ?1
UNION ALL SELECT 2, at, NULL, kind, result FROM tests WHERE person_id = ?1
UNION ALL SELECT 3, day, NULL, NULL, NULL FROM recoveries WHERE person_id = ?1
UNION ALL SELECT 4, from_day, NULL, kind, NULL FROM exemptions WHERE person_id = ?1
ORDER BY 1, 2`

func prepare(db *sql.DB) (*statements, error) {
	st := &statements{}
	var errs []error
	p := func(q string) *sql.Stmt {
		s, err := db.Prepare(q)
		errs = append(errs, err)
		return s
	}
	st.updatePerson = p(`UPDATE persons SET birth_date = ?, updated_at = ? WHERE person_id = ?`)
	for _, t := range []string{"doses", "tests", "recoveries", "exemptions"} {
		st.deletes = append(st.deletes, p(`DELETE FROM `+t+` WHERE person_id = ?`))
	}
	st.selectPerson = p(selectPersonSQL)
	st.bulk = map[string]*sql.Stmt{}
	for _, t := range tables {
		st.bulk[t.name] = p(t.sql(chunkRows))
	}
	if err := errors.Join(errs...); err != nil {
		st.close()
		return nil, err
	}
	return st, nil
}

// bind returns the statements bound to tx; they close with it.
func (st *statements) bind(ctx context.Context, tx *sql.Tx) *statements {
	out := &statements{updatePerson: tx.StmtContext(ctx, st.updatePerson), selectPerson: tx.StmtContext(ctx, st.selectPerson)}
	for _, d := range st.deletes {
		out.deletes = append(out.deletes, tx.StmtContext(ctx, d))
	}
	return out
}

func (st *statements) close() {
	all := append([]*sql.Stmt{st.updatePerson, st.selectPerson}, st.deletes...)
	for _, s := range st.bulk {
		all = append(all, s)
	}
	for _, s := range all {
		if s != nil {
			s.Close()
		}
	}
}

// Person returns the record of id, or an ENOTFOUND error.
func (s *Store) Person(ctx context.Context, id string) (*registry.Person, error) {
	rows, err := s.read.QueryContext(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("select person: %w", err)
	}
	return scanPerson(id, rows)
}

// scanPerson reads the rows of selectPersonSQL and closes them.
func scanPerson(id string, rows *sql.Rows) (*registry.Person, error) {
	defer rows.Close()
	var p *registry.Person
	for rows.Next() {
		var (
			k        int
			a, b     sql.NullInt64
			c, d     sql.NullString
			children = p != nil
		)
		if err := rows.Scan(&k, &a, &b, &c, &d); err != nil {
			return nil, fmt.Errorf("scan person: %w", err)
		}
		if k != 0 && !children {
			return nil, fmt.Errorf("scan person: child rows without a person")
		}
		switch k {
		case 0:
			p = &registry.Person{PersonID: id, BirthDate: kipass.Date(a.Int64), UpdatedAt: time.UnixMicro(b.Int64).UTC()}
		case 1:
			p.Doses = append(p.Doses, kipass.Dose{Date: kipass.Date(a.Int64), Product: c.String})
		case 2:
			p.Tests = append(p.Tests, kipass.Test{Kind: c.String, Result: d.String, At: time.Unix(a.Int64, 0).In(kipass.KST)})
		case 3:
			p.Recoveries = append(p.Recoveries, kipass.Date(a.Int64))
		case 4:
			e := registry.Exemption{Kind: c.String}
			if a.Valid {
				from := kipass.Date(a.Int64)
				e.From = &from
			}
			p.Exemptions = append(p.Exemptions, e)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan person: %w", err)
	}
	if p == nil {
		return nil, kipass.Errorf(kipass.ENOTFOUND, "person not found")
	}
	p.Normalize() // tests with the same second order by kind
	return p, nil
}

// PutPerson creates or replaces one record, which the caller has validated, and sets
// its UpdatedAt.
func (s *Store) PutPerson(ctx context.Context, p *registry.Person) (created bool, err error) {
	err = s.write(ctx, func(w *txWriter) error {
		created, err = w.put(p)
		return err
	})
	return created, err
}

// PutPersons creates or replaces the records in one transaction: all are stored or
// none. The caller has validated them; an id given twice is an error.
func (s *Store) PutPersons(ctx context.Context, ps []*registry.Person) error {
	return s.write(ctx, func(w *txWriter) error {
		_, err := w.putAll(ps)
		return err
	})
}

// UpdatePerson applies fn to the current record inside one write transaction and
// stores the result when fn reports a change.
func (s *Store) UpdatePerson(ctx context.Context, id string, fn func(*registry.Person) (bool, error)) (*registry.Person, error) {
	var p *registry.Person
	err := s.write(ctx, func(w *txWriter) error {
		rows, err := w.st.selectPerson.QueryContext(ctx, id)
		if err != nil {
			return fmt.Errorf("select person: %w", err)
		}
		if p, err = scanPerson(id, rows); err != nil {
			return err
		}
		changed, err := fn(p)
		if err != nil || !changed {
			return err
		}
		if p.PersonID != id {
			return fmt.Errorf("update person: the update changed the person id")
		}
		_, err = w.put(p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Count returns the number of person records.
func (s *Store) Count(ctx context.Context) (int, error) {
	var n int
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM persons`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count persons: %w", err)
	}
	return n, nil
}

// unavailable wraps a failure to begin or commit: the database is locked for too long,
// full or gone. The caller may retry later.
func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w (%w)", op, kipass.Errorf(kipass.EUNAVAILABLE, "registry database unavailable"), err)
}
