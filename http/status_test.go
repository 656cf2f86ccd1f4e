package http_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
)

func TestStatusAndNotices(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{})
		ctx := context.Background()

		st, err := e.Anonymous.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != kiphttp.StateOK || st.Components.DB.State != kiphttp.StateOK || st.Components.Ingest.State != kiphttp.StateOK || len(st.Notices) != 0 {
			t.Fatalf("%+v", st)
		}
		if d := st.ServerTime.Sub(e.Clock.Now()); d > time.Second || d < -time.Second {
			t.Fatalf("server time %v, clock %v", st.ServerTime, e.Clock.Now())
		}

		// Subscribe before the notice: the stream sends the status at once, then on change.
		req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/v1/status/stream", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("content type %q", ct)
		}
		events := readEvents(resp)
		if first := <-events; first.State != kiphttp.StateOK {
			t.Fatalf("first event %+v", first)
		}

		var n kipass.Notice
		if err := e.Admin.Do(ctx, "POST", "/v1/notices", kiphttp.CreateNoticeRequest{Level: "warning", MessageKO: "업로드 지연: 스캔은 기기에 안전하게 저장됩니다", MessageEN: "uploads delayed"}, &n); err != nil {
			t.Fatal(err)
		}
		if n.ID == "" || n.Level != "warning" {
			t.Fatalf("%+v", n)
		}
		select {
		case ev := <-events:
			if len(ev.Notices) != 1 || ev.Notices[0].ID != n.ID {
				t.Fatalf("event after notice: %+v", ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event after the notice")
		}
		if st, _ = e.Anonymous.Status(ctx); len(st.Notices) != 1 || st.Notices[0].MessageEN != "uploads delayed" {
			t.Fatalf("status notices %+v", st.Notices)
		}
		if r := e.Do("POST", "/v1/notices/"+n.ID+"/end", adminToken, nil); r.Status != http.StatusNoContent {
			t.Fatalf("end: %d %s", r.Status, r.Body)
		}
		waitFor(t, func() bool { st, _ := e.Anonymous.Status(ctx); return len(st.Notices) == 0 })
		expectError(t, e.Do("POST", "/v1/notices/n-nope/end", adminToken, nil), 404, kipass.ENOTFOUND, "")
		expectError(t, e.DoJSON("POST", "/v1/notices", adminToken, map[string]string{"level": "panic", "message_ko": "x"}), 400, kipass.EINVALID, "level")
		expectError(t, e.DoJSON("POST", "/v1/notices", adminToken, map[string]string{"level": "info"}), 400, kipass.EINVALID, "message_ko")
	})
}

// readEvents decodes the status events of a server-sent event stream.
func readEvents(resp *http.Response) <-chan *kiphttp.Status {
	ch := make(chan *kiphttp.Status, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var st kiphttp.Status
				if json.Unmarshal([]byte(data), &st) == nil {
					ch <- &st
				}
			}
		}
	}()
	return ch
}

// downDB is a Checker whose database is unreachable.
type downDB struct{}

func (downDB) Ping(context.Context) error  { return errors.New("dial tcp: connection refused") }
func (downDB) Ready(context.Context) error { return errors.New("dial tcp: connection refused") }

func TestStatusDatabaseDown(t *testing.T) {
	e := MustOpenEnv(t, backends[0], envOptions{server: func(s *kiphttp.Server) { s.DB = downDB{} }})
	ctx := context.Background()
	st, err := e.Anonymous.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != kiphttp.StateDown || st.Components.DB.State != kiphttp.StateDown || st.Components.Ingest.State != kiphttp.StateDown {
		t.Fatalf("%+v", st)
	}
	if strings.Contains(st.Components.DB.Reason, "tcp") {
		t.Fatalf("internal detail leaks into the status: %q", st.Components.DB.Reason)
	}
	expectError(t, e.Do("GET", "/readyz", "", nil), 503, kipass.EUNAVAILABLE, "")
	if r := e.Do("GET", "/healthz", "", nil); r.Status != 200 {
		t.Fatalf("healthz: %d", r.Status)
	}
}

