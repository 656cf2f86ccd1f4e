// Package browsertest starts a real headless Chromium for the web pages' tests, with
// the flags this project's machines need (no sandbox as root, no background
// networking on a closed network) and a fresh profile per test.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path returns Debian's chromium (or another Chrome). Under CI it fails the test when
// there is none, because .ci/run installs it; elsewhere it skips.
func Path(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		tb.Fatal("no chromium on PATH: .ci/run installs Debian's chromium")
	}
	tb.Skip("no chromium on PATH (apt-get install chromium)")
	return ""
}

// New starts a headless Chromium with a fresh profile and returns a tab context that
// ends with the test or after timeout. extra adds flags, such as a fake camera.
func New(tb testing.TB, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) context.Context {
	tb.Helper()
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(Path(tb)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(tb.TempDir()),
	}, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	tb.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}
