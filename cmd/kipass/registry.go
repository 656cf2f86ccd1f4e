package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kipass/kipass/registry"
	regsqlite "github.com/kipass/kipass/registry/sqlite"
)

// defaultRegistryData is where the registry commands keep registry.db when neither
// --data nor KIPASS_DATA says otherwise: the demo's data directory.
const defaultRegistryData = "kipass-data"

func init() {
	services["registry"] = func(ctx context.Context, env *Env, args []string) error {
		m := &registryMain{env: env}
		if err := m.ParseFlags(args); err != nil {
			return err
		}
		if err := m.Run(); err != nil {
			m.Close()
			return err
		}
		<-ctx.Done()
		return m.Close()
	}
	register("registry", command{
		Summary: "immunization registry data: import FILE, synth --people N",
		Run:     runRegistry,
	})
}

// registryMain is `kipass serve registry`: the immunization registry's API on its own
// SQLite file, DATA/registry.db. Tests run it in-process: ParseFlags, Run, Close.
type registryMain struct {
	env *Env

	Addr            string
	DataDir         string
	Config          registry.Config
	ShutdownTimeout time.Duration

	store   *regsqlite.Store
	srv     *registry.Server
	ln      net.Listener
	serveCh chan error
}

// ParseFlags reads the command line; KIPASS_* environment variables set the defaults,
// so that tokens need not appear on the command line.
func (m *registryMain) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("serve registry", flag.ContinueOnError)
	fs.SetOutput(m.env.Stderr)
	env := func(name, def string) string { return envOr(m.env, name, def) }
	fs.StringVar(&m.Addr, "addr", env("KIPASS_ADDR", "127.0.0.1:8090"), "listen address (KIPASS_ADDR)")
	fs.StringVar(&m.DataDir, "data", env("KIPASS_DATA", defaultRegistryData), "data directory; the database is DATA/"+regsqlite.FileName+" (KIPASS_DATA)")
	pg := fs.String("postgres", env("KIPASS_POSTGRES", ""), "not supported: the registry keeps its records in SQLite")
	admin := fs.String("admin-token", env("KIPASS_REGISTRY_ADMIN_TOKEN", ""), "operator bearer token(s), comma-separated: write records (KIPASS_REGISTRY_ADMIN_TOKEN)")
	issuers := fs.String("issuer-tokens", env("KIPASS_REGISTRY_ISSUER_TOKENS", ""), `issuer tokens "name:token,name2:token2": read holder facts (KIPASS_REGISTRY_ISSUER_TOKENS)`)
	maxInflight := fs.Int("max-inflight", registry.DefaultMaxInflight, "concurrent requests before shedding with 429")
	fs.DurationVar(&m.ShutdownTimeout, "shutdown-timeout", 8*time.Second, "how long to finish in-flight requests on SIGTERM")
	logLevel := fs.String("log-level", env("KIPASS_LOG_LEVEL", "info"), "debug, info, warn or error (KIPASS_LOG_LEVEL)")
	if err := usageParse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if *pg != "" {
		return usageErrorf("--postgres: the registry keeps its records in SQLite; give --data DIR")
	}
	if m.DataDir == "" {
		return usageErrorf("--data is required")
	}
	for _, t := range strings.Split(*admin, ",") {
		if t = strings.TrimSpace(t); t != "" {
			m.Config.AdminTokens = append(m.Config.AdminTokens, t)
		}
	}
	var err error
	if m.Config.IssuerTokens, err = registry.ParseIssuerTokens(*issuers); err != nil {
		return usageErrorf("--issuer-tokens: %v", err)
	}
	if *maxInflight <= 0 {
		return usageErrorf("--max-inflight: want a positive number")
	}
	m.Config.MaxInflight = *maxInflight
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErrorf("--log-level: %v", err)
	}
	m.Config.Logger = slog.New(slog.NewTextHandler(m.env.Stderr, &slog.HandlerOptions{Level: level}))
	return nil
}

// Run opens the database, listens and serves in the background; it returns once the
// server is up. Close stops it.
func (m *registryMain) Run() error {
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	var err error
	if m.store, err = regsqlite.Open(filepath.Join(m.DataDir, regsqlite.FileName)); err != nil {
		return err
	}
	if m.ln, err = net.Listen("tcp", m.Addr); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.srv = registry.NewServer(m.store, m.Config)
	m.serveCh = make(chan error, 1)
	go func() { m.serveCh <- m.srv.Serve(m.ln) }()
	m.Config.Logger.Info("registry listening", "url", m.URL(), "database", filepath.Join(m.DataDir, regsqlite.FileName))
	return nil
}

