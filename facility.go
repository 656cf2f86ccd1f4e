package kipass

import (
	"context"
	"time"
)

// Facility is a venue that keeps an entry log: a restaurant, a gym, a cinema.
type Facility struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	BusinessNumber string    `json:"business_number"` // 사업자등록번호, 10 digits with check digit
	Category       string    `json:"category"`
	Region         string    `json:"region"`
	Address        string    `json:"address"`
	PhoneNumber    string    `json:"phone_number,omitempty"` // 안심콜 number visitors dial
	CreatedAt      time.Time `json:"created_at"`
}

// Device is a scanner enrolled at one facility. Its bearer credential is stored only
// as a hash.
type Device struct {
	ID         string     `json:"id"`
	FacilityID string     `json:"facility_id"`
	Name       string     `json:"name,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// EnrollmentCode is a one-time code that enrols one scanner device at a facility.
type EnrollmentCode struct {
	Code       string    `json:"code"`
	FacilityID string    `json:"facility_id"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// FacilityService stores facilities, their enrollment codes and their devices. Every
// lookup of something that does not exist returns an ENOTFOUND error.
type FacilityService interface {
	// CreateFacility stores f. An empty ID is filled with a random one and a zero
	// CreatedAt with the current time. A taken ID, business number or phone number is
	// an ECONFLICT error.
	CreateFacility(ctx context.Context, f *Facility) error
	// FindFacilityByID returns the facility with the id.
	FindFacilityByID(ctx context.Context, id string) (*Facility, error)
	// FindFacilityByPhone returns the facility whose 안심콜 number is exactly phoneNumber
	// (callers normalise numbers before storing and looking up).
	FindFacilityByPhone(ctx context.Context, phoneNumber string) (*Facility, error)
	// ListFacilities returns every facility, by id.
	ListFacilities(ctx context.Context) ([]*Facility, error)

	// CreateEnrollmentCode stores a new one-time code for the facility (stores keep
	// only a hash of the code). An unknown facility is ENOTFOUND; a code already
	// stored is ECONFLICT.
	CreateEnrollmentCode(ctx context.Context, c *EnrollmentCode) error

	// EnrollDevice consumes the enrollment code (once only, before it expires) and
	// stores the device with the hash of its credential, at the code's facility
	// (d.FacilityID is set from the code; an empty d.ID is filled in; d.CreatedAt is
	// now). An unknown, already used or expired code is one ENOTFOUND error, so that a
	// caller learns nothing about codes it does not hold; of two concurrent uses of
	// one code exactly one succeeds. A device ID or credential hash already stored is
	// ECONFLICT, and the code is then not consumed.
	EnrollDevice(ctx context.Context, code string, d *Device, tokenHash []byte, now time.Time) error

	// FindDeviceByTokenHash returns the device whose credential hashes to tokenHash.
	// A revoked device is returned too, with RevokedAt set: the caller refuses it.
	FindDeviceByTokenHash(ctx context.Context, tokenHash []byte) (*Device, error)
	// FindDeviceByID returns the device with the id, revoked or not.
	FindDeviceByID(ctx context.Context, id string) (*Device, error)
	// RevokeDevice marks the device revoked at at. Revoking a revoked device keeps
	// the first time and is not an error.
	RevokeDevice(ctx context.Context, id string, at time.Time) error
}
