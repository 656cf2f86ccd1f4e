package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/issuer"
)

func init() {
	register("wallet", command{
		Summary: "show a visitor's current pass as a QR code in the terminal",
		Run: func(ctx context.Context, env *Env, args []string) error {
			w := &walletMain{env: env}
			if err := w.ParseFlags(args); err != nil {
				return err
			}
			return w.Run(ctx)
		},
	})
}

// walletMain is `kipass wallet`: the wallet page's pass, status and offline passes on a
// terminal, for the demo and for checking an issuer from a shell.
type walletMain struct {
	env     *Env
	Issuer  string
	Token   string
	Offline bool
	Watch   bool
	Lang    string
	client  *http.Client
}

// ParseFlags reads the command line, with KIPASS_ISSUER_URL and KIPASS_WALLET_TOKEN as
// defaults.
func (w *walletMain) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("wallet", flag.ContinueOnError)
	fs.SetOutput(w.env.Stderr)
	fs.StringVar(&w.Issuer, "issuer", envOr(w.env, "KIPASS_ISSUER_URL", "http://127.0.0.1:8081"), "base URL of the issuer (KIPASS_ISSUER_URL)")
	fs.StringVar(&w.Token, "token", envOr(w.env, "KIPASS_WALLET_TOKEN", ""), "wallet token from enrolment (KIPASS_WALLET_TOKEN)")
	fs.BoolVar(&w.Offline, "offline", false, "fetch the pre-issued offline passes (12 h of 5-minute windows) and print how many")
	fs.BoolVar(&w.Watch, "watch", false, "keep showing a fresh pass before each one expires, until interrupted")
	fs.StringVar(&w.Lang, "lang", envOr(w.env, "KIPASS_LANG", "ko"), "language of the status: ko or en (KIPASS_LANG)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErrorf("%v", err)
	}
	switch {
	case fs.NArg() > 0:
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	case w.Token == "":
		return usageErrorf("--token is required (the wallet token of an enrolled visitor)")
	case w.Lang != "ko" && w.Lang != "en":
		return usageErrorf("--lang: want ko or en")
	}
	w.Issuer = strings.TrimRight(w.Issuer, "/")
	w.client = &http.Client{Timeout: 30 * time.Second}
	return nil
}

// Run shows the pass (or fetches the offline passes).
func (w *walletMain) Run(ctx context.Context) error {
	if w.Offline {
		var r issuer.OfflineResponse
		if err := w.get(ctx, "/v1/passes/offline?hours=12&window=5m&qr=none", &r); err != nil {
			return err
		}
		if len(r.Passes) == 0 {
			return errors.New("the issuer returned no offline passes")
		}
		last := r.Passes[len(r.Passes)-1].ExpiresAt
		fmt.Fprintf(w.env.Stdout, "%s: %d (%s windows, until %s KST)\n", w.text("미리 받은 오프라인 패스", "pre-issued offline passes fetched"),
			len(r.Passes), r.Window, last.In(kipass.KST).Format("2006-01-02 15:04"))
		return nil
	}
	for {
		var p issuer.PassResponse
		// The terminal draws its own QR code: the SVG is not needed.
		if err := w.get(ctx, "/v1/pass?qr=none", &p); err != nil {
			return err
		}
		if err := w.show(&p); err != nil {
			return err
		}
		if !w.Watch {
			return nil
		}
		// Ask for the next pass a little before this one expires.
		lead := min(5*time.Second, time.Duration(p.ExpiresInMS)*time.Millisecond/3)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(p.ExpiresInMS)*time.Millisecond - lead):
		}
	}
}

func (w *walletMain) text(ko, en string) string {
	if w.Lang == "en" {
		return en
	}
	return ko
}

func (w *walletMain) show(p *issuer.PassResponse) error {
	q, err := qrcode.New(p.Pass, qrcode.Medium)
	if err != nil {
		return err
	}
	out := w.env.Stdout
	fmt.Fprint(out, q.ToSmallString(false))
	left := (time.Duration(p.ExpiresInMS) * time.Millisecond).Round(time.Second)
	until := p.ExpiresAt.In(kipass.KST).Format("15:04:05")
	if w.Lang == "en" {
		fmt.Fprintf(out, "Valid for %s (until %s KST)\n", left, until)
	} else {
		fmt.Fprintf(out, "%d초 남음 (%s까지 유효)\n", int(left.Seconds()), until)
	}
	for _, s := range p.Status {
		fmt.Fprintf(out, "  · %s\n", w.text(s.KO, s.EN))
	}
	if p.FactsStale {
		at := p.FactsAsOf.In(kipass.KST).Format("2006-01-02 15:04")
		fmt.Fprintln(out, w.text("접종 정보 확인 시각: "+at+" (최신 정보를 아직 확인하지 못했습니다)", "Vaccination record as of "+at+" (the latest could not be checked yet)"))
	}
	fmt.Fprintln(out, p.Pass)
	return nil
}

// get calls the issuer with the wallet token and decodes a 200 answer.
func (w *walletMain) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.Issuer+path, nil)
	if err != nil {
		return usageErrorf("--issuer: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+w.Token)
	req.Header.Set("Accept", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("issuer unreachable: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e issuer.ErrorResponse
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("issuer: HTTP %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("issuer: HTTP %d", resp.StatusCode)
	}
	return json.Unmarshal(body, out)
}
