package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/authority"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/scanner"
	"github.com/kipass/kipass/trust"
)

func init() {
	register("pass", command{
		Summary: "visitor passes: mint, qr, verify",
		Run:     runPass,
	})
}

func runPass(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("usage: kipass pass mint|qr|verify [flags]")
	}
	switch args[0] {
	case "mint":
		return passMint(env, args[1:])
	case "qr":
		return passQR(env, args[1:])
	case "verify":
		return passVerify(env, args[1:])
	}
	return usageErrorf("unknown pass command %q", args[0])
}

// passMint signs a pass for the holder facts in a JSON file. The subject reference and
// day tag are random here: an issuer service makes real ones.
func passMint(env *Env, args []string) error {
	fs := flag.NewFlagSet("pass mint", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	keyFile := fs.String("key", "", "issuer private key file")
	holderFile := fs.String("holder", "", "holder facts, JSON (- for stdin)")
	ttl := fs.Duration("ttl", pass.DefaultTTL, "lifetime of the pass")
	at := fs.String("at", "", "issue time, RFC 3339 (default: now)")
	if err := fs.Parse(args); err != nil {
		return usageErrorf("%v", err)
	}
	if *keyFile == "" || *holderFile == "" {
		return usageErrorf("--key and --holder are required")
	}
	if *ttl <= 0 || *ttl > 24*time.Hour {
		return usageErrorf("--ttl: must be between 1s and 24h")
	}
	key, err := trust.ReadPrivateKey(*keyFile)
	if err != nil {
		return usageErrorf("--key: %v", err)
	}
	iat, err := parseTimeFlag("at", *at, time.Now())
	if err != nil {
		return err
	}
	var src io.Reader = env.Stdin
	if *holderFile != "-" {
		f, err := os.Open(*holderFile)
		if err != nil {
			return usageErrorf("--holder: %v", err)
		}
		defer f.Close()
		src = f
	}
	var h kipass.Holder
	if err := decodeStrict(src, &h); err != nil {
		return usageErrorf("--holder: %v", err)
	}
	text, err := pass.Sign(&pass.Claims{
		KeyID: pass.KeyID(key.Public().(ed25519.PublicKey)), IssuedAt: iat.Truncate(time.Second),
		Expiry: iat.Truncate(time.Second).Add(*ttl), TokenID: pass.NewTokenID(),
		SRef: randomBytes(pass.SRefSize), DTag: randomBytes(pass.DTagSize), Holder: h,
	}, key)
	if err != nil {
		return usageErrorf("--holder: %s", kipass.ErrorMessage(err))
	}
	fmt.Fprintln(env.Stdout, text)
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// decodeStrict decodes one JSON value, refusing unknown fields and trailing data.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// jsonError rewrites encoding/json errors so that they name the field.
func jsonError(err error) error {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		return fmt.Errorf("%s: wrong type (want %s)", ute.Field, ute.Type)
	case errors.As(err, &se):
		return fmt.Errorf("malformed JSON at byte %d", se.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("%s: unknown field", strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
	case errors.Is(err, io.EOF):
		return errors.New("empty input")
	}
	return err
}

// passQR writes a pass text as a QR code: a PNG file, the terminal, or both.
func passQR(env *Env, args []string) error {
	fs := flag.NewFlagSet("pass qr", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	out := fs.String("out", "", "PNG file to write")
	size := fs.Int("size", 480, "PNG width and height in pixels")
	term := fs.Bool("terminal", false, "print the code in the terminal")
	if err := fs.Parse(args); err != nil {
		return usageErrorf("%v", err)
	}
	var text string
	if fs.NArg() > 0 {
		text = fs.Arg(0)
	} else {
		b, err := io.ReadAll(io.LimitReader(env.Stdin, pass.MaxTextLen+2))
		if err != nil {
			return err
		}
		text = strings.TrimSpace(string(b))
	}
	if _, err := pass.Parse(text); err != nil {
		return usageErrorf("pass: %v", err)
	}
	if *out == "" && !*term {
		*term = true
	}
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return err
	}
	if *out != "" {
		if err := q.WriteFile(*size, *out); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "QR version %d (level M, %d characters) written to %s\n", q.VersionNumber, len(text), *out)
	}
	if *term {
		fmt.Fprint(env.Stdout, q.ToSmallString(false))
	}
	return nil
}

// verifyLine is one line of `kipass pass verify` output: the decision and nothing of
// the holder's facts.
type verifyLine struct {
	Decision     kipass.Outcome `json:"decision"`
	Basis        string         `json:"basis,omitempty"`
	ValidUntil   *time.Time     `json:"valid_until,omitempty"`
	Grace        bool           `json:"grace,omitempty"`
	Reason       string         `json:"reason"`
	Refusal      string         `json:"refusal,omitempty"`
	KeyID        string         `json:"key_id,omitempty"`
	ClockWarning bool           `json:"clock_warning,omitempty"`
}

// passVerify decides pass texts, one a line, as a scanner at a facility would.
func passVerify(env *Env, args []string) error {
	fs := flag.NewFlagSet("pass verify", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	bundleFile := fs.String("bundle", "", "signed trust bundle file")
	rootFile := fs.String("root-key", "", "authority root public key (default: root.pub beside the bundle)")
	category := fs.String("category", "", "facility category, e.g. restaurant")
	region := fs.String("region", "", "facility region, e.g. seoul")
	party := fs.Int("party", 1, "party size (restaurants)")
	at := fs.String("at", "", "time of the scan, RFC 3339 (default: now)")
	if err := fs.Parse(args); err != nil {
		return usageErrorf("%v", err)
	}
	if *bundleFile == "" || *category == "" || *region == "" {
		return usageErrorf("--bundle, --category and --region are required")
	}
	if *rootFile == "" {
		*rootFile = filepath.Join(filepath.Dir(*bundleFile), authority.RootPubFile)
	}
	root, err := trust.ReadPublicKey(*rootFile)
	if err != nil {
		return usageErrorf("--root-key: %v", err)
	}
	signed, err := os.ReadFile(*bundleFile)
	if err != nil {
		return usageErrorf("--bundle: %v", err)
	}
	b, err := trust.Verify(signed, root, nil)
	if err != nil {
		return usageErrorf("--bundle: %v", err)
	}
	if !b.HasCategory(*category) {
		return usageErrorf("--category: unknown category %q", *category)
	}
	if !b.HasRegion(*region) {
		return usageErrorf("--region: unknown region %q", *region)
	}
	if *party < 1 {
		return usageErrorf("--party: must be at least 1")
	}
	var fixedAt time.Time
	if *at != "" {
		if fixedAt, err = parseTimeFlag("at", *at, time.Time{}); err != nil {
			return err
		}
	}
	sc, err := scanner.New(b)
	if err != nil {
		return err
	}
	in := bufio.NewScanner(env.Stdin)
	in.Buffer(make([]byte, 0, 4096), pass.MaxTextLen*2)
	enc := json.NewEncoder(env.Stdout)
	place := kipass.Place{Category: *category, Region: *region}
	for in.Scan() {
		line := string(bytes.TrimSpace(in.Bytes()))
		if line == "" {
			continue
		}
		now := fixedAt
		if now.IsZero() {
			now = time.Now()
		}
		r := sc.Decide(line, place, *party, now)
		out := verifyLine{Decision: r.Outcome, Refusal: r.Refusal, KeyID: r.KeyID, ClockWarning: r.ClockWarning}
		if r.Outcome == scanner.Refused {
			out.Reason = r.Detail
		} else {
			out.Basis, out.Grace, out.Reason = r.Decision.Basis, r.Decision.Grace, r.Decision.Reason
			if r.Decision.ValidUntil != nil {
				t := r.Decision.ValidUntil.In(kipass.KST)
				out.ValidUntil = &t
			}
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	if err := in.Err(); err != nil {
		return usageErrorf("input: %v (a line longer than a pass?)", err)
	}
	return nil
}
