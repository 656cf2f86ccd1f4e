package http

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kipass/kipass"
)

// Auth holds the credentials the server accepts. Tokens are compared in constant time.
type Auth struct {
	AdminTokens        []string          // operators: facilities, devices, notices
	InvestigatorTokens map[string]string // investigator name -> token; the name is the audit actor
	AuditorTokens      []string          // read the audit log
	PhoneSecret        []byte            // HMAC key of the telco gateway's webhook
}

// ParseInvestigatorTokens parses "name:token,name2:token2".
func ParseInvestigatorTokens(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, token, ok := strings.Cut(part, ":")
		if !ok || name == "" || token == "" {
			return nil, fmt.Errorf("investigator token %d: want name:token", len(m)+1)
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("investigator %q named twice", name)
		}
		m[name] = token
	}
	return m, nil
}

// Roles of a caller.
const (
	roleAdmin        = "admin"
	roleInvestigator = "investigator"
	roleAuditor      = "auditor"
	roleDevice       = "device"
)

// principal is an authenticated caller.
type principal struct {
	Role   string
	Name   string         // investigator name
	Device *kipass.Device // device callers
}

// DeviceTokenSize is the number of random bytes in a device credential.
const DeviceTokenSize = 32

// NewDeviceToken returns a new device credential: 32 random bytes, base64url.
func NewDeviceToken() string {
	b := make([]byte, DeviceTokenSize)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashDeviceToken returns the hash under which a device credential is stored.
func HashDeviceToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// tokenEqual compares a presented token with a configured one in constant time; both
// are hashed first so that not even their lengths leak.
func tokenEqual(presented, want string) bool {
	if want == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(presented)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// authenticate identifies the caller by its bearer token.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	tok := bearer(r)
	if tok == "" {
		return nil, kipass.Errorf(kipass.EUNAUTHORIZED, "missing bearer token")
	}
	// Device credentials are 43 base64url characters: look them up first, since ingest
	// is by far the most frequent call.
	if len(tok) == base64.RawURLEncoding.EncodedLen(DeviceTokenSize) {
		d, err := s.findDevice(r.Context(), tok)
		if err == nil {
			return &principal{Role: roleDevice, Device: d}, nil
		} else if kipass.ErrorCode(err) != kipass.EUNAUTHORIZED {
			return nil, err
		}
	}
	// Compare with every configured token, not stopping at the first match.
	var p *principal
	for _, t := range s.Auth.AdminTokens {
		if tokenEqual(tok, t) && p == nil {
			p = &principal{Role: roleAdmin, Name: "admin"}
		}
	}
	for name, t := range s.Auth.InvestigatorTokens {
		if tokenEqual(tok, t) && p == nil {
			p = &principal{Role: roleInvestigator, Name: name}
		}
	}
	for _, t := range s.Auth.AuditorTokens {
		if tokenEqual(tok, t) && p == nil {
			p = &principal{Role: roleAuditor, Name: "auditor"}
		}
	}
	if p == nil {
		return nil, kipass.Errorf(kipass.EUNAUTHORIZED, "unknown or revoked credential")
	}
	return p, nil
}

// require authenticates the caller and checks that it has one of the roles.
func (s *Server) require(r *http.Request, roles ...string) (*principal, error) {
	p, err := s.authenticate(r)
	if err != nil {
		return nil, err
	}
	for _, role := range roles {
		if p.Role == role {
			return p, nil
		}
	}
	return nil, kipass.Errorf(kipass.EFORBIDDEN, "this credential may not do that")
}

// findDevice returns the enrolled, unrevoked device of a credential.
func (s *Server) findDevice(ctx context.Context, token string) (*kipass.Device, error) {
	hash := HashDeviceToken(token)
	if d := s.devices.get(hash); d != nil {
		return d, nil
	}
	d, err := s.FacilityService.FindDeviceByTokenHash(ctx, hash)
	if kipass.ErrorCode(err) == kipass.ENOTFOUND {
		return nil, kipass.Errorf(kipass.EUNAUTHORIZED, "unknown or revoked credential")
	} else if err != nil {
		return nil, fmt.Errorf("find device: %w", err)
	}
	if d.RevokedAt != nil {
		return nil, kipass.Errorf(kipass.EUNAUTHORIZED, "unknown or revoked credential")
	}
	s.devices.put(hash, d)
	return d, nil
}

// deviceCache keeps recently seen device credentials for a short while, so that ingest
// does not read the device table on every batch. Revocation on this node clears the
// entry at once; on other nodes it takes effect within the TTL.
type deviceCache struct {
	mu   sync.Mutex
	ttl  time.Duration
	max  int
	m    map[[sha256.Size]byte]deviceEntry
	byID map[string][sha256.Size]byte
}

type deviceEntry struct {
	device  *kipass.Device
	expires time.Time
}

func newDeviceCache(ttl time.Duration, max int) *deviceCache {
	return &deviceCache{ttl: ttl, max: max, m: map[[sha256.Size]byte]deviceEntry{}, byID: map[string][sha256.Size]byte{}}
}

func (c *deviceCache) get(hash []byte) *kipass.Device {
	if c.ttl <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[[sha256.Size]byte(hash)]
	if !ok || time.Now().After(e.expires) {
		return nil
	}
	return e.device
}

func (c *deviceCache) put(hash []byte, d *kipass.Device) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if len(c.m) >= c.max {
		// Map iteration order is random: this drops arbitrary entries, which come back
		// with one lookup each.
		for k, e := range c.m {
			delete(c.m, k)
			delete(c.byID, e.device.ID)
			if len(c.m) < c.max*3/4 {
				break
			}
		}
	}
	k := [sha256.Size]byte(hash)
	c.m[k] = deviceEntry{device: d, expires: now.Add(c.ttl)}
	c.byID[d.ID] = k
}

func (c *deviceCache) forget(deviceID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.byID[deviceID]; ok {
		delete(c.m, k)
		delete(c.byID, deviceID)
	}
}