// URL returns the base URL of the running server.
func (m *registryMain) URL() string {
	if m.ln == nil {
		return ""
	}
	return "http://" + m.ln.Addr().String()
}

// Close finishes the requests in flight, within ShutdownTimeout, and closes the
// database. It is safe to call more than once.
func (m *registryMain) Close() error {
	var errs []error
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.ShutdownTimeout)
		errs = append(errs, m.srv.Shutdown(ctx))
		cancel()
		errs = append(errs, <-m.serveCh)
		m.srv = nil
	} else if m.ln != nil {
		m.ln.Close()
	}
	m.ln = nil
	if m.store != nil {
		errs = append(errs, m.store.Close())
		m.store = nil
	}
	return errors.Join(errs...)
}

// runRegistry is `kipass registry import|synth`.
func runRegistry(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("usage: kipass registry import FILE [--data DIR] | synth --people N [--seed S] [--out FILE]")
	}
	switch args[0] {
	case "import":
		return registryImport(ctx, env, args[1:])
	case "synth":
		return registrySynth(env, args[1:])
	}
	return usageErrorf("unknown registry command %q (want import or synth)", args[0])
}

// registryImport is `kipass registry import FILE`: it writes straight into
// DATA/registry.db, beside a running server if there is one. It exits 0 when the file
// was read to the end, whatever it rejected (1 with --strict), and 1 when the file
// could not be read or stored.
func registryImport(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("registry import", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	data := fs.String("data", envOr(env, "KIPASS_DATA", defaultRegistryData), "data directory; the database is DATA/"+regsqlite.FileName+" (KIPASS_DATA)")
	format := fs.String("format", "", "csv or jsonl (default: by the file's extension, then its content)")
	nowFlag := fs.String("now", "", "no fact may lie after this time, RFC 3339 (default: now)")
	batch := fs.Int("batch", registry.DefaultBatchSize, "rows per transaction")
	maxReported := fs.Int("max-reported", registry.DefaultMaxReported, "rejected rows listed in the summary")
	strict := fs.Bool("strict", false, "exit 1 when any row is rejected")
	quiet := fs.Bool("quiet", false, "no progress bar")
	files, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usageErrorf("usage: kipass registry import FILE [--data DIR] (FILE - reads stdin)")
	}
	if *format != "" && *format != registry.FormatCSV && *format != registry.FormatJSONL {
		return usageErrorf("--format: want csv or jsonl")
	}
	if *batch <= 0 || *maxReported <= 0 {
		return usageErrorf("--batch and --max-reported: want positive numbers")
	}
	now, err := parseTimeFlag("now", *nowFlag, time.Now())
	if err != nil {
		return err
	}
	name := files[0]
	var in io.Reader = env.Stdin
	var size int64
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		in = f
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	store, err := regsqlite.Open(filepath.Join(*data, regsqlite.FileName))
	if err != nil {
		return err
	}
	defer store.Close()

	bar := newProgressBar(env.Stderr, *quiet)
	rep, err := registry.Import(ctx, in, store, registry.ImportOptions{
		Format: *format, Name: name, Size: size, Now: now, BatchSize: *batch, MaxReported: *maxReported,
		Progress: bar.show, ProgressInterval: bar.interval,
	})
	printImportReport(env.Stdout, name, rep)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", name, err)
	case *strict && rep.Rejected > 0:
		return fmt.Errorf("%s: %d rows rejected (--strict)", name, rep.Rejected)
	}
	return nil
}

