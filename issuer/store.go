package issuer

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/issuer/subject"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DBFile is the name of the issuer's database in its data directory.
const DBFile = "issuer.db"

// store is the issuer's SQLite database. SQL stays in this file and audit_store.go;
// callers see domain errors.
type store struct {
	writer *sql.DB // one connection: writes serialize, transactions begin IMMEDIATE
	reader *sql.DB
	now    func() time.Time
}

// visitor is an enrolled visitor.
type visitor struct {
	ID        string
	Subject   subject.ID
	PersonID  string
	Name      string
	Phone     string
	BirthDate kipass.Date
	CreatedAt time.Time
	UpdatedAt time.Time
}

// enrolment is a pending enrolment, waiting for its identity check.
type enrolment struct {
	ID        string
	Name      string
	Phone     string
	BirthDate kipass.Date
	PersonID  string
	Attempts  int
	CreatedAt time.Time
	ExpiresAt time.Time
}

func openStore(path string, now func() time.Time) (*store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("issuer: invalid database path %q", path)
	}
	common := "&_pragma=secure_delete(ON)&_foreign_keys=1&_busy_timeout=5000"
	s := &store{now: now}
	var err error
	if s.writer, err = sql.Open("sqlite", path+"?_txlock=immediate&_journal_mode=WAL&_synchronous=FULL"+common); err != nil {
		return nil, fmt.Errorf("issuer: open database: %w", err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetConnMaxIdleTime(0)
	if err := s.migrate(context.Background()); err != nil {
		s.writer.Close()
		return nil, err
	}
	if s.reader, err = sql.Open("sqlite", path+"?_query_only=1"+common); err != nil {
		s.writer.Close()
		return nil, fmt.Errorf("issuer: open database: %w", err)
	}
	s.reader.SetMaxOpenConns(4)
	s.reader.SetMaxIdleConns(4)
	return s, nil
}

func (s *store) close() error { return errors.Join(s.reader.Close(), s.writer.Close()) }

func migrationNames() ([]string, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	sort.Strings(names)
	return names, err
}

// migrate applies the embedded migrations not applied yet, in order, one transaction
// each.
func (s *store) migrate(ctx context.Context) error {
	if _, err := s.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("issuer: migrations: %w", err)
	}
	names, err := migrationNames()
	if err != nil {
		return fmt.Errorf("issuer: migrations: %w", err)
	}
	for _, name := range names {
		if err := s.apply(ctx, name); err != nil {
			return fmt.Errorf("issuer: migration %s: %w", name, err)
		}
	}
	return nil
}

func (s *store) apply(ctx context.Context, name string) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE name = ?`, name).Scan(&n); err != nil || n > 0 {
		return err
	}
	body, err := migrationFS.ReadFile(name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`, name, micro(s.now())); err != nil {
		return err
	}
	return tx.Commit()
}

// ready reports whether the database answers and its schema is current.
func (s *store) ready(ctx context.Context) error {
	want, err := migrationNames()
	if err != nil {
		return err
	}
	var have int
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&have); err != nil {
		return kipass.Errorf(kipass.EUNAVAILABLE, "database unreadable")
	}
	if have != len(want) {
		return kipass.Errorf(kipass.EUNAVAILABLE, "database schema at version %d, want %d", have, len(want))
	}
	return nil
}

func micro(t time.Time) int64 { return t.UnixMicro() }

func fromMicro(v int64) time.Time { return time.UnixMicro(v).UTC() }

// newID returns a random id of 20 base32 characters (100 bits).
func newID() string {
	var b [13]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:20]
}

func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// createEnrolment stores a pending enrolment.
func (s *store) createEnrolment(ctx context.Context, e *enrolment) error {
	_, err := s.writer.ExecContext(ctx, `INSERT INTO enrolments (id, name, phone, birth_date, person_id, attempts, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, 0, ?, ?)`, e.ID, e.Name, e.Phone, e.BirthDate.String(), e.PersonID, micro(e.CreatedAt), micro(e.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create enrolment: %w", err)
	}
	return nil
}

// countAttempt counts one verification attempt of a live enrolment and returns it with
// the attempts made so far, this one included. An unknown or expired enrolment is
// ENOTFOUND.
func (s *store) countAttempt(ctx context.Context, id string, now time.Time) (*enrolment, error) {
	e := &enrolment{ID: id}
	var birth string
	var created, expires int64
	err := s.writer.QueryRowContext(ctx, `UPDATE enrolments SET attempts = attempts + 1 WHERE id = ? AND expires_at > ?
		RETURNING name, phone, birth_date, person_id, attempts, created_at, expires_at`, id, micro(now)).
		Scan(&e.Name, &e.Phone, &birth, &e.PersonID, &e.Attempts, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kipass.Errorf(kipass.ENOTFOUND, "no pending enrolment with this id: it was completed, has expired or never existed")
	} else if err != nil {
		return nil, fmt.Errorf("count attempt: %w", err)
	}
	if e.BirthDate, err = kipass.ParseDate(birth); err != nil {
		return nil, fmt.Errorf("count attempt: %w", err)
	}
	e.CreatedAt, e.ExpiresAt = fromMicro(created), fromMicro(expires)
	return e, nil
}

func (s *store) deleteEnrolment(ctx context.Context, id string) error {
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM enrolments WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete enrolment: %w", err)
	}
	return nil
}

