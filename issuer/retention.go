package issuer

import (
	"context"
	"time"

	"github.com/kipass/kipass"
)

// RetentionReport says what one retention run destroyed.
type RetentionReport struct {
	SealKeys    int   // keys of sealed references retired longer than retention + pass life
	DayKeys     int   // day-tag keys of days more than 28 days back
	SafeNumbers int64 // safe numbers retired more than 28 days ago: no longer resolvable
	Enrolments  int64 // pending enrolments past their expiry
	Facts       int64 // cached registry facts too old to mint from
}

// RunRetention rotates and destroys keys and destroys the mappings and data that
// retention no longer allows, at the service's clock. The background job calls it
// every RetentionInterval; tests and operators may call it directly.
func (s *Service) RunRetention(ctx context.Context) (RetentionReport, error) {
	now := s.now()
	var rep RetentionReport
	kr, err := s.keys.maintain(now)
	if err != nil {
		s.metrics.retentionRuns.WithLabelValues("error").Inc()
		return rep, err
	}
	rep.SealKeys, rep.DayKeys = kr.SealKeysDestroyed, kr.DayKeysDestroyed
	p, err := s.db.purge(ctx, now, now.Add(-kipass.Retention), now.Add(-s.cfg.MaxFactsAge))
	rep.SafeNumbers, rep.Enrolments, rep.Facts = p.SafeNumbers, p.Enrolments, p.Facts
	for kind, n := range map[string]float64{
		"seal_key": float64(rep.SealKeys), "day_key": float64(rep.DayKeys), "safe_number": float64(rep.SafeNumbers),
		"enrolment": float64(rep.Enrolments), "facts": float64(rep.Facts),
	} {
		s.metrics.destroyed.WithLabelValues(kind).Add(n)
	}
	if err != nil {
		s.metrics.retentionRuns.WithLabelValues("error").Inc()
		return rep, err
	}
	s.metrics.retentionRuns.WithLabelValues("ok").Inc()
	s.log.Info("retention", "seal_keys_made", kr.SealKeysCreated, "day_keys_made", kr.DayKeysCreated,
		"seal_keys_destroyed", rep.SealKeys, "day_keys_destroyed", rep.DayKeys, "safe_numbers_destroyed", rep.SafeNumbers,
		"enrolments_destroyed", rep.Enrolments, "facts_destroyed", rep.Facts)
	return rep, nil
}

// retentionLoop runs retention at start and then every RetentionInterval, measured on
// the wall clock (the domain clock may be a demo's).
func (s *Service) retentionLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		if _, err := s.RunRetention(s.ctx); err != nil && s.ctx.Err() == nil {
			s.log.Error("retention run failed", "err", err)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}