// printImportReport writes the summary of an import.
func printImportReport(w io.Writer, name string, rep *registry.ImportReport) {
	fmt.Fprintf(w, "%s (%s): %s rows read, %s stored, %s rejected in %.1f s (%s rows/s)\n", name, rep.Format,
		groupThousands(rep.Rows), groupThousands(rep.Stored), groupThousands(rep.Rejected), rep.Elapsed.Seconds(), groupThousands(int(rep.RowsPerSecond())))
	if len(rep.Rejections) > 0 {
		fmt.Fprintln(w, "rejected rows:")
		for _, r := range rep.Rejections {
			fmt.Fprintf(w, "  %s\n", r)
		}
		if more := rep.Rejected - len(rep.Rejections); more > 0 {
			fmt.Fprintf(w, "  ... and %s more rejected rows\n", groupThousands(more))
		}
	}
	if rep.MissingFinalNewline {
		fmt.Fprintln(w, "note: the last line has no line end; it was valid and is stored, but check that the file is complete")
	}
}

// progressBar draws the progress of an import on stderr: a bar redrawn in place on a
// terminal, a line every few seconds elsewhere (a CI log), nothing with --quiet.
type progressBar struct {
	w        io.Writer
	tty      bool
	off      bool
	interval time.Duration
}

func newProgressBar(w io.Writer, quiet bool) *progressBar {
	b := &progressBar{w: w, off: quiet, interval: 5 * time.Second}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			b.tty, b.interval = true, 200*time.Millisecond
		}
	}
	return b
}

func (b *progressBar) show(p registry.ImportProgress) {
	if b.off || (p.Done && !b.tty) {
		return
	}
	rate := 0.0
	if p.Elapsed > 0 {
		rate = float64(p.Rows) / p.Elapsed.Seconds()
	}
	const width = 30
	pct, bar := "", ""
	if p.Size > 0 {
		f := min(float64(p.Bytes)/float64(p.Size), 1)
		n := int(f * width)
		bar = "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "] "
		pct = fmt.Sprintf("%5.1f%%  ", f*100)
	}
	line := fmt.Sprintf("%s%s%s rows  %s rows/s  %s stored  %s rejected", bar, pct,
		groupThousands(p.Rows), groupThousands(int(rate)), groupThousands(p.Stored), groupThousands(p.Rejected))
	switch {
	case !b.tty:
		fmt.Fprintln(b.w, line)
	case p.Done:
		fmt.Fprintf(b.w, "\r%s\n", line)
	default:
		fmt.Fprintf(b.w, "\r%s", line)
	}
}

// registrySynth is `kipass registry synth --people N`.
func registrySynth(env *Env, args []string) error {
	fs := flag.NewFlagSet("registry synth", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	people := fs.Int("people", 0, "how many people")
	seed := fs.Uint64("seed", 1, "random seed: the same seed writes the same file")
	out := fs.String("out", "-", "file to write (- for stdout)")
	format := fs.String("format", "", "jsonl or csv (default: by --out's extension, else jsonl)")
	atFlag := fs.String("at", registry.SynthAt.Format(time.RFC3339), "the population as of this time, RFC 3339 (the mix is calibrated for late January 2022)")
	rest, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErrorf("unexpected argument %q", rest[0])
	}
	if *people <= 0 {
		return usageErrorf("--people: want a positive number")
	}
	if *format == "" {
		*format = registry.FormatJSONL
		if strings.EqualFold(filepath.Ext(*out), ".csv") {
			*format = registry.FormatCSV
		}
	}
	if *format != registry.FormatCSV && *format != registry.FormatJSONL {
		return usageErrorf("--format: want jsonl or csv")
	}
	at, err := parseTimeFlag("at", *atFlag, registry.SynthAt)
	if err != nil {
		return err
	}
	opts := registry.SynthOptions{People: *people, Seed: *seed, At: at}
	start := time.Now()
	if *out == "-" {
		_, err := registry.WriteSynth(env.Stdout, *format, opts)
		return err
	}
	// Write beside the target and rename, so that an interrupted run never leaves a
	// file that looks whole.
	f, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	n, err := registry.WriteSynth(f, *format, opts)
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp makes it 0600; synthetic data is no secret
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), *out)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "wrote %s people to %s (%s, seed %d) in %.1f s\n", groupThousands(n), *out, *format, *seed, time.Since(start).Seconds())
	return nil
}

// usageParse parses fs, turning errors other than -h into usage errors.
func usageParse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErrorf("%v", err)
	}
	return nil
}

// parseFlagsAnywhere parses flags given before or after the positional arguments
// (`import FILE --data DIR`) and returns the positional ones.
func parseFlagsAnywhere(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := usageParse(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// groupThousands formats n with thousands separators: 1,000,000.
func groupThousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
