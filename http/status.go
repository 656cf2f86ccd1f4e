package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kipass/kipass"
)

// Component and overall states on the status page.
const (
	StateOK       = "ok"
	StateDegraded = "degraded"
	StateDown     = "down"
)

// Status is the public health of central: what every scanner shows when it is not ok.
type Status struct {
	State      string           `json:"state"`
	Components StatusComponents `json:"components"`
	Notices    []*kipass.Notice `json:"notices"`
	CheckedAt  time.Time        `json:"checked_at"`
	ServerTime time.Time        `json:"server_time"` // for the scanner's clock-skew check
}

// StatusComponents holds the state of each component.
type StatusComponents struct {
	DB     ComponentStatus `json:"db"`
	Ingest IngestStatus    `json:"ingest"`
}

// ComponentStatus is the state of one component and, when not ok, a safe reason.
type ComponentStatus struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// IngestStatus is the state of visit ingest.
type IngestStatus struct {
	ComponentStatus
	QueueDepth      int     `json:"queue_depth"`              // visits waiting for a commit
	QueueCapacity   int     `json:"queue_capacity,omitempty"` // visits the queue takes before shedding
	LastCommitMS    float64 `json:"last_commit_ms"`
	ShedLastMinute  int64   `json:"shed_last_minute"`
	InflightBatches int     `json:"inflight_batches"`
	IndexLag        int64   `json:"index_lag"` // visits not yet in the store's lookup index (SQLite)
}

// CreateNoticeRequest is the body of POST /v1/notices.
type CreateNoticeRequest struct {
	Level     string `json:"level"`
	MessageKO string `json:"message_ko"`
	MessageEN string `json:"message_en,omitempty"`
}

func (s *Server) registerStatusRoutes() {
	s.handle("GET /v1/status", s.handleStatus)
	s.handle("GET /v1/status/stream", s.handleStatusStream)
	s.handle("POST /v1/notices", s.handleCreateNotice)
	s.handle("POST /v1/notices/{id}/end", s.handleEndNotice)
	s.handle("GET /healthz", s.handleHealthz)
	s.handle("GET /readyz", s.handleReadyz)
	s.mux.Handle("GET /metrics", s.handleMetrics())
	s.routes = append(s.routes, "GET /metrics")
}

// statusHub holds the last checked status and wakes the streams when it changes.
type statusHub struct {
	mu      sync.Mutex
	status  *Status
	key     []byte        // the status without its times, to tell a change
	changed chan struct{} // closed and replaced on every change
	refresh chan struct{} // asks the monitor for a check now
}

func newStatusHub() *statusHub {
	return &statusHub{changed: make(chan struct{}), refresh: make(chan struct{}, 1)}
}

// set installs a new status and wakes the streams if anything but its time changed.
func (h *statusHub) set(st *Status) {
	c := *st
	c.CheckedAt, c.ServerTime = time.Time{}, time.Time{}
	key, _ := json.Marshal(&c)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status = st
	if !bytes.Equal(key, h.key) {
		h.key = key
		close(h.changed)
		h.changed = make(chan struct{})
	}
}

func (h *statusHub) get() (*Status, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status, h.changed
}

func (h *statusHub) poke() {
	select {
	case h.refresh <- struct{}{}:
	default:
	}
}

// ingestStats returns the store's queue figures, or the server's own view.
func (s *Server) ingestStats() kipass.IngestStats {
	if s.IngestStats != nil {
		return s.IngestStats()
	}
	return kipass.IngestStats{LastCommitLatency: time.Duration(s.lastStoreLatency.Load())}
}

// monitor checks the components every StatusInterval, and at once when poked.
func (s *Server) monitor(ctx context.Context) {
	t := time.NewTicker(s.Config.StatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.status.refresh:
		}
		s.checkStatus(ctx)
	}
}

// checkStatus computes the status: the database is down when a ping fails; ingest is
// degraded when commits are slow, the store's queue is nearly full, or requests were
// shed in the last minute.
func (s *Server) checkStatus(ctx context.Context) {
	now := s.Now()
	st := &Status{CheckedAt: now.UTC()}
	st.Components.DB.State = StateOK
	if s.DB != nil {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.DB.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.Logger.Warn("database unreachable", "err", err)
			st.Components.DB = ComponentStatus{State: StateDown, Reason: "database unreachable"}
		}
	}
	is := s.ingestStats()
	in := &st.Components.Ingest
	in.State = StateOK
	in.QueueDepth, in.QueueCapacity = is.QueueDepth, is.QueueCapacity
	in.LastCommitMS = float64(is.LastCommitLatency.Microseconds()) / 1000
	in.ShedLastMinute = s.shed.lastMinute(now)
	in.InflightBatches = len(s.inflight)
	in.IndexLag = is.IndexLag
	var reasons []string
	if is.LastCommitLatency > s.Config.CommitLatencyThreshold {
		reasons = append(reasons, "slow commits")
	}
	if is.QueueCapacity > 0 && is.QueueDepth*10 >= is.QueueCapacity*9 {
		reasons = append(reasons, "queue nearly full")
	}
	if in.ShedLastMinute > 0 {
		reasons = append(reasons, "shedding load")
	}
	if len(reasons) > 0 {
		in.ComponentStatus = ComponentStatus{State: StateDegraded, Reason: "uploads delayed: " + strings.Join(reasons, ", ")}
	}
	if st.Components.DB.State == StateDown {
		in.ComponentStatus = ComponentStatus{State: StateDown, Reason: "uploads stopped: database unreachable"}
	}

	st.Notices = []*kipass.Notice{}
	if st.Components.DB.State != StateDown {
		nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ns, err := s.NoticeService.ListActiveNotices(nctx)
		cancel()
		if err != nil {
			s.Logger.Warn("list notices", "err", err)
		} else if ns != nil {
			st.Notices = ns
		}
	}
	if old, _ := s.status.get(); st.Components.DB.State == StateDown && old != nil {
		st.Notices = old.Notices // keep showing what was announced
	}
	st.State = worst(st.Components.DB.State, st.Components.Ingest.State)
	if old, _ := s.status.get(); old == nil || old.State != st.State {
		s.Logger.Info("status", "state", st.State, "db", st.Components.DB.State, "ingest", st.Components.Ingest.State)
	}
	s.status.set(st)
}

