package scanweb_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/kipass/kipass/internal/browsertest"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/skip2/go-qrcode"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/authority"
	"github.com/kipass/kipass/demo"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/sqlite"
	"github.com/kipass/kipass/trust"
	scanweb "github.com/kipass/kipass/web/scanner"
)

// central is the real central service of the end-to-end tests: kiphttp.Server on a
// SQLite file, on the demo clock, with the scanner mounted at /scan/ on the same
// origin. It can be stopped and started again on the same address and database.
type central struct {
	t      testing.TB
	dir    string
	now    func() time.Time
	signed []byte
	bundle *trust.Bundle
	root   ed25519.PublicKey
	issuer ed25519.PrivateKey
	kid    string
	auth   *authority.Dir

	addr   string
	db     *sqlite.DB
	server *kiphttp.Server
	front  *http.Server

	facilities map[string]*kipass.Facility // demo facilities by category
}

const adminToken = "e2e-admin-token"

// newCentral makes an authority with one issuer, signs a trust bundle and starts
// central with the demo facilities.
func newCentral(t testing.TB) *central {
	t.Helper()
	c := &central{t: t, dir: t.TempDir(), now: demo.Clock(demo.Start), facilities: map[string]*kipass.Facility{}}
	a, err := authority.Init(filepath.Join(c.dir, "authority"))
	if err != nil {
		t.Fatal(err)
	}
	c.auth = a
	from := time.Date(2021, 1, 1, 0, 0, 0, 0, kipass.KST)
	keyFile := filepath.Join(c.dir, "issuer.key")
	if c.kid, _, err = a.AddIssuer("e2e issuer", nil, from, from.AddDate(10, 0, 0), keyFile); err != nil {
		t.Fatal(err)
	}
	if c.issuer, err = trust.ReadPrivateKey(keyFile); err != nil {
		t.Fatal(err)
	}
	if c.root, err = a.RootPublicKey(); err != nil {
		t.Fatal(err)
	}
	if c.signed, _, err = a.SignBundle(nil, from); err != nil {
		t.Fatal(err)
	}
	if c.bundle, err = trust.Verify(c.signed, c.root, nil); err != nil {
		t.Fatal(err)
	}
	c.start()
	t.Cleanup(c.stop)
	ctx := context.Background()
	for _, df := range demo.Facilities() {
		f := &kipass.Facility{Name: df.Name, BusinessNumber: df.BusinessNumber, Category: df.Category, Region: df.Region, Address: df.Address}
		if err := c.db.CreateFacility(ctx, f); err != nil {
			t.Fatal(err)
		}
		c.facilities[f.Category] = f
	}
	return c
}

