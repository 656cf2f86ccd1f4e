package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/internal/browsertest"
)

// TestStatusPage opens central's status page in a real Chromium: it shows the healthy
// state in Korean, then an operator notice arrives through the event stream without a
// reload, and the English switch works.
func TestStatusPage(t *testing.T) {
	m := MustRunCentral(t, t.TempDir())
	defer m.Close()
	ctx := browsertest.New(t, 60*time.Second)
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for _, a := range steps {
			if _, err := chromedp.Run(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	run(chromedp.Navigate(m.URL()+"/status"), chromedp.WaitVisible(`#state[data-state="ok"]`))
	if banner := text("#state"); !strings.Contains(banner, "정상") {
		t.Fatalf("banner %q is not the Korean healthy state", banner)
	}
	admin := kiphttp.NewClient(m.URL(), testAdminToken)
	if err := admin.Do(context.Background(), "POST", "/v1/notices", map[string]string{
		"level": "warning", "message_ko": "업로드 지연: 스캔 기록은 기기에 안전합니다", "message_en": "Uploads delayed",
	}, nil); err != nil {
		t.Fatal(err)
	}
	run(chromedp.WaitVisible(`#notices .notice`))
	if notice := text("#notices"); !strings.Contains(notice, "업로드 지연") {
		t.Fatalf("notice shows %q", notice)
	}
	run(chromedp.Click("#lang"), chromedp.WaitVisible(`#lang`))
	if state := text("#state"); !strings.Contains(state, "normal") {
		t.Fatalf("English banner %q", state)
	}
}
