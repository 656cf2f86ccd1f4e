package issuer_test

import (
	"bytes"
	"context"
	"github.com/kipass/kipass/internal/browsertest"
	"image/png"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	gozxingqr "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/issuer"
	"github.com/kipass/kipass/issuer/subject"
)

// chromiumPath finds Debian's chromium.
func chromiumPath(t *testing.T) string {
	return browsertest.Path(t)
}

// browser starts a headless Chromium with a fresh profile and returns a tab context.
func browser(t *testing.T) context.Context {
	t.Helper()
	alloc, cancel := chromedp.NewExecAllocator(t.Context(),
		chromedp.ExecPath(chromiumPath(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(800, 1400))
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestWalletInChromium drives the wallet page in a real headless Chromium: sign in
// through the form with the console code, see a QR whose data-pass and whose pixels
// both decode to a pass that verifies, see it change before it expires, and use the
// page in English, at 200% zoom, from a token link and offline.
func TestWalletInChromium(t *testing.T) {
	h := newHarness(t, func(c *issuer.Config) { c.PassTTL = 3 * time.Second })
	ctx := browser(t)
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	attr := func(sel, name string) string {
		t.Helper()
		r, err := chromedp.Run(ctx, chromedp.AttributeValue(sel, name))
		if err != nil {
			t.Fatal(err)
		}
		return r.Value
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.TextContent(sel))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	eval := func(js string) bool {
		t.Helper()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		// Long enough for the offline passes (145 QR codes) under the race detector.
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	// Sign in through the form; the code comes from the console verifier.
	p := person("R-0001")
	do(chromedp.Navigate(h.URL+"/wallet"), chromedp.WaitVisible("#enrol-form"),
		chromedp.SetValue("#name", p.Name), chromedp.SendKeys("#phone", "010-0000-0001"),
		chromedp.SetValue("#birth", p.Holder.BirthDate.String()), chromedp.SendKeys("#person", p.PersonID),
		chromedp.Click("#enrol-submit"), chromedp.WaitVisible("#code"))
	var code string
	waitFor("the one-time code", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.codes {
			code = c
		}
		return code != ""
	})
	do(chromedp.SendKeys("#code", code), chromedp.Click("#code-submit"), chromedp.WaitVisible("#wallet"), chromedp.WaitReady("#qr[data-pass]"))

	// The QR's data-pass verifies, and its pixels decode to the same text.
	var shown string
	for try := 0; ; try++ {
		before := attr("#qr", "data-pass")
		shot, err := chromedp.Run(ctx, chromedp.Screenshot("#qr", chromedp.NodeVisible))
		if err != nil {
			t.Fatal(err)
		}
		if after := attr("#qr", "data-pass"); after != before {
			if try > 5 {
				t.Fatal("the QR keeps changing during a screenshot")
			}
			continue // refreshed in between: try again
		}
		if got := decodeQR(t, shot); got != before {
			t.Fatalf("the QR image decodes to %.40q..., the data-pass is %.40q...", got, before)
		}
		shown = before
		break
	}
	if r := h.scanAt(shown, h.clock.Now()); r.Outcome != kipass.PASS || r.Decision.Basis != kipass.BasisBooster {
		t.Fatalf("scanner: %s %s %s", r.Outcome, r.Decision.Basis, r.Detail)
	}

	// It changes before it expires.
	first := mustParse(t, shown)
	waitFor("a new QR", func() bool {
		cur := attr("#qr", "data-pass")
		if cur == shown || cur == "" {
			return false
		}
		if now := h.clock.Now(); !now.Before(first.Expiry) {
			t.Fatalf("the QR changed at %s, after the pass expired at %s", now, first.Expiry)
		}
		if r := h.scanAt(cur, h.clock.Now()); r.Outcome != kipass.PASS {
			t.Fatalf("the refreshed pass: %s %s", r.Outcome, r.Detail)
		}
		return true
	})

	// Words, accessibility and the safe number.
	if s := text("#status"); !strings.Contains(s, "3차 접종 완료") {
		t.Errorf("status %q", s)
	}
	if role, label := attr("#qr", "role"), attr("#qr", "aria-label"); role != "img" || !strings.Contains(label, "까지 유효합니다") {
		t.Errorf("QR role %q label %q", role, label)
	}
	if attr("#countdown", "aria-live") != "polite" || !regexp.MustCompile(`\d초 남음`).MatchString(text("#cd-visual")) {
		t.Errorf("countdown %q", text("#countdown"))
	}
	if !eval(`[...document.querySelectorAll('button')].every(b => (b.textContent.trim() || b.getAttribute('aria-label')))`) {
		t.Error("a button has no label")
	}
	if !eval(`[...document.querySelectorAll('input')].every(i => i.labels.length > 0)`) {
		t.Error("an input has no label")
	}
	waitFor("the safe number", func() bool { _, ok := subject.NormalizeSafeNumber(text("#safe-number")); return ok })

	// English, and back.
	do(chromedp.Click("#lang"))
	if !eval(`document.documentElement.lang === 'en'`) || !strings.Contains(text("#status"), "Booster dose received") || text("#lang") != "한국어" {
		t.Errorf("English: lang switch did not apply: %q", text("#status"))
	}
	do(chromedp.Click("#lang"))

	// At 200% zoom (half the CSS width) nothing scrolls sideways.
	do(chromedp.EmulateViewport(360, 900, chromedp.EmulateScale(2)))
	if !eval(`document.documentElement.scrollWidth <= document.documentElement.clientWidth`) {
		t.Error("the page scrolls horizontally at 200% zoom")
	}
	if !eval(`document.getElementById('qr').getBoundingClientRect().width > 250`) {
		t.Error("the QR shrank at 200% zoom")
	}
	do(chromedp.ResetViewport())

	// A token link signs in another visitor.
	q := person("R-0002")
	do(chromedp.Navigate(h.URL+"/wallet#token="+h.enrol(q)), chromedp.WaitVisible("#wallet"))
	waitFor("the second visitor's QR", func() bool {
		cur := attr("#qr", "data-pass")
		return cur != "" && cur != shown && h.scanAt(cur, h.clock.Now()).Decision.Basis == kipass.BasisVaccinated
	})
	if eval(`location.hash !== ''`) {
		t.Error("the token stays in the address bar")
	}

	// Offline: save the passes ahead, lose the issuer, and the current window's pass shows.
	do(chromedp.Click("#offline-fetch"))
	waitFor("the offline passes", func() bool {
		return regexp.MustCompile(`미리 받은 패스 \d+개`).MatchString(text("#offline-info"))
	})
	waitFor("the service worker", func() bool { return eval(`navigator.serviceWorker.controller !== null`) })
	h.close()
	do(chromedp.Click("#refresh"), chromedp.WaitVisible("#offline-banner"))
	off := attr("#qr", "data-pass")
	c := mustParse(t, off)
	now := h.clock.Now()
	if c.Expiry.Sub(c.IssuedAt) != 5*time.Minute || now.Before(c.IssuedAt) || !now.Before(c.Expiry) {
		t.Fatalf("offline pass for %s to %s shown at %s", c.IssuedAt, c.Expiry, now)
	}
	if r := h.scanAt(off, now); r.Outcome != kipass.PASS {
		t.Fatalf("offline pass: %s %s", r.Outcome, r.Detail)
	}
	if s := text("#offline-banner"); !strings.Contains(s, "오프라인") {
		t.Errorf("offline banner %q", s)
	}

	// The page itself opens without the issuer: the service worker serves it, and it
	// shows the saved pass.
	do(chromedp.Reload(), chromedp.WaitVisible("#offline-banner"))
	if cur := attr("#qr", "data-pass"); cur == "" || h.scanAt(cur, h.clock.Now()).Outcome != kipass.PASS {
		t.Fatal("after a reload without the issuer, no valid saved pass is shown")
	}
}

// decodeQR reads the QR code in a PNG screenshot.
func decodeQR(t *testing.T, shot []byte) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := gozxingqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("the QR screenshot does not decode: %v", err)
	}
	return res.GetText()
}