func TestStatusSlowCommits(t *testing.T) {
	e := MustOpenEnv(t, backends[0], envOptions{server: func(s *kiphttp.Server) {
		s.IngestStats = func() kipass.IngestStats {
			return kipass.IngestStats{QueueDepth: 10, QueueCapacity: 10000, LastCommitLatency: 3 * time.Second}
		}
	}})
	st, err := e.Anonymous.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.State != kiphttp.StateDegraded || st.Components.Ingest.State != kiphttp.StateDegraded || st.Components.Ingest.LastCommitMS != 3000 || st.Components.Ingest.QueueDepth != 10 {
		t.Fatalf("%+v", st)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{})
		if r := e.Do("GET", "/healthz", "", nil); r.Status != 200 {
			t.Fatalf("healthz: %d", r.Status)
		}
		if r := e.Do("GET", "/readyz", "", nil); r.Status != 200 {
			t.Fatalf("readyz: %d %s", r.Status, r.Body)
		}
		f := e.MustCreateFacility("지표 식당", "")
		dev, _ := e.MustEnroll(f.ID)
		if _, err := dev.UploadVisits(context.Background(), []*kipass.Visit{QRVisit(f.ID, e.Clock.Now())}); err != nil {
			t.Fatal(err)
		}
		r := e.Do("GET", "/metrics", "", nil)
		for _, want := range []string{
			`kipass_ingest_visits_total{status="stored"} 1`,
			"kipass_ingest_batch_size_count 1",
			"kipass_ingest_commit_seconds_count 1",
			"kipass_ingest_queue_depth",
			`kipass_shed_requests_total{cause="store_queue"} 0`,
			"kipass_retention_purged_visits_total",
			`kipass_http_request_duration_seconds_count{code="200",route="POST /v1/visits"} 1`,
			"go_goroutines",
		} {
			if !bytes.Contains(r.Body, []byte(want)) {
				t.Errorf("metrics lack %q", want)
			}
		}
		expectError(t, e.Do("GET", "/v1/nothing", "", nil), 404, kipass.ENOTFOUND, "")
		if r := e.Do("PUT", "/v1/status", "", nil); r.Status != http.StatusMethodNotAllowed {
			t.Fatalf("PUT /v1/status: %d", r.Status)
		}
	})
}

func TestBundle(t *testing.T) {
	e := MustOpenEnv(t, backends[0], envOptions{})
	r := e.Do("GET", "/v1/bundle", "", nil)
	if r.Status != 200 || !bytes.Equal(r.Body, e.Signed) || r.Header.Get("Content-Type") != "application/cose" {
		t.Fatalf("%d %q", r.Status, r.Header.Get("Content-Type"))
	}
	etag := r.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if r := e.Do("GET", "/v1/bundle", "", nil, "If-None-Match", etag); r.Status != http.StatusNotModified || len(r.Body) != 0 {
		t.Fatalf("If-None-Match: %d", r.Status)
	}
	if r := e.Do("GET", "/v1/bundle", "", nil, "If-None-Match", `"stale"`); r.Status != 200 {
		t.Fatalf("stale ETag: %d", r.Status)
	}
	signed, tag, err := e.Anonymous.Bundle(context.Background(), etag)
	if err != nil || signed != nil || tag != etag {
		t.Fatalf("client with current ETag: %v %d %q", err, len(signed), tag)
	}
}

// TestRetention runs the retention job with an injected clock: 28 days after a visit,
// it is destroyed and the purge is counted.
func TestRetention(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		e := MustOpenEnv(t, b, envOptions{config: func(c *kiphttp.Config) { c.RetentionInterval = 20 * time.Millisecond }})
		ctx := context.Background()
		f := e.MustCreateFacility("보존 식당", "")
		dev, _ := e.MustEnroll(f.ID)
		now := e.Clock.Now()
		old, recent := QRVisit(f.ID, now.Add(-27*24*time.Hour)), QRVisit(f.ID, now.Add(-time.Hour))
		if _, err := dev.UploadVisits(ctx, []*kipass.Visit{old, recent}); err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(25 * time.Hour) // old is now 28 days and 1 hour old
		waitFor(t, func() bool { n, _ := e.Store.CountVisit(ctx, old.ID); return n == 0 })
		if n, err := e.Store.CountVisit(ctx, recent.ID); err != nil || n != 1 {
			t.Fatalf("the recent visit was destroyed: %d %v", n, err)
		}
		waitFor(t, func() bool {
			return bytes.Contains(e.Do("GET", "/metrics", "", nil).Body, []byte("kipass_retention_purged_visits_total 1"))
		})
		if !strings.Contains(e.Logs.String(), "destroyed_visits=1") {
			t.Fatal("the purge is not logged")
		}
	})
}

// TestStatusStreamOutlivesTimeouts keeps a stream open past the server's read
// timeout: it must still deliver changes.
func TestStatusStreamOutlivesTimeouts(t *testing.T) {
	e := MustOpenEnv(t, backends[0], envOptions{server: func(s *kiphttp.Server) { kiphttp.SetReadTimeout(s, 200*time.Millisecond) }})
	ctx := context.Background()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/v1/status/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := readEvents(resp)
	<-events
	time.Sleep(600 * time.Millisecond)
	if err := e.Admin.Do(ctx, "POST", "/v1/notices", kiphttp.CreateNoticeRequest{Level: "info", MessageKO: "점검 안내"}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case ev, ok := <-events:
		if !ok || len(ev.Notices) != 1 {
			t.Fatalf("event %+v (stream open: %v)", ev, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event after the read timeout passed")
	}
}
