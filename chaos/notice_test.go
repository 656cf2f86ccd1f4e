package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/internal/browsertest"
)

// watchStream follows /v1/status/stream, as every scanner does, and sends each status
// it announces.
func watchStream(ctx context.Context, t *testing.T, url string) <-chan *kiphttp.Status {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/v1/status/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status stream: %s", resp.Status)
	}
	out := make(chan *kiphttp.Status, 16)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			st := &kiphttp.Status{}
			if json.Unmarshal([]byte(data), st) == nil {
				select {
				case out <- st:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// TestOperatorNotice: the database primary dies and no HA manager steps in (the
// 2022-01-06 case). Without an operator lifting a finger, /v1/status and the status
// stream say the database is down within a minute; when it is back they say ok again.
func TestOperatorNotice(t *testing.T) {
	w := mustCluster(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := w.c.Nodes[1].URL()
	client := kiphttp.NewClient(url, "")
	if st, err := client.Status(ctx); err != nil || st.State != kiphttp.StateOK {
		t.Fatalf("before the fault: %v %+v", err, st)
	}
	stream := watchStream(ctx, t, url)
	<-stream // the current status, sent at once

	// The status page in a real browser, as an operator or a venue owner keeps it open.
	page := browsertest.New(t, 3*time.Minute)
	if _, err := chromedp.Run(page, chromedp.Navigate(url+"/status")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(page, chromedp.WaitVisible(`#state[data-state="ok"]`)); err != nil {
		t.Fatal(err)
	}

	primary := w.c.Primary()
	fault := time.Now()
	w.c.PG.Kill(primary)
	banner := make(chan time.Duration, 1)
	go func() {
		if _, err := chromedp.Run(page, chromedp.WaitVisible(`#state[data-state="down"]`)); err == nil {
			banner <- time.Since(fault)
		}
		close(banner)
	}()
	viaStatus, viaStream := waitState(t, ctx, client, stream, fault, kiphttp.StateDown, time.Minute)
	var viaPage time.Duration
	select {
	case d, ok := <-banner:
		if !ok {
			t.Fatal("the status page never showed the database down")
		}
		viaPage = d
	case <-time.After(time.Minute):
		t.Fatal("the status page did not show the database down within a minute")
	}
	t.Logf("database killed: /v1/status said down after %v, the stream after %v, the status page's banner after %v", viaStatus, viaStream, viaPage)
	for _, d := range []time.Duration{viaStatus, viaStream, viaPage} {
		if d >= time.Minute {
			t.Errorf("degraded state shown after %v, want < 1 minute", d)
		}
	}
	st, _ := client.Status(ctx)
	if st == nil || st.Components.DB.Reason == "" || st.Components.Ingest.State != kiphttp.StateDown {
		t.Errorf("down status does not say why: %+v", st)
	}

	if err := w.c.PG.Start(primary); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	okStatus, okStream := waitState(t, ctx, client, stream, back, kiphttp.StateOK, time.Minute)
	t.Logf("database restarted: /v1/status said ok after %v, the stream after %v", okStatus, okStream)
}

// waitState waits until both /v1/status and the stream show state and returns how
// long after since each took.
func waitState(t *testing.T, ctx context.Context, c *kiphttp.Client, stream <-chan *kiphttp.Status, since time.Time, state string, limit time.Duration) (viaStatus, viaStream time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for viaStatus == 0 || viaStream == 0 {
		select {
		case <-deadline:
			t.Fatalf("state %q not shown within %v (status %v, stream %v)", state, limit, viaStatus, viaStream)
		case st, ok := <-stream:
			if !ok {
				t.Fatal("status stream ended")
			}
			if st.State == state && viaStream == 0 {
				viaStream = time.Since(since)
			}
		case <-poll.C:
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := c.Status(pctx)
			cancel()
			if err == nil && st.State == state && viaStatus == 0 {
				viaStatus = time.Since(since)
			}
		}
	}
	return viaStatus, viaStream
}
