package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kipass/kipass/loadgen"
	"github.com/kipass/kipass/trust"
)

func init() {
	register("loadgen", command{
		Summary: "simulated scanners against central: offline decisions, durable outboxes, a checked report",
		Run: func(ctx context.Context, env *Env, args []string) error {
			return runLoadgen(ctx, env, args)
		},
	})
}

// parseRate reads "500", "500/s" or "30000/m" as visits per second.
func parseRate(s string) (float64, error) {
	num, unit, _ := strings.Cut(s, "/")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("rate %q: want a positive number, e.g. 500/s", s)
	}
	switch unit {
	case "", "s":
		return v, nil
	case "m", "min":
		return v / 60, nil
	}
	return 0, fmt.Errorf("rate %q: unit must be /s or /m", s)
}

func runLoadgen(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	central := fs.String("central", envOr(env, "KIPASS_CENTRAL", ""), "central base URLs, comma-separated (KIPASS_CENTRAL)")
	token := fs.String("admin-token", envOr(env, "KIPASS_ADMIN_TOKEN", ""), "operator token, to create the test facilities (KIPASS_ADMIN_TOKEN)")
	bundlePath := fs.String("bundle", envOr(env, "KIPASS_BUNDLE", ""), "signed trust bundle the scanners verify with (KIPASS_BUNDLE)")
	rootPath := fs.String("root-key", envOr(env, "KIPASS_ROOT_KEY", ""), "authority root public key (KIPASS_ROOT_KEY)")
	issuerPath := fs.String("issuer-key", envOr(env, "KIPASS_ISSUER_KEY", ""), "private key of an issuer in the bundle, to mint the visitors' passes (KIPASS_ISSUER_KEY)")
	scanners := fs.Int("scanners", 200, "simulated scanners, each with its own outbox")
	rate := fs.String("rate", "500/s", "base visit rate over all scanners")
	profile := fs.String("profile", loadgen.Steady, "steady, or lunch: a ramp to --peak times the rate and back")
	peak := fs.Float64("peak", 5, "lunch: the peak as a multiple of --rate")
	duration := fs.Duration("duration", 60*time.Second, "how long to scan")
	drain := fs.Duration("drain-timeout", 5*time.Minute, "how long to wait for the outboxes to empty afterwards")
	batch := fs.Int("batch", 100, "visits per upload")
	dir := fs.String("dir", "", "directory for the outboxes (default: a temporary one, removed after)")
	checkPG := fs.String("check-postgres", "", "PostgreSQL DSN of central's database, to check what was stored")
	checkSQLite := fs.String("check-sqlite", "", "central's SQLite database file, to check what was stored")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErrorf("%v", err)
	}
	r, err := parseRate(*rate)
	if err != nil {
		return usageErrorf("--rate: %v", err)
	}
	if *central == "" || *bundlePath == "" || *rootPath == "" || *issuerPath == "" {
		return usageErrorf("--central, --bundle, --root-key and --issuer-key are required")
	}
	if *checkPG != "" && *checkSQLite != "" {
		return usageErrorf("give at most one of --check-postgres and --check-sqlite")
	}
	root, err := trust.ReadPublicKey(*rootPath)
	if err != nil {
		return fmt.Errorf("--root-key: %w", err)
	}
	signed, err := os.ReadFile(*bundlePath)
	if err != nil {
		return fmt.Errorf("--bundle: %w", err)
	}
	bundle, err := trust.Verify(signed, root, nil)
	if err != nil {
		return fmt.Errorf("--bundle: %w", err)
	}
	issuer, err := trust.ReadPrivateKey(*issuerPath)
	if err != nil {
		return fmt.Errorf("--issuer-key: %w", err)
	}
	cfg := loadgen.Config{Centrals: splitList(*central), AdminToken: *token, Scanners: *scanners, Rate: r,
		Profile: *profile, Peak: *peak, Duration: *duration, DrainTimeout: *drain, Batch: *batch, Dir: *dir,
		Bundle: bundle, IssuerKey: issuer, Progress: env.Stderr}
	if cfg.Dir == "" {
		if cfg.Dir, err = os.MkdirTemp("", "kipass-loadgen-"); err != nil {
			return err
		}
		defer os.RemoveAll(cfg.Dir)
	}
	switch {
	case *checkPG != "":
		cfg.Checker = loadgen.PostgresChecker{DSN: *checkPG}
	case *checkSQLite != "":
		cfg.Checker = loadgen.SQLiteChecker{Path: *checkSQLite}
	}
	rep, err := loadgen.Run(ctx, cfg)
	if rep != nil {
		if *asJSON {
			fmt.Fprintln(env.Stdout, rep.JSON())
		} else {
			fmt.Fprintln(env.Stdout, rep)
		}
	}
	if err != nil {
		return err
	}
	if p := rep.Problems(); len(p) > 0 {
		return fmt.Errorf("promises broken: %s", strings.Join(p, "; "))
	}
	return nil
}
