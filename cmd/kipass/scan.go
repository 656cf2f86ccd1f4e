package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	nethttp "net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kipass/kipass"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/outbox"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/policy"
	"github.com/kipass/kipass/qrimage"
	"github.com/kipass/kipass/scanner"
	"github.com/kipass/kipass/trust"
)

func init() {
	register("scan", command{
		Summary: "kiosk scanner: decide passes from a keyboard-mode QR reader or image files, offline first",
		Run: func(ctx context.Context, env *Env, args []string) error {
			m := &scanMain{env: env}
			if err := m.ParseFlags(args); err != nil {
				return err
			}
			defer m.Close()
			return m.Run(ctx)
		},
	})
}

// Keys of the kiosk's state, kept in the outbox database beside the queued visits.
const (
	stateDevice  = "device"  // scanDevice JSON
	stateBundle  = "bundle"  // signed trust bundle bytes
	stateRootKey = "rootkey" // authority root public key
)

// scanDevice is what enrolment gave the kiosk.
type scanDevice struct {
	DeviceID string                  `json:"device_id"`
	Token    string                  `json:"token"`
	Facility kiphttp.EnrolledAtPlace `json:"facility"`
	Central  []string                `json:"central"`
}

// scanMain is `kipass scan`.
type scanMain struct {
	env      *Env
	State    string
	Enroll   string
	Central  []string
	RootKey  string
	Name     string
	Party    int
	JSON     bool
	Drain    time.Duration
	At       string
	Images   []string
	now      func() time.Time
	box      *outbox.Outbox
	dev      scanDevice
	mu       sync.Mutex // guards sc: decisions and bundle refreshes
	sc       *scanner.Scanner
	signed   []byte
	syncer   *outbox.Syncer
	clients  []*kiphttp.Client
	admitted int
}

// ParseFlags reads the command line, with KIPASS_* environment overrides.
func (m *scanMain) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.SetOutput(m.env.Stderr)
	fs.StringVar(&m.State, "state", envOr(m.env, "KIPASS_SCAN_STATE", "kipass-scanner.db"), "the kiosk's state and outbox (SQLite file)")
	fs.StringVar(&m.Enroll, "enroll", "", "enrol this kiosk with a facility's one-time enrollment code")
	central := fs.String("central", envOr(m.env, "KIPASS_CENTRAL", ""), "central URLs, comma-separated, tried in turn")
	fs.StringVar(&m.RootKey, "root-key", envOr(m.env, "KIPASS_ROOT_KEY", ""), "authority root public key file (with --enroll)")
	fs.StringVar(&m.Name, "name", "kiosk", "device name shown to the operator (with --enroll)")
	fs.IntVar(&m.Party, "party", 1, "party size for restaurants")
	fs.BoolVar(&m.JSON, "json", false, "print one JSON decision a line")
	fs.DurationVar(&m.Drain, "drain", 10*time.Second, "at the end of input, how long to wait for the outbox to drain")
	fs.StringVar(&m.At, "at", envOr(m.env, "KIPASS_DEMO_AT", ""), "start the scanner's clock at this RFC 3339 time (demo)")
	if err := fs.Parse(args); err != nil {
		return usageErrorf("%v", err)
	}
	m.Images = fs.Args()
	for _, u := range strings.Split(*central, ",") {
		if u = strings.TrimSpace(u); u != "" {
			m.Central = append(m.Central, u)
		}
	}
	if m.Party < 1 {
		return usageErrorf("--party: must be at least 1")
	}
	if m.Enroll != "" && (len(m.Central) == 0 || m.RootKey == "") {
		return usageErrorf("--enroll needs --central and --root-key")
	}
	m.now = time.Now
	if m.At != "" {
		t, err := parseTimeFlag("at", m.At, time.Time{})
		if err != nil {
			return err
		}
		t0 := time.Now()
		m.now = func() time.Time { return t.Add(time.Since(t0)) }
	}
	return nil
}

// Close closes the outbox.
func (m *scanMain) Close() error {
	if m.box != nil {
		return m.box.Close()
	}
	return nil
}

