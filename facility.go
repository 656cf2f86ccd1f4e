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

// FacilityService stores facilities, their enrollment codes and their devices.
type FacilityService interface {
	CreateFacility(ctx context.Context, f *Facility) error
	FindFacilityByID(ctx context.Context, id string) (*Facility, error)
	FindFacilityByPhone(ctx context.Context, phoneNumber string) (*Facility, error)
	ListFacilities(ctx context.Context) ([]*Facility, error)

	// CreateEnrollmentCode stores a new one-time code for the facility.
	CreateEnrollmentCode(ctx context.Context, c *EnrollmentCode) error

	// EnrollDevice consumes the enrollment code (once only, before it expires) and
	// stores the device with the hash of its credential.
	EnrollDevice(ctx context.Context, code string, d *Device, tokenHash []byte, now time.Time) error

	// FindDeviceByTokenHash returns the device whose credential hashes to tokenHash.
	FindDeviceByTokenHash(ctx context.Context, tokenHash []byte) (*Device, error)
	FindDeviceByID(ctx context.Context, id string) (*Device, error)
	RevokeDevice(ctx context.Context, id string, at time.Time) error
}
