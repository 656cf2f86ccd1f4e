package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kipass/kipass"
)

// facilityConflicts are the safe messages for the facilities table's unique constraints.
var facilityConflicts = map[string]string{
	"facilities_pkey":                "a facility with this id already exists",
	"facilities_business_number_key": "a facility with this business number already exists",
	"facilities_phone_number_key":    "a facility with this phone number already exists",
}

// deviceConflicts are the safe messages for the devices table's unique constraints.
var deviceConflicts = map[string]string{
	"devices_pkey":           "a device with this id already exists",
	"devices_token_hash_key": "a device with this credential already exists",
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
	_, err := db.pool.Exec(ctx, `INSERT INTO facilities (`+facilityColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		f.ID, f.Name, f.BusinessNumber, f.Category, f.Region, f.Address, nullString(f.PhoneNumber), utc(f.CreatedAt))
	if err != nil {
		return constraintErr(err, "create facility", facilityConflicts)
	}
	return nil
}

// FindFacilityByID returns the facility with the id.
func (db *DB) FindFacilityByID(ctx context.Context, id string) (*kipass.Facility, error) {
	return db.findFacility(ctx, `id = $1`, id)
}

// FindFacilityByPhone returns the facility whose 안심콜 number is phoneNumber.
func (db *DB) FindFacilityByPhone(ctx context.Context, phoneNumber string) (*kipass.Facility, error) {
	if phoneNumber == "" {
		return nil, kipass.Errorf(kipass.ENOTFOUND, "facility not found")
	}
	return db.findFacility(ctx, `phone_number = $1`, phoneNumber)
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
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("find facilities: %w", err)
	}
	out := []*kipass.Facility{}
	var f kipass.Facility
	var phone *string
	_, err = pgx.ForEachRow(rows, []any{&f.ID, &f.Name, &f.BusinessNumber, &f.Category, &f.Region, &f.Address, &phone, &f.CreatedAt}, func() error {
		c := f
		c.PhoneNumber, c.CreatedAt = "", f.CreatedAt.UTC()
		if phone != nil {
			c.PhoneNumber = *phone
		}
		out = append(out, &c)
		return nil
	})
	if err != nil {
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
	_, err := db.pool.Exec(ctx, `INSERT INTO enrollment_codes (code_hash, facility_id, expires_at) VALUES ($1, $2, $3)`,
		codeHash(c.Code), c.FacilityID, utc(c.ExpiresAt))
	if err != nil {
		return constraintErr(err, "create enrollment code", map[string]string{"enrollment_codes_pkey": "this enrollment code already exists"})
	}
	return nil
}

// EnrollDevice consumes the code and stores the device in one transaction; see
// kipass.FacilityService for the errors. The UPDATE's row lock makes one of two
// concurrent uses wait and then find the code used.
func (db *DB) EnrollDevice(ctx context.Context, code string, d *kipass.Device, tokenHash []byte, now time.Time) error {
	if len(tokenHash) == 0 {
		return kipass.FieldErrorf("token_hash", "must not be empty")
	}
	id := d.ID
	if id == "" {
		id = newID()
	}
	createdAt := utc(now)
	var facilityID string
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE enrollment_codes SET used_at = $1, device_id = $2
			WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1 RETURNING facility_id`,
			createdAt, id, codeHash(code)).Scan(&facilityID)
		if errors.Is(err, pgx.ErrNoRows) {
			return kipass.Errorf(kipass.ENOTFOUND, "enrollment code not found, already used or expired")
		} else if err != nil {
			return fmt.Errorf("enroll device: %w", err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO devices (id, facility_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
			id, facilityID, d.Name, tokenHash, createdAt)
		if err != nil {
			return constraintErr(err, "enroll device", deviceConflicts)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.ID, d.FacilityID, d.CreatedAt, d.RevokedAt = id, facilityID, createdAt, nil
	return nil
}

const deviceColumns = `id, facility_id, name, created_at, revoked_at`

// FindDeviceByTokenHash returns the device whose credential hashes to tokenHash,
// revoked or not.
func (db *DB) FindDeviceByTokenHash(ctx context.Context, tokenHash []byte) (*kipass.Device, error) {
	return db.findDevice(ctx, `token_hash = $1`, tokenHash)
}

// FindDeviceByID returns the device with the id, revoked or not.
func (db *DB) FindDeviceByID(ctx context.Context, id string) (*kipass.Device, error) {
	return db.findDevice(ctx, `id = $1`, id)
}

func (db *DB) findDevice(ctx context.Context, where string, arg any) (*kipass.Device, error) {
	var d kipass.Device
	err := db.pool.QueryRow(ctx, `SELECT `+deviceColumns+` FROM devices WHERE `+where, arg).
		Scan(&d.ID, &d.FacilityID, &d.Name, &d.CreatedAt, &d.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, kipass.Errorf(kipass.ENOTFOUND, "device not found")
	} else if err != nil {
		return nil, fmt.Errorf("find device: %w", err)
	}
	d.CreatedAt, d.RevokedAt = d.CreatedAt.UTC(), utcPtr(d.RevokedAt)
	return &d, nil
}

// RevokeDevice marks the device revoked; revoking it again keeps the first time.
func (db *DB) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	tag, err := db.pool.Exec(ctx, `UPDATE devices SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, utc(at), id)
	if err != nil {
		return fmt.Errorf("revoke device: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return kipass.Errorf(kipass.ENOTFOUND, "device not found")
	}
	return nil
}