// start opens the database and serves on c.addr (a new port the first time).
func (c *central) start() {
	t := c.t
	t.Helper()
	db, err := sqlite.OpenOptions(filepath.Join(c.dir, "central.db"), sqlite.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	s := kiphttp.NewServer()
	s.VisitService, s.FacilityService, s.AuditService, s.NoticeService = db, db, db, db
	s.DB = db
	s.IngestStats = db.IngestStats
	s.Auth = kiphttp.Auth{AdminTokens: []string{adminToken}}
	s.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s.Now = c.now
	s.Config.StatusInterval = time.Second
	s.SetBundle(c.signed, c.bundle)
	scan := scanweb.Handler(scanweb.Config{RootKey: c.root})
	ln := c.listen()
	if m, ok := any(s).(mounter); ok {
		// Central mounts the scanner itself, as kipass serve central does.
		m.Handle(scanweb.Prefix, scan)
		if err := s.Open(ln); err != nil {
			t.Fatal(err)
		}
	} else {
		// Central has no way to mount another handler yet: serve it on a listener
		// of its own that nobody calls, and put a front server on the address that
		// routes /scan/ to the scanner and everything else to central, one origin.
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Open(inner); err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle(scanweb.Prefix, scan)
		mux.Handle("/", s)
		c.front = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go c.front.Serve(ln)
	}
	c.db, c.server = db, s
}

// mounter is central's way to serve another handler beside its routes.
type mounter interface {
	Handle(pattern string, h http.Handler)
}

// listen listens on c.addr, a new port the first time and the same one after a stop.
func (c *central) listen() net.Listener {
	c.t.Helper()
	addr := c.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for i := 0; ; i++ { // the port of a stopped server can take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	return ln
}

// stop shuts central down as an outage does: connections drop, then nothing answers.
func (c *central) stop() {
	if c.server == nil {
		return
	}
	if c.front != nil {
		c.front.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.server.Close(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		c.t.Errorf("close central: %v", err)
	}
	if err := c.db.Close(); err != nil {
		c.t.Errorf("close database: %v", err)
	}
	c.front, c.server, c.db = nil, nil, nil
}

func (c *central) url() string { return "http://" + c.addr }

// code returns a fresh enrollment code for the demo facility of a category.
func (c *central) code(category string) string {
	c.t.Helper()
	f := c.facilities[category]
	if f == nil {
		c.t.Fatalf("no demo facility of category %s", category)
	}
	code := &kipass.EnrollmentCode{Code: kiphttp.NewEnrollmentCode(), FacilityID: f.ID, ExpiresAt: c.now().Add(time.Hour)}
	if err := c.db.CreateEnrollmentCode(context.Background(), code); err != nil {
		c.t.Fatal(err)
	}
	return code.Code
}

// mint returns a pass for the demo person issued at at, and its token id.
func (c *central) mint(personID string, at time.Time, key ed25519.PrivateKey) (string, []byte) {
	c.t.Helper()
	var holder *kipass.Holder
	for _, p := range demo.People() {
		if p.PersonID == personID {
			holder = &p.Holder
		}
	}
	if holder == nil {
		c.t.Fatalf("no demo person %s", personID)
	}
	if key == nil {
		key = c.issuer
	}
	rnd := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	claims := &pass.Claims{
		KeyID: pass.KeyID(key.Public().(ed25519.PublicKey)), IssuedAt: at.Truncate(time.Second), TokenID: pass.NewTokenID(),
		SRef: rnd(pass.SRefSize), DTag: rnd(pass.DTagSize), Holder: *holder,
	}
	claims.Expiry = claims.IssuedAt.Add(pass.DefaultTTL)
	text, err := pass.Sign(claims, key)
	if err != nil {
		c.t.Fatal(err)
	}
	return text, claims.TokenID
}

// waitVisits waits until central holds a visit for which ok is true at the facility
// of a category, and returns all its visits there.
func (c *central) waitVisits(category string, timeout time.Duration, ok func(*kipass.Visit) bool) []*kipass.Visit {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		vs := c.visits(category)
		if slices.ContainsFunc(vs, ok) || time.Now().After(deadline) {
			return vs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// visits returns the visits central holds for the facility of a category.
func (c *central) visits(category string) []*kipass.Visit {
	c.t.Helper()
	vs, err := c.db.FindVisitsAtFacility(context.Background(), c.facilities[category].ID, demo.Start.Add(-24*time.Hour), c.now().Add(24*time.Hour))
	if err != nil {
		c.t.Fatal(err)
	}
	return vs
}

// writeClip writes a Y4M clip (640x480, 4:2:0) of a few frames showing text as a QR
// code, large and centred with its quiet zone, for Chromium's fake camera.
func writeClip(t testing.TB, text string) string {
	t.Helper()
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	const w, h, frames = 640, 480, 5
	bm := q.Bitmap() // with a quiet zone of 4 modules
	scale := 440 / len(bm)
	x0, y0 := (w-len(bm)*scale)/2, (h-len(bm)*scale)/2
	y := bytes.Repeat([]byte{90}, w*h) // a dim room around a lit phone screen
	for r, row := range bm {
		for col, dark := range row {
			v := byte(230)
			if dark {
				v = 20
			}
			for dy := range scale {
				off := (y0+r*scale+dy)*w + x0 + col*scale
				for dx := range scale {
					y[off+dx] = v
				}
			}
		}
	}
	chroma := bytes.Repeat([]byte{128}, w*h/2) // U and V planes, 4:2:0
	var b bytes.Buffer
	fmt.Fprintf(&b, "YUV4MPEG2 W%d H%d F10:1 Ip A1:1 C420jpeg\n", w, h)
	for range frames {
		b.WriteString("FRAME\n")
		b.Write(y)
		b.Write(chroma)
	}
	path := filepath.Join(t.TempDir(), "qr.y4m")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// chromiumPath finds Debian's chromium (or another Chrome) or skips the test.
func chromiumPath(t testing.TB) string {
	return browsertest.Path(t)
}

// browser starts a headless Chromium with a fresh profile and a fake camera that
// shows clip (or Chromium's own test pattern when clip is ""). Console errors and
// uncaught exceptions of the page go to the test log.
func browser(t testing.TB, clip string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.WindowSize(1000, 900),
	}
	if clip != "" {
		opts = append(opts, chromedp.Flag("use-file-for-fake-video-capture", clip))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
				}
				t.Logf("page console %s: %s", ev.Type, strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := ""
			if d.Exception != nil {
				desc = d.Exception.Description
			}
			t.Logf("page exception: %s %s (%s:%d)", d.Text, desc, d.URL, d.LineNumber+1)
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs chromedp actions with a deadline and fails the test with what it was
// waiting for.
func run(t testing.TB, ctx context.Context, timeout time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
		bar, _ := chromedp.Run(hctx, chromedp.Text(chromedp.CSS("#statusbar")))
		hcancel()
		t.Fatalf("%s: %v (status bar: %s)", what, err, bar)
	}
}

// eval evaluates a JavaScript expression in the page and returns its value.
func eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// enroll opens the scanner and enrols it with an enrollment code of the category's
// demo facility, then waits until the page is ready to scan.
func enroll(t testing.TB, ctx context.Context, c *central, category string) {
	t.Helper()
	run(t, ctx, 60*time.Second, "enrol", chromedp.Navigate(c.url()+"/scan/"),
		chromedp.WaitVisible(chromedp.CSS("#enroll-code")),
		chromedp.SendKeys(chromedp.CSS("#enroll-code"), c.code(category)),
		chromedp.Click(chromedp.CSS("#enroll-submit")),
		chromedp.WaitReady(chromedp.CSS(`body[data-ready="1"]`)))
}

// decision is what the page shows for one scan.
type decision struct {
	Decision  string `json:"decision"`
	Seq       string `json:"seq"`
	LatencyMS string `json:"latencyMs"`
	DecodeMS  string `json:"decodeMs"`
	DecideMS  string `json:"decideMs"`
	SaveMS    string `json:"saveMs"`
	Saved     string `json:"saved"`
	Basis     string `json:"basis"`
	Detail    string `json:"detail"`
}

// readDecision waits for the seq-th decision on the page, for its visit to be in the
// outbox when there is one, and for its latency figures for the camera, and returns
// it.
func readDecision(t testing.TB, ctx context.Context, seq int, camera bool) decision {
	t.Helper()
	sel := fmt.Sprintf(`#decision[data-seq="%d"]:not([data-saved="pending"])`, seq)
	if camera {
		sel += "[data-latency-ms]"
	}
	run(t, ctx, 60*time.Second, "wait for decision "+sel, chromedp.WaitReady(chromedp.CSS(sel)))
	return eval[decision](t, ctx, `(() => { const e = document.getElementById('decision');
		return Object.assign({}, e.dataset, {basis: e.querySelector('.basis').textContent, detail: e.querySelector('.detail').textContent}); })()`)
}

// scanText enters a pass text into the keyboard-reader field followed by Enter, as a
// USB QR reader in keyboard mode does, and returns the decision shown. The first
// pass of a test is typed key by key; later ones are inserted at once and only Enter
// is a key press, which keeps the tests fast.
func scanText(t testing.TB, ctx context.Context, text string, seq int) decision {
	t.Helper()
	typeIn := chromedp.SendKeys(chromedp.CSS("#reader"), text)
	if typed[ctx] {
		typeIn = chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, input.InsertText, input.InsertTextParams{Text: text})
			return err
		})
	}
	typed[ctx] = true
	run(t, ctx, 30*time.Second, "type a pass", chromedp.Focus(chromedp.CSS("#reader")), typeIn,
		chromedp.SendKeys(chromedp.CSS("#reader"), "\n"))
	return readDecision(t, ctx, seq, false)
}

// typed remembers the browsers that have typed a pass key by key already.
var typed = map[context.Context]bool{}

// waitAttr waits until the element's attribute has the value.
func waitAttr(t testing.TB, ctx context.Context, timeout time.Duration, id, attr, value string) {
	t.Helper()
	run(t, ctx, timeout, fmt.Sprintf("wait for #%s[%s=%q]", id, attr, value),
		chromedp.WaitReady(chromedp.CSS(fmt.Sprintf(`#%s[%s=%q]`, id, attr, value))))
}