// enrol stores the visitor of a completed enrolment and a wallet credential for it.
// A person already enrolled keeps their visitor id and subject id; their name, phone
// and birth date are updated. The pending enrolment, if any, is deleted in the same
// transaction. v.ID, v.Subject and the times are filled in.
func (s *store) enrol(ctx context.Context, v *visitor, tokenHash []byte, enrolmentID string) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("enrol: %w", err)
	}
	defer tx.Rollback()
	now := micro(v.UpdatedAt)
	var id string
	var subj []byte
	var created int64
	err = tx.QueryRowContext(ctx, `SELECT id, subject_id, created_at FROM visitors WHERE person_id = ?`, v.PersonID).Scan(&id, &subj, &created)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		v.ID, v.Subject, v.CreatedAt = newID(), subject.NewID(), v.UpdatedAt
		_, err = tx.ExecContext(ctx, `INSERT INTO visitors (id, subject_id, person_id, name, phone, birth_date, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, v.ID, v.Subject[:], v.PersonID, v.Name, v.Phone, v.BirthDate.String(), now, now)
	case err == nil:
		v.ID, v.CreatedAt = id, fromMicro(created)
		if v.Subject, err = subject.IDFromBytes(subj); err != nil {
			return fmt.Errorf("enrol: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE visitors SET name = ?, phone = ?, birth_date = ?, updated_at = ? WHERE id = ?`,
			v.Name, v.Phone, v.BirthDate.String(), now, v.ID)
	}
	if err != nil {
		return fmt.Errorf("enrol: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO wallet_tokens (hash, visitor_id, created_at) VALUES (?, ?, ?)`, tokenHash, v.ID, now); err != nil {
		return fmt.Errorf("enrol: %w", err)
	}
	if enrolmentID != "" {
		if _, err := tx.ExecContext(ctx, `DELETE FROM enrolments WHERE id = ?`, enrolmentID); err != nil {
			return fmt.Errorf("enrol: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("enrol: %w", err)
	}
	return nil
}

const visitorColumns = `v.id, v.subject_id, v.person_id, v.name, v.phone, v.birth_date, v.created_at, v.updated_at`

func (s *store) visitors(ctx context.Context, query string, args ...any) ([]*visitor, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+visitorColumns+` FROM visitors v `+query, args...)
	if err != nil {
		return nil, fmt.Errorf("find visitors: %w", err)
	}
	defer rows.Close()
	var out []*visitor
	for rows.Next() {
		v := &visitor{}
		var subj []byte
		var birth string
		var created, updated int64
		if err := rows.Scan(&v.ID, &subj, &v.PersonID, &v.Name, &v.Phone, &birth, &created, &updated); err != nil {
			return nil, fmt.Errorf("find visitors: %w", err)
		}
		if v.Subject, err = subject.IDFromBytes(subj); err != nil {
			return nil, fmt.Errorf("find visitors: %w", err)
		}
		if v.BirthDate, err = kipass.ParseDate(birth); err != nil {
			return nil, fmt.Errorf("find visitors: %w", err)
		}
		v.CreatedAt, v.UpdatedAt = fromMicro(created), fromMicro(updated)
		out = append(out, v)
	}
	return out, rows.Err()
}

func (s *store) oneVisitor(ctx context.Context, query string, args ...any) (*visitor, error) {
	vs, err := s.visitors(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, kipass.Errorf(kipass.ENOTFOUND, "no such visitor")
	}
	return vs[0], nil
}

func (s *store) visitorByToken(ctx context.Context, hash []byte) (*visitor, error) {
	return s.oneVisitor(ctx, `JOIN wallet_tokens t ON t.visitor_id = v.id WHERE t.hash = ?`, hash)
}

func (s *store) visitorBySubject(ctx context.Context, id subject.ID) (*visitor, error) {
	return s.oneVisitor(ctx, `WHERE v.subject_id = ?`, id[:])
}

func (s *store) visitorByPersonID(ctx context.Context, personID string) (*visitor, error) {
	return s.oneVisitor(ctx, `WHERE v.person_id = ?`, personID)
}

func (s *store) visitorsByPhone(ctx context.Context, phone string) ([]*visitor, error) {
	return s.visitors(ctx, `WHERE v.phone = ? ORDER BY v.id`, phone)
}

// visitorBySafeNumber returns the visitor a safe number was issued to, current or
// retired, as long as retention keeps the mapping.
func (s *store) visitorBySafeNumber(ctx context.Context, number string) (*visitor, error) {
	return s.oneVisitor(ctx, `JOIN safe_numbers n ON n.visitor_id = v.id WHERE n.number = ?`, number)
}

// safeNumber is a visitor's safe number and when it was issued.
type safeNumber struct {
	Number   string
	IssuedAt time.Time
}

// currentSafeNumber returns the visitor's current safe number, or ENOTFOUND.
func (s *store) currentSafeNumber(ctx context.Context, visitorID string) (*safeNumber, error) {
	n := &safeNumber{}
	var issued int64
	err := s.reader.QueryRowContext(ctx, `SELECT number, issued_at FROM safe_numbers WHERE visitor_id = ? AND retired_at IS NULL
		ORDER BY issued_at DESC LIMIT 1`, visitorID).Scan(&n.Number, &issued)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kipass.Errorf(kipass.ENOTFOUND, "no safe number issued")
	} else if err != nil {
		return nil, fmt.Errorf("safe number: %w", err)
	}
	n.IssuedAt = fromMicro(issued)
	return n, nil
}