// Run enrols, or decides the passes of its input while syncing in the background.
func (m *scanMain) Run(ctx context.Context) error {
	var err error
	if m.box, err = outbox.Open(m.State); err != nil {
		return err
	}
	if m.Enroll != "" {
		return m.enroll(ctx)
	}
	if err := m.load(ctx); err != nil {
		return err
	}
	syncCtx, stopSync := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m.syncer.Run(syncCtx) }()
	go func() { defer wg.Done(); m.refreshBundle(syncCtx) }()
	err = m.decideInput(ctx)
	m.drain(ctx)
	stopSync()
	wg.Wait()
	n, _ := m.box.Len(context.Background())
	fmt.Fprintf(m.env.Stderr, "kipass scan: %d admitted this session; %d visits waiting in the outbox (kept safely on this device)\n", m.admitted, n)
	return err
}

func (m *scanMain) enroll(ctx context.Context) error {
	root, err := trust.ReadPublicKey(m.RootKey)
	if err != nil {
		return usageErrorf("--root-key: %v", err)
	}
	var lastErr error
	for _, u := range m.Central {
		c := kiphttp.NewClient(u, "")
		c.HTTPClient = httpClient()
		res, err := c.Enroll(ctx, m.Enroll, m.Name)
		if err != nil {
			lastErr = err
			if kipass.ErrorCode(err) == kipass.EINTERNAL || kipass.ErrorCode(err) == kipass.EUNAVAILABLE {
				continue // unreachable: try the next central
			}
			return fmt.Errorf("enrol: %s", kipass.ErrorMessage(err))
		}
		signed, _, err := c.Bundle(ctx, "")
		if err != nil {
			return fmt.Errorf("trust bundle: %w", err)
		}
		b, err := trust.Verify(signed, root, nil)
		if err != nil {
			return fmt.Errorf("trust bundle: %w", err)
		}
		dev, _ := json.Marshal(scanDevice{DeviceID: res.Device.ID, Token: res.Token, Facility: res.Facility, Central: m.Central})
		for k, v := range map[string][]byte{stateDevice: dev, stateBundle: signed, stateRootKey: root} {
			if err := m.box.SetState(ctx, k, v); err != nil {
				return err
			}
		}
		fmt.Fprintf(m.env.Stdout, "enrolled at %s (%s, %s); trust bundle version %d\n",
			res.Facility.Name, res.Facility.Category, res.Facility.Region, b.Version)
		return nil
	}
	return fmt.Errorf("enrol: no central reachable: %v", lastErr)
}

// load reads the kiosk's state and sets up the scanner and the syncer.
func (m *scanMain) load(ctx context.Context) error {
	dev, err := m.box.State(ctx, stateDevice)
	if errors.Is(err, outbox.ErrNoState) {
		return usageErrorf("this kiosk is not enrolled: run kipass scan --enroll CODE --central URL --root-key FILE")
	} else if err != nil {
		return err
	}
	if err := json.Unmarshal(dev, &m.dev); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if len(m.Central) == 0 {
		m.Central = m.dev.Central
	}
	root, _ := m.box.State(ctx, stateRootKey)
	signed, _ := m.box.State(ctx, stateBundle)
	b, err := trust.Verify(signed, root, nil)
	if err != nil {
		return fmt.Errorf("stored trust bundle: %w", err)
	}
	if m.sc, err = scanner.New(b); err != nil {
		return err
	}
	m.signed = signed
	m.syncer = &outbox.Syncer{Outbox: m.box, Now: m.now}
	for _, u := range m.Central {
		c := kiphttp.NewClient(u, m.dev.Token)
		c.HTTPClient = httpClient()
		m.clients = append(m.clients, c)
		m.syncer.Uploaders = append(m.syncer.Uploaders, c)
	}
	return nil
}

func httpClient() *nethttp.Client { return &nethttp.Client{Timeout: 15 * time.Second} }

