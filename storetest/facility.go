package storetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kipass/kipass"
)

// newFacility returns a facility with unique business and phone numbers.
func newFacility(n int) *kipass.Facility {
	return &kipass.Facility{
		ID:             fmt.Sprintf("fac-%d", n),
		Name:           fmt.Sprintf("국밥집 %d", n),
		BusinessNumber: fmt.Sprintf("%010d", 1000000000+n),
		Category:       "restaurant",
		Region:         "seoul",
		Address:        "서울특별시 중구 세종대로 110",
		PhoneNumber:    fmt.Sprintf("080-%04d-%04d", n/10000, n%10000),
		CreatedAt:      base,
	}
}

// tokenHash returns the credential hash of a device token.
func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func testFacilities(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	s := open(t)
	if all, err := s.ListFacilities(ctx); err != nil || all == nil || len(all) != 0 {
		t.Fatalf("ListFacilities on a new store: %v, %v; want an empty slice", all, err)
	}
	f1, f2 := newFacility(1), newFacility(2)
	for _, f := range []*kipass.Facility{f2, f1} {
		if err := s.CreateFacility(ctx, f); err != nil {
			t.Fatalf("CreateFacility: %v", err)
		}
	}
	noPhone := newFacility(3)
	noPhone.PhoneNumber = ""
	noPhone2 := newFacility(4)
	noPhone2.PhoneNumber = ""
	generated := newFacility(5)
	generated.ID, generated.CreatedAt = "", time.Time{}
	for _, f := range []*kipass.Facility{noPhone, noPhone2, generated} {
		if err := s.CreateFacility(ctx, f); err != nil {
			t.Fatalf("CreateFacility %s: %v", f.Name, err)
		}
	}
	if generated.ID == "" || generated.CreatedAt.IsZero() {
		t.Fatalf("CreateFacility left ID %q, CreatedAt %v", generated.ID, generated.CreatedAt)
	}

	t.Run("Conflicts", func(t *testing.T) {
		tests := []struct {
			name   string
			change func(f *kipass.Facility)
		}{
			{"SameID", func(f *kipass.Facility) { f.BusinessNumber, f.PhoneNumber = "9999999999", "080-9999-9999" }},
			{"SameBusinessNumber", func(f *kipass.Facility) { f.ID, f.PhoneNumber = "fac-x", "080-9999-9999" }},
			{"SamePhoneNumber", func(f *kipass.Facility) { f.ID, f.BusinessNumber = "fac-x", "9999999999" }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f := *f1
				tt.change(&f)
				mustCode(t, s.CreateFacility(ctx, &f), kipass.ECONFLICT)
			})
		}
	})

	t.Run("Find", func(t *testing.T) {
		tests := []struct {
			name string
			find func() (*kipass.Facility, error)
			want *kipass.Facility
		}{
			{"ByID", func() (*kipass.Facility, error) { return s.FindFacilityByID(ctx, f1.ID) }, f1},
			{"ByPhone", func() (*kipass.Facility, error) { return s.FindFacilityByPhone(ctx, f2.PhoneNumber) }, f2},
			{"UnknownID", func() (*kipass.Facility, error) { return s.FindFacilityByID(ctx, "fac-none") }, nil},
			{"UnknownPhone", func() (*kipass.Facility, error) { return s.FindFacilityByPhone(ctx, "080-0000-0000") }, nil},
			{"EmptyPhone", func() (*kipass.Facility, error) { return s.FindFacilityByPhone(ctx, "") }, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := tt.find()
				if tt.want == nil {
					mustCode(t, err, kipass.ENOTFOUND)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got.ID != tt.want.ID || got.Name != tt.want.Name || got.BusinessNumber != tt.want.BusinessNumber ||
					got.Category != tt.want.Category || got.Region != tt.want.Region || got.Address != tt.want.Address ||
					got.PhoneNumber != tt.want.PhoneNumber || !got.CreatedAt.Equal(tt.want.CreatedAt) {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
			})
		}
	})

	t.Run("List", func(t *testing.T) {
		all, err := s.ListFacilities(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 5 {
			t.Fatalf("ListFacilities: %d facilities, want 5", len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i-1].ID >= all[i].ID {
				t.Fatalf("ListFacilities not ordered by id: %s before %s", all[i-1].ID, all[i].ID)
			}
		}
	})
}

func testDevices(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	s := open(t)
	f := newFacility(1)
	if err := s.CreateFacility(ctx, f); err != nil {
		t.Fatal(err)
	}
	now := base
	code := func(t *testing.T, expires time.Time) string {
		t.Helper()
		c := &kipass.EnrollmentCode{Code: randID("code"), FacilityID: f.ID, ExpiresAt: expires}
		if err := s.CreateEnrollmentCode(ctx, c); err != nil {
			t.Fatalf("CreateEnrollmentCode: %v", err)
		}
		return c.Code
	}

	t.Run("CodeErrors", func(t *testing.T) {
		err := s.CreateEnrollmentCode(ctx, &kipass.EnrollmentCode{Code: "x", FacilityID: "fac-none", ExpiresAt: now.Add(time.Hour)})
		mustCode(t, err, kipass.ENOTFOUND)
		c := code(t, now.Add(time.Hour))
		err = s.CreateEnrollmentCode(ctx, &kipass.EnrollmentCode{Code: c, FacilityID: f.ID, ExpiresAt: now.Add(time.Hour)})
		mustCode(t, err, kipass.ECONFLICT)
	})

	t.Run("Enroll", func(t *testing.T) {
		c := code(t, now.Add(time.Hour))
		d := &kipass.Device{ID: "dev-1", FacilityID: "ignored", Name: "카운터"}
		if err := s.EnrollDevice(ctx, c, d, tokenHash("t1"), now); err != nil {
			t.Fatalf("EnrollDevice: %v", err)
		}
		if d.FacilityID != f.ID || !d.CreatedAt.Equal(now) || d.RevokedAt != nil {
			t.Fatalf("enrolled device %+v", d)
		}
		for name, find := range map[string]func() (*kipass.Device, error){
			"ByTokenHash": func() (*kipass.Device, error) { return s.FindDeviceByTokenHash(ctx, tokenHash("t1")) },
			"ByID":        func() (*kipass.Device, error) { return s.FindDeviceByID(ctx, "dev-1") },
		} {
			got, err := find()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got.ID != "dev-1" || got.FacilityID != f.ID || got.Name != "카운터" || !got.CreatedAt.Equal(now) || got.RevokedAt != nil {
				t.Fatalf("%s: %+v", name, got)
			}
		}
		generated := &kipass.Device{}
		if err := s.EnrollDevice(ctx, code(t, now.Add(time.Hour)), generated, tokenHash("t-gen"), now); err != nil || generated.ID == "" {
			t.Fatalf("EnrollDevice without an id: %+v, %v", generated, err)
		}
	})

	t.Run("EnrollRefused", func(t *testing.T) {
		used := code(t, now.Add(time.Hour))
		if err := s.EnrollDevice(ctx, used, &kipass.Device{}, tokenHash("t-used"), now); err != nil {
			t.Fatal(err)
		}
		expired := code(t, now)
		taken := code(t, now.Add(time.Hour))
		tests := []struct {
			name  string
			code  string
			dev   *kipass.Device
			token string
			want  string
		}{
			{"SecondUse", used, &kipass.Device{}, "t-a", kipass.ENOTFOUND},
			{"Expired", expired, &kipass.Device{}, "t-b", kipass.ENOTFOUND},
			{"Unknown", "no-such-code", &kipass.Device{}, "t-c", kipass.ENOTFOUND},
			{"CredentialTaken", taken, &kipass.Device{}, "t-used", kipass.ECONFLICT},
			{"DeviceIDTaken", taken, &kipass.Device{ID: "dev-1"}, "t-d", kipass.ECONFLICT},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				mustCode(t, s.EnrollDevice(ctx, tt.code, tt.dev, tokenHash(tt.token), now), tt.want)
				if _, err := s.FindDeviceByTokenHash(ctx, tokenHash(tt.token)); tt.token != "t-used" {
					mustCode(t, err, kipass.ENOTFOUND)
				}
			})
		}
		// A refused enrolment does not consume the code.
		if err := s.EnrollDevice(ctx, taken, &kipass.Device{}, tokenHash("t-e"), now); err != nil {
			t.Fatalf("code consumed by a refused enrolment: %v", err)
		}
	})

	t.Run("EnrollOnceUnderConcurrency", func(t *testing.T) {
		c := code(t, now.Add(time.Hour))
		const n = 20
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.EnrollDevice(ctx, c, &kipass.Device{ID: fmt.Sprintf("race-%d", i)}, tokenHash(fmt.Sprintf("race-%d", i)), now)
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				mustCode(t, err, kipass.ENOTFOUND)
			}
		}
		if ok != 1 {
			t.Fatalf("%d concurrent enrolments with one code succeeded, want 1", ok)
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		if err := s.EnrollDevice(ctx, code(t, now.Add(time.Hour)), &kipass.Device{ID: "dev-r"}, tokenHash("t-r"), now); err != nil {
			t.Fatal(err)
		}
		at := now.Add(time.Minute)
		if err := s.RevokeDevice(ctx, "dev-r", at); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeDevice(ctx, "dev-r", at.Add(time.Hour)); err != nil {
			t.Fatalf("second revoke: %v", err)
		}
		got, err := s.FindDeviceByTokenHash(ctx, tokenHash("t-r"))
		if err != nil {
			t.Fatal(err)
		}
		if got.RevokedAt == nil || !got.RevokedAt.Equal(at) {
			t.Fatalf("revoked device: RevokedAt %v, want %v", got.RevokedAt, at)
		}
		mustCode(t, s.RevokeDevice(ctx, "dev-none", at), kipass.ENOTFOUND)
		_, err = s.FindDeviceByID(ctx, "dev-none")
		mustCode(t, err, kipass.ENOTFOUND)
	})
}