// issueSafeNumber retires the visitor's current number, if any, and makes number the
// current one. A number already taken (by anyone, current or retired) is ECONFLICT and
// changes nothing.
func (s *store) issueSafeNumber(ctx context.Context, visitorID, number string, now time.Time) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("issue safe number: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE safe_numbers SET retired_at = ? WHERE visitor_id = ? AND retired_at IS NULL`, micro(now), visitorID); err != nil {
		return fmt.Errorf("issue safe number: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO safe_numbers (number, visitor_id, issued_at) VALUES (?, ?, ?)`, number, visitorID, micro(now))
	if isUniqueViolation(err) {
		return kipass.Errorf(kipass.ECONFLICT, "safe number taken")
	} else if err != nil {
		return fmt.Errorf("issue safe number: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("issue safe number: %w", err)
	}
	return nil
}

// saveFacts stores the registry facts of a person as last fetched.
func (s *store) saveFacts(ctx context.Context, f *Facts, fetchedAt time.Time) error {
	h, err := json.Marshal(&f.Holder)
	if err != nil {
		return fmt.Errorf("save facts: %w", err)
	}
	_, err = s.writer.ExecContext(ctx, `INSERT INTO facts (person_id, holder, updated_at, fetched_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (person_id) DO UPDATE SET holder = excluded.holder, updated_at = excluded.updated_at, fetched_at = excluded.fetched_at`,
		f.PersonID, string(h), micro(f.UpdatedAt), micro(fetchedAt))
	if err != nil {
		return fmt.Errorf("save facts: %w", err)
	}
	return nil
}

// loadFacts returns the stored facts of a person and when they were fetched, or
// ENOTFOUND.
func (s *store) loadFacts(ctx context.Context, personID string) (*Facts, time.Time, error) {
	var h string
	var updated, fetched int64
	err := s.reader.QueryRowContext(ctx, `SELECT holder, updated_at, fetched_at FROM facts WHERE person_id = ?`, personID).Scan(&h, &updated, &fetched)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, kipass.Errorf(kipass.ENOTFOUND, "no facts stored")
	} else if err != nil {
		return nil, time.Time{}, fmt.Errorf("load facts: %w", err)
	}
	f := &Facts{PersonID: personID, UpdatedAt: fromMicro(updated)}
	if err := json.Unmarshal([]byte(h), &f.Holder); err != nil {
		return nil, time.Time{}, fmt.Errorf("load facts: %w", err)
	}
	return f, fromMicro(fetched), nil
}

func (s *store) deleteFacts(ctx context.Context, personID string) error {
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM facts WHERE person_id = ?`, personID); err != nil {
		return fmt.Errorf("delete facts: %w", err)
	}
	return nil
}

// purged counts what one retention run destroyed.
type purged struct {
	SafeNumbers int64 // retired safe numbers past retention: no longer resolvable
	Enrolments  int64 // pending enrolments past their expiry
	Facts       int64 // cached facts too old to mint from
}

// purge destroys retired safe numbers retired before safeCutoff, expired enrolments
// and facts fetched before factsCutoff.
func (s *store) purge(ctx context.Context, now, safeCutoff, factsCutoff time.Time) (purged, error) {
	var p purged
	for _, q := range []struct {
		n    *int64
		sql  string
		arg  time.Time
		what string
	}{
		{&p.SafeNumbers, `DELETE FROM safe_numbers WHERE retired_at IS NOT NULL AND retired_at < ?`, safeCutoff, "safe numbers"},
		{&p.Enrolments, `DELETE FROM enrolments WHERE expires_at <= ?`, now, "enrolments"},
		{&p.Facts, `DELETE FROM facts WHERE fetched_at < ?`, factsCutoff, "facts"},
	} {
		res, err := s.writer.ExecContext(ctx, q.sql, micro(q.arg))
		if err != nil {
			return p, fmt.Errorf("purge %s: %w", q.what, err)
		}
		if *q.n, err = res.RowsAffected(); err != nil {
			return p, fmt.Errorf("purge %s: %w", q.what, err)
		}
	}
	return p, nil
}
