package issuer

import (
	"context"
	"net/http"
	"time"

	"github.com/kipass/kipass"
)

// SafeNumberResponse is the answer of GET /v1/safe-number: the visitor's personal safe
// number (개인안심번호) for handwritten entry logs, and until when it is shown.
type SafeNumberResponse struct {
	SafeNumber string    `json:"safe_number"`
	IssuedAt   time.Time `json:"issued_at"`
	ValidUntil time.Time `json:"valid_until"`
}

// safeNumberTries bounds the draws for a free number: with the full space nearly
// empty, one draw is enough; a space this full is an operator problem.
const safeNumberTries = 32

// safeNumber returns the visitor's current safe number, issuing a new one on first use
// and once the current one has lived SafeNumberLifetime. The number it replaces stays
// resolvable for the retention period.
func (s *Service) safeNumber(ctx context.Context, v *visitor) (*SafeNumberResponse, error) {
	now := s.now()
	cur, err := s.db.currentSafeNumber(ctx, v.ID)
	if err == nil && now.Sub(cur.IssuedAt) < s.cfg.SafeNumberLifetime {
		return &SafeNumberResponse{SafeNumber: cur.Number, IssuedAt: cur.IssuedAt, ValidUntil: cur.IssuedAt.Add(s.cfg.SafeNumberLifetime)}, nil
	} else if err != nil && kipass.ErrorCode(err) != kipass.ENOTFOUND {
		return nil, err
	}
	for range safeNumberTries {
		n := s.cfg.SafeNumbers.New()
		err := s.db.issueSafeNumber(ctx, v.ID, n, now)
		if kipass.ErrorCode(err) == kipass.ECONFLICT {
			continue // taken: draw again
		} else if err != nil {
			return nil, err
		}
		s.log.Info("safe number issued", "visitor_id", v.ID)
		return &SafeNumberResponse{SafeNumber: n, IssuedAt: now.UTC(), ValidUntil: now.Add(s.cfg.SafeNumberLifetime).UTC()}, nil
	}
	s.log.Error("no free safe number found", "tries", safeNumberTries, "space", s.cfg.SafeNumbers.Space())
	return nil, &reasonError{err: kipass.Errorf(kipass.EUNAVAILABLE, "no safe number could be issued now; try again later"), reason: "safe_numbers_exhausted"}
}

func (s *Service) handleSafeNumber(w http.ResponseWriter, r *http.Request) {
	v, err := s.wallet(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.safeNumber(r.Context(), v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