func worst(states ...string) string {
	rank := map[string]int{StateOK: 0, StateDegraded: 1, StateDown: 2}
	w := StateOK
	for _, st := range states {
		if rank[st] > rank[w] {
			w = st
		}
	}
	return w
}

// currentStatus returns the last checked status with the current server time.
func (s *Server) currentStatus() *Status {
	st, _ := s.status.get()
	c := *st
	c.ServerTime = s.Now().UTC()
	return &c
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.currentStatus())
}

// handleStatusStream sends the status as server-sent events: at once, on every change,
// and every StreamHeartbeat.
func (s *Server) handleStatusStream(w http.ResponseWriter, r *http.Request) {
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		s.shedRequest(w, r, "streams", 15*time.Second, "too many status subscribers: poll /v1/status instead")
		return
	}
	// The server's read and write timeouts are for ordinary requests: a stream lives
	// on, and must not have its context cancelled when the read deadline passes.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(s.Config.StreamHeartbeat)
	defer t.Stop()
	for {
		_, changed := s.status.get()
		b, _ := json.Marshal(s.currentStatus())
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := w.Write([]byte("event: status\ndata: " + string(b) + "\n\n")); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		rc.SetWriteDeadline(time.Time{})
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

var noticeLevels = map[string]bool{"info": true, "warning": true, "critical": true}

func (s *Server) handleCreateNotice(w http.ResponseWriter, r *http.Request) {
	if _, err := s.require(r, roleAdmin); err != nil {
		s.Error(w, r, err)
		return
	}
	var req CreateNoticeRequest
	if err := decodeJSON(w, r, MaxBodySize, &req); err != nil {
		s.Error(w, r, err)
		return
	}
	if !noticeLevels[req.Level] {
		s.Error(w, r, kipass.FieldErrorf("level", "must be info, warning or critical"))
		return
	}
	if req.MessageKO == "" || utf8.RuneCountInString(req.MessageKO) > 500 || !plainText(req.MessageKO) {
		s.Error(w, r, kipass.FieldErrorf("message_ko", "must be 1 to 500 characters of text"))
		return
	}
	if utf8.RuneCountInString(req.MessageEN) > 500 || !plainText(req.MessageEN) {
		s.Error(w, r, kipass.FieldErrorf("message_en", "must be at most 500 characters of text"))
		return
	}
	id := make([]byte, 8)
	rand.Read(id)
	n := &kipass.Notice{ID: "n-" + hex.EncodeToString(id), Level: req.Level, MessageKO: req.MessageKO, MessageEN: req.MessageEN, CreatedAt: s.Now().UTC()}
	if err := s.NoticeService.CreateNotice(r.Context(), n); err != nil {
		s.Error(w, r, err)
		return
	}
	s.Logger.Info("notice created", "notice", n.ID, "level", n.Level)
	s.status.poke()
	writeJSON(w, http.StatusCreated, n)
}

func (s *Server) handleEndNotice(w http.ResponseWriter, r *http.Request) {
	if _, err := s.require(r, roleAdmin); err != nil {
		s.Error(w, r, err)
		return
	}
	id := r.PathValue("id")
	if err := s.NoticeService.EndNotice(r.Context(), id, s.Now().UTC()); err != nil {
		s.Error(w, r, err)
		return
	}
	s.Logger.Info("notice ended", "notice", id)
	s.status.poke()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.DB != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.DB.Ready(ctx); err != nil {
			s.Logger.Warn("not ready", "err", err)
			s.Error(w, r, kipass.Errorf(kipass.EUNAVAILABLE, "database unreachable or migrations not current"))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) registerBundleRoutes() {
	s.handle("GET /v1/bundle", s.handleBundle)
}

// handleBundle serves the signed trust bundle as it was signed, with its ETag.
func (s *Server) handleBundle(w http.ResponseWriter, r *http.Request) {
	st := s.bundle.Load()
	w.Header().Set("ETag", st.etag)
	w.Header().Set("Cache-Control", "no-cache")
	if etagMatch(r.Header.Get("If-None-Match"), st.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/cose")
	w.Write(st.signed)
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// retention destroys the visits past the retention period every RetentionInterval,
// starting at once.
func (s *Server) retention(ctx context.Context) {
	t := time.NewTicker(s.Config.RetentionInterval)
	defer t.Stop()
	for {
		s.Purge(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Purge destroys the visits older than the retention period, as the background job
// does, and returns how many it destroyed.
func (s *Server) Purge(ctx context.Context) (int64, error) {
	cutoff := s.Now().Add(-kipass.Retention)
	n, err := s.VisitService.PurgeVisits(ctx, cutoff)
	if err != nil {
		if ctx.Err() == nil {
			s.metrics.purgeRuns.WithLabelValues("error").Inc()
			s.Logger.Error("retention purge", "err", err)
		}
		return n, err
	}
	s.metrics.purgeRuns.WithLabelValues("ok").Inc()
	s.metrics.purged.Add(float64(n))
	s.Logger.Info("retention purge", "destroyed_visits", n, "cutoff", cutoff.UTC().Format(time.RFC3339))
	return n, nil
}