// refreshBundle fetches a newer trust bundle every few minutes; a failure never stops
// scanning, and a bundle that does not verify or rolls back is ignored.
func (m *scanMain) refreshBundle(ctx context.Context) {
	root, _ := m.box.State(ctx, stateRootKey)
	etag := trust.ETag(m.signed)
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Minute):
		}
		c := m.clients[i%len(m.clients)]
		signed, tag, err := c.Bundle(ctx, etag)
		if err != nil || signed == nil {
			continue
		}
		m.mu.Lock()
		b, err := trust.Verify(signed, root, m.sc.Bundle())
		if err == nil {
			if sc, err := scanner.New(b); err == nil {
				m.sc, etag = sc, tag
				m.box.SetState(ctx, stateBundle, signed)
			}
		}
		m.mu.Unlock()
	}
}

// decideInput decides each image file given, or else each line of standard input.
func (m *scanMain) decideInput(ctx context.Context) error {
	if len(m.Images) > 0 {
		for _, path := range m.Images {
			f, err := os.Open(path)
			if err != nil {
				return usageErrorf("%s: %v", path, err)
			}
			text, err := qrimage.Decode(f)
			f.Close()
			if err != nil {
				fmt.Fprintf(m.env.Stdout, "%s: %v\n", path, err)
				continue
			}
			if err := m.decide(ctx, text); err != nil {
				return err
			}
		}
		return nil
	}
	in := bufio.NewScanner(m.env.Stdin)
	in.Buffer(make([]byte, 0, 4096), pass.MaxTextLen*2)
	for in.Scan() {
		if line := strings.TrimSpace(in.Text()); line != "" {
			if err := m.decide(ctx, line); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	return in.Err()
}

// decide decides one pass text. An admitted visit is durably in the outbox before the
// decision is shown.
func (m *scanMain) decide(ctx context.Context, text string) error {
	now := m.now()
	place := kipass.Place{Category: m.dev.Facility.Category, Region: m.dev.Facility.Region}
	m.mu.Lock()
	r := m.sc.Decide(text, place, m.Party, now)
	m.mu.Unlock()
	if r.Admitted() {
		if err := m.box.Add(ctx, r.Visit(kipass.NewVisitID(now), m.dev.Facility.ID, m.dev.DeviceID, now)); err != nil {
			return fmt.Errorf("outbox: %w (the visit was NOT recorded)", err)
		}
		m.admitted++
		m.syncer.Notify()
	}
	if m.JSON {
		return json.NewEncoder(m.env.Stdout).Encode(scanLine(&r))
	}
	fmt.Fprintln(m.env.Stdout, humanLine(&r))
	return nil
}

// scanLine is the JSON form of a decision: never the holder's facts.
func scanLine(r *scanner.Result) verifyLine {
	out := verifyLine{Decision: r.Outcome, Refusal: r.Refusal, KeyID: r.KeyID, ClockWarning: r.ClockWarning}
	if r.Outcome == scanner.Refused {
		out.Reason = r.Detail
		return out
	}
	out.Basis, out.Grace, out.Reason = r.Decision.Basis, r.Decision.Grace, r.Decision.Reason
	if r.Decision.ValidUntil != nil {
		t := r.Decision.ValidUntil.In(kipass.KST)
		out.ValidUntil = &t
	}
	return out
}

// humanLine is what the kiosk's screen shows: the decision, its basis in Korean words,
// and until when.
func humanLine(r *scanner.Result) string {
	if r.Outcome == scanner.Refused {
		return fmt.Sprintf("%-12s %s", "REFUSED", r.Detail)
	}
	s := fmt.Sprintf("%-12s %s", r.Outcome, policy.BasisText(r.Decision.Basis, "ko"))
	if r.Decision.ValidUntil != nil {
		s += " (" + r.Decision.ValidUntil.Add(-time.Second).In(kipass.KST).Format("01-02") + " 24:00까지)"
	}
	if r.Decision.Grace {
		s += " [계도기간]"
	}
	return s
}

// drain uploads what is waiting, for up to m.Drain.
func (m *scanMain) drain(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, m.Drain)
	defer cancel()
	for ctx.Err() == nil {
		if n, err := m.box.Len(ctx); err != nil || n == 0 {
			return
		}
		if r := m.syncer.SyncOnce(ctx); r.Err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}
