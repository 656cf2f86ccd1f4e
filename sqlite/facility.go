package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kipass/kipass"
)

// facilityConflicts are the safe messages for the facilities table's unique columns.
var facilityConflicts = map[string]string{
	"id":              "a facility with this id already exists",
	"business_number": "a facility with this business number already exists",
	"phone_number":    "a facility with this phone number already exists",
}

// deviceConflicts are the safe messages for the devices table's unique columns.
var deviceConflicts = map[string]string{
	"id":         "a device with this id already exists",
	"token_hash": "a device with this credential already exists",
}

const facilityColumns = `id, name, business_number, category, region, address, phone_number, created_at`

// CreateFacility stores f; see kipass.FacilityService.
func (db *DB) CreateFacility(ctx context.Context, f *kipass.Facility) error {
	if f.ID == "" {
		f.ID = newID()
	}
	if f.CreatedAt.IsZero() {
		f.CreatedAt = db.now()
	}
	f.CreatedAt = f.CreatedAt.Truncate(time.Microsecond)
	_, err := db.writer.ExecContext(ctx, `INSERT INTO facilities (`+facilityColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.Name, f.BusinessNumber, f.Category, f.Region, f.Address, nullString(f.PhoneNumber), micro(f.CreatedAt))
	if err != nil {
		return constraintErr(err, "create facility", facilityConflicts)
	}
	return nil
}

// FindFacilityByID returns the facility with the id.
func (db *DB) FindFacilityByID(ctx context.Context, id string) (*kipass.Facility, error) {
	return db.findFacility(ctx, `id = ?`, id)
}

// FindFacilityByPhone returns the facility whose 안심콜 number is phoneNumber.
func (db *DB) FindFacilityByPhone(ctx context.Context, phoneNumber string) (*kipass.Facility, error) {
	if phoneNumber == "" {
		return nil, kipass.Errorf(kipass.ENOTFOUND, "facility not found")
	}
	return db.findFacility(ctx, `phone_number = ?`, phoneNumber)
}

func (db *DB) findFacility(ctx context.Context, where string, arg any) (*kipass.Facility, error) {
	fs, err := db.queryFacilities(ctx, `SELECT `+facilityColumns+` FROM facilities WHERE `+where, arg)
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, kipass.Errorf(kipass.ENOTFOUND, "facility not found")
	}
	return fs[0], nil
}

// ListFacilities returns every facility, by id.
func (db *DB) ListFacilities(ctx context.Context) ([]*kipass.Facility, error) {
	return db.queryFacilities(ctx, `SELECT `+facilityColumns+` FROM facilities ORDER BY id`)
}

func (db *DB) queryFacilities(ctx context.Context, query string, args ...any) ([]*kipass.Facility, error) {
	rows, err := db.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("find facilities: %w", err)
	}
	defer rows.Close()
	out := []*kipass.Facility{}
	for rows.Next() {
		var f kipass.Facility
		var phone sql.NullString
		var createdAt int64
		if err := rows.Scan(&f.ID, &f.Name, &f.BusinessNumber, &f.Category, &f.Region, &f.Address, &phone, &createdAt); err != nil {
			return nil, fmt.Errorf("find facilities: %w", err)
		}
		f.PhoneNumber, f.CreatedAt = phone.String, fromMicro(createdAt)
		out = append(out, &f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find facilities: %w", err)
	}
	return out, nil
}

// codeHash is how an enrollment code is kept.
func codeHash(code string) []byte {
	h := sha256.Sum256([]byte(code))
	return h[:]
}

// CreateEnrollmentCode stores a one-time code for the facility, as its hash.
func (db *DB) CreateEnrollmentCode(ctx context.Context, c *kipass.EnrollmentCode) error {
	if c.Code == "" {
		return kipass.FieldErrorf("code", "must not be empty")
	}
	_, err := db.writer.ExecContext(ctx, `INSERT INTO enrollment_codes (code_hash, facility_id, expires_at) VALUES (?, ?, ?)`,
		codeHash(c.Code), c.FacilityID, micro(c.ExpiresAt))
	if err != nil {
		return constraintErr(err, "create enrollment code", map[string]string{"code_hash": "this enrollment code already exists"})
	}
	return nil
}

// EnrollDevice consumes the code and stores the device in one transaction; see
// kipass.FacilityService for the errors.
func (db *DB) EnrollDevice(ctx context.Context, code string, d *kipass.Device, tokenHash []byte, now time.Time) error {
	if len(tokenHash) == 0 {
		return kipass.FieldErrorf("token_hash", "must not be empty")
	}
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("enroll device: %w", err)
	}
	defer tx.Rollback()
	id := d.ID
	if id == "" {
		id = newID()
	}
	var facilityID string
	err = tx.QueryRowContext(ctx, `UPDATE enrollment_codes SET used_at = ?, device_id = ?
		WHERE code_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING facility_id`,
		micro(now), id, codeHash(code), micro(now)).Scan(&facilityID)
	if errors.Is(err, sql.ErrNoRows) {
		return kipass.Errorf(kipass.ENOTFOUND, "enrollment code not found, already used or expired")
	} else if err != nil {
		return fmt.Errorf("enroll device: %w", err)
	}
	createdAt := now.Truncate(time.Microsecond).UTC()
	if _, err := tx.ExecContext(ctx, `INSERT INTO devices (id, facility_id, name, token_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		id, facilityID, d.Name, tokenHash, micro(createdAt)); err != nil {
		return constraintErr(err, "enroll device", deviceConflicts)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("enroll device: %w", err)
	}
	d.ID, d.FacilityID, d.CreatedAt, d.RevokedAt = id, facilityID, createdAt, nil
	return nil
}

const deviceColumns = `id, facility_id, name, created_at, revoked_at`

// FindDeviceByTokenHash returns the device whose credential hashes to tokenHash,
// revoked or not.
func (db *DB) FindDeviceByTokenHash(ctx context.Context, tokenHash []byte) (*kipass.Device, error) {
	return db.findDevice(ctx, `token_hash = ?`, tokenHash)
}

// FindDeviceByID returns the device with the id, revoked or not.
func (db *DB) FindDeviceByID(ctx context.Context, id string) (*kipass.Device, error) {
	return db.findDevice(ctx, `id = ?`, id)
}

func (db *DB) findDevice(ctx context.Context, where string, arg any) (*kipass.Device, error) {
	var d kipass.Device
	var createdAt int64
	var revokedAt sql.NullInt64
	err := db.reader.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE `+where, arg).
		Scan(&d.ID, &d.FacilityID, &d.Name, &createdAt, &revokedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kipass.Errorf(kipass.ENOTFOUND, "device not found")
	} else if err != nil {
		return nil, fmt.Errorf("find device: %w", err)
	}
	d.CreatedAt, d.RevokedAt = fromMicro(createdAt), nullTime(revokedAt)
	return &d, nil
}

// RevokeDevice marks the device revoked; revoking it again keeps the first time.
func (db *DB) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	res, err := db.writer.ExecContext(ctx, `UPDATE devices SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, micro(at), id)
	if err != nil {
		return fmt.Errorf("revoke device: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke device: %w", err)
	} else if n == 0 {
		return kipass.Errorf(kipass.ENOTFOUND, "device not found")
	}
	return nil
}
