package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/kipass/kipass/internal/browsertest"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/demo"
	"github.com/kipass/kipass/trace/tracetest"
	"github.com/kipass/kipass/web/console"
)

func chromiumPath(t testing.TB) string {
	return browsertest.Path(t)
}

// spy records every request body a handler gets, to show the key never leaves.
type spy struct {
	mu     sync.Mutex
	bodies bytes.Buffer
}

func (s *spy) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies.WriteString(r.URL.String() + "\n" + r.Header.Get("Authorization") + "\n")
		s.bodies.Write(b)
		s.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		h.ServeHTTP(w, r)
	})
}

func TestConsoleInChromium(t *testing.T) {
	chromium := chromiumPath(t)
	w := tracetest.New(t, demo.Start)
	w.Populate(tracetest.Options{Visitors: 150, Facilities: 12, Days: 7, VisitsPerDay: 60, CaseVisitsPerDay: 2, Seed: 5})
	casePerson := w.People[0]

	// Central serves the console at /console/ beside its API; the issuer runs on
	// another origin and allows the console's with console.CORS.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	origin := "http://" + ln.Addr().String()
	var seen spy
	iss := httptest.NewServer(seen.wrap(console.CORS(w.Issuer.Handler(), origin)))
	t.Cleanup(iss.Close)
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, console.Handler(console.Config{IssuerURL: iss.URL, IssuerKeys: map[string]string{w.IssuerKeyID: iss.URL}}))
	mux.Handle("/", w.Central)
	front := &http.Server{Handler: seen.wrap(mux), ReadHeaderTimeout: 10 * time.Second}
	go front.Serve(ln)
	t.Cleanup(func() { front.Close() })

	downloads := t.TempDir()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 900))
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	err = chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			t.Logf("page exception: %s", e.ExceptionDetails.Text)
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}

	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	type css = chromedp.CSS
	err = chromedp.Do(tctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads})
			return err
		}),
		chromedp.Navigate(origin+console.Prefix),
		chromedp.WaitVisible(css("#case-id")),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool]("typeof kipassTrace !== 'undefined'")(ctx, tg)
			return err
		}),
		chromedp.SetUploadFiles(css("#seal-key"), []string{w.SealKeyFile}),
		chromedp.WaitVisible(css("#key-state.ok")),
		chromedp.SendKeys(css("#central-token"), tracetest.InvestigatorToken),
		chromedp.SendKeys(css("#issuer-token"), tracetest.IssuerInvToken),
		chromedp.SendKeys(css("#case-id"), "C-WEB-1"),
		chromedp.SendKeys(css("#reason"), "확진자 역학조사"),
		chromedp.SendKeys(css("#subject"), casePerson.Phone),
		chromedp.Click(css("#run")),
		chromedp.WaitVisible(css(`body[data-state="done"]`)),
	)
	if err != nil {
		hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
		progress, _ := chromedp.Run(hctx, chromedp.Text(css("#progress")))
		hcancel()
		t.Fatalf("trace in the browser: %v (progress: %s)", err, progress)
	}
	title := eval[string](t, tctx, "document.querySelector('h1').textContent")
	if title != "역학조사 콘솔" {
		t.Errorf("title %q: want the Korean default", title)
	}

	// The page's contact list equals the ground truth.
	var got []struct {
		Name      string `json:"name"`
		Phone     string `json:"phone"`
		Exposures []struct {
			FacilityID string `json:"facilityId"`
			At         string `json:"at"`
			Method     string `json:"method"`
		} `json:"exposures"`
	}
	raw := eval[string](t, tctx, "JSON.stringify(lastResult.contacts)")
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	want := w.Expected(casePerson, time.Hour, 2*time.Hour)
	line := func(name, phone, fac, at, method string) string {
		return strings.Join([]string{name, phone, fac, at, method}, " ")
	}
	var gotLines, wantLines []string
	for _, c := range got {
		for _, e := range c.Exposures {
			at, _ := time.Parse(time.RFC3339Nano, e.At)
			gotLines = append(gotLines, line(c.Name, c.Phone, e.FacilityID, at.UTC().Format(time.RFC3339), e.Method))
		}
	}
	sealed := 0
	for _, c := range want {
		for _, e := range c.Exposures {
			wantLines = append(wantLines, line(c.Name, c.Phone, e.FacilityID, e.At.UTC().Format(time.RFC3339), e.Method))
			if e.Method == kipass.MethodPhone || e.Method == kipass.MethodManual {
				sealed++
			}
		}
	}
	sort.Strings(gotLines)
	sort.Strings(wantLines)
	if strings.Join(gotLines, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("contacts in the page:\n%s\nwant:\n%s", strings.Join(gotLines, "\n"), strings.Join(wantLines, "\n"))
	}
	if len(want) == 0 || sealed == 0 {
		t.Fatalf("the scenario has %d contacts, %d by sealed phone number: too few to test", len(want), sealed)
	}

	// The table, the picture and the CSV say the same.
	rows := eval[int](t, tctx, `document.querySelectorAll("#contacts tbody tr").length`)
	dots := eval[int](t, tctx, `document.querySelectorAll("#timeline circle.contact-visit").length`)
	caseMarks := eval[int](t, tctx, `document.querySelectorAll("#timeline .case-visit").length`)
	tableText := eval[string](t, tctx, `document.querySelector("#contacts").textContent`)
	csvText := eval[string](t, tctx, "lastCSV")
	if err := chromedp.Do(tctx, chromedp.Click(css("#csv"))); err != nil {
		t.Fatal(err)
	}
	if rows != len(want) || dots != len(wantLines) || caseMarks == 0 {
		t.Errorf("table rows %d (want %d), timeline dots %d (want %d), case marks %d", rows, len(want), dots, len(wantLines), caseMarks)
	}
	for _, c := range want {
		if !strings.Contains(tableText, c.Phone) {
			t.Errorf("the table lacks a contact")
		}
	}
	var file []byte
	for i := 0; i < 100; i++ {
		if file, err = os.ReadFile(filepath.Join(downloads, "contacts-C-WEB-1.csv")); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the CSV did not download: %v", err)
	}
	file = bytes.TrimPrefix(file, []byte("\ufeff"))
	if string(file) != csvText || strings.Count(csvText, "\n") != len(wantLines)+1 {
		t.Errorf("downloaded CSV (%d lines):\n%s\nwant %d rows", strings.Count(string(file), "\n"), file, len(wantLines))
	}
	if !strings.HasPrefix(csvText, "contact,name,phone,facility_id,method,visit_at,case_visit_at,offset_minutes\n") {
		t.Errorf("CSV header: %q", strings.SplitN(csvText, "\n", 2)[0])
	}

	// English on request.
	if err := chromedp.Do(tctx, chromedp.Click(css("#lang"))); err != nil {
		t.Fatal(err)
	}
	if en := eval[string](t, tctx, "document.querySelector('h1').textContent"); en != "Investigator console" {
		t.Errorf("English title %q", en)
	}

	// The private key never left the page.
	keyText, _ := os.ReadFile(w.SealKeyFile)
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if k := strings.TrimSpace(string(keyText)); k == "" || strings.Contains(seen.bodies.String(), k) {
		t.Error("the private sealing key was sent to a server")
	}
	if !strings.Contains(seen.bodies.String(), "/v1/trace/resolve") {
		t.Error("the spy saw no issuer call: it proves nothing")
	}
}

func TestCORS(t *testing.T) {
	h := console.CORS(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }), "http://console.example")
	for _, tc := range []struct {
		name, method, origin string
		status               int
		allow                string
	}{
		{"Preflight", "OPTIONS", "http://console.example", http.StatusNoContent, "http://console.example"},
		{"Allowed", "POST", "http://console.example", http.StatusTeapot, "http://console.example"},
		{"OtherOrigin", "POST", "http://evil.example", http.StatusTeapot, ""},
		{"NoOrigin", "GET", "", http.StatusTeapot, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/v1/trace/resolve", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			r.Header.Set("Access-Control-Request-Method", "POST")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tc.status || rec.Header().Get("Access-Control-Allow-Origin") != tc.allow {
				t.Errorf("HTTP %d, allow %q", rec.Code, rec.Header().Get("Access-Control-Allow-Origin"))
			}
		})
	}
}

// eval evaluates a JavaScript expression in the page and returns its value.
func eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}
