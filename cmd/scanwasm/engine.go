// Command scanwasm is the browser scanner's WebAssembly module. It runs the very
// verification, rule and sealing code of the server and the CLI (packages trust,
// scanner, policy, seal) and the QR decoder, and exposes them to the page's JavaScript
// as the global object kipass: loadBundle, decide, decodeQR, sealPhone and
// checkSafeNumber. Build it with
//
//	GOOS=js GOARCH=wasm go build -trimpath -buildvcs=false -ldflags="-s -w" -o web/scanner/static/kipass.wasm ./cmd/scanwasm
//
// (see docs/scanner.md). This file and text.go hold the logic, free of syscall/js, so
// that it is tested on the host; main_js.go is the JavaScript glue.
package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/makiuchi-d/gozxing"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/internal/qrread"
	"github.com/kipass/kipass/policy"
	"github.com/kipass/kipass/scanner"
	"github.com/kipass/kipass/seal"
	"github.com/kipass/kipass/trust"
)

// RefusalNoBundle is the refusal of a scan made before any trust bundle was loaded.
const RefusalNoBundle = "no_bundle"

// engine is the scanner state the page keeps for its lifetime: the verified bundle,
// the scanner with its replay cache, and the frame buffer of the QR reader.
type engine struct {
	bundle *trust.Bundle
	sc     *scanner.Scanner
	frame  lumSource
}

func newEngine() *engine {
	return &engine{}
}

// loadBundle verifies signed bundle bytes against the base64 root key and, when they
// verify and are not older than the bundle held, makes them the bundle in use. The
// answer carries the bundle's version, made_at, categories and regions, or error.
func (e *engine) loadBundle(signed []byte, rootB64 string) map[string]any {
	root, err := base64.StdEncoding.DecodeString(rootB64)
	if err != nil || len(root) != ed25519.PublicKeySize {
		return map[string]any{"error": "the root key is not a base64 Ed25519 public key"}
	}
	b, err := trust.Verify(signed, ed25519.PublicKey(root), e.bundle)
	if err != nil {
		return map[string]any{"error": err.Error(), "rollback": errors.Is(err, trust.ErrRollback)}
	}
	if e.bundle != nil && b.Version == e.bundle.Version {
		// The same bundle again: keep the scanner and its replay cache.
		return bundleInfo(e.bundle)
	}
	sc, err := scanner.New(b)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	e.bundle, e.sc = b, sc
	return bundleInfo(b)
}

func bundleInfo(b *trust.Bundle) map[string]any {
	return map[string]any{
		"version":    float64(b.Version),
		"made_at":    b.MadeAt.UTC().Format(time.RFC3339),
		"categories": anyList(b.Categories),
		"regions":    anyList(b.Regions),
		"error":      nil,
	}
}

// anyList converts to the []any that syscall/js can hand to JavaScript.
func anyList(list []string) []any {
	out := make([]any, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
}

// decide verifies a pass text and applies the rules for the facility's category and
// region, the party size and the time now. For an admitted visitor (PASS or
// NOT_REQUIRED) the answer carries the visit record without its id, facility and
// device, which the page adds; for FAIL and REFUSED visit is null.
func (e *engine) decide(text, category, region string, party int, now time.Time) map[string]any {
	out := map[string]any{
		"outcome": "", "basis": "", "basis_ko": "", "basis_en": "", "reason": "",
		"valid_until": nil, "until_ko": "", "until_en": "", "grace": false,
		"refusal": "", "detail": "", "detail_ko": "", "clock_warning": false, "visit": nil,
	}
	if e.sc == nil {
		out["outcome"], out["refusal"] = string(scanner.Refused), RefusalNoBundle
		out["detail"], out["detail_ko"] = refusalText(RefusalNoBundle, "en", ""), refusalText(RefusalNoBundle, "ko", "")
		return out
	}
	r := e.sc.Decide(text, kipass.Place{Category: category, Region: region}, party, now)
	out["outcome"] = string(r.Outcome)
	out["clock_warning"] = r.ClockWarning
	if r.Outcome == scanner.Refused {
		out["refusal"] = r.Refusal
		out["detail"] = r.Detail
		out["detail_ko"] = refusalText(r.Refusal, "ko", r.Detail)
		return out
	}
	d := r.Decision
	out["basis"], out["reason"], out["grace"] = d.Basis, d.Reason, d.Grace
	out["basis_ko"], out["basis_en"] = policy.BasisText(d.Basis, "ko"), policy.BasisText(d.Basis, "en")
	if d.ValidUntil != nil {
		out["valid_until"] = d.ValidUntil.UTC().Format(time.RFC3339)
		out["until_ko"], out["until_en"] = untilText(*d.ValidUntil, "ko"), untilText(*d.ValidUntil, "en")
	}
	if r.Admitted() {
		v, err := visitJSON(r.Visit("", "", "", now))
		if err != nil {
			out["outcome"], out["refusal"], out["detail"] = string(scanner.Refused), scanner.RefusalMalformed, err.Error()
			out["detail_ko"] = refusalText(scanner.RefusalMalformed, "ko", "")
			return out
		}
		out["visit"] = v
	}
	return out
}

// visitJSON returns the visit record as its JSON object, less the fields the page
// fills in (id, facility_id, device_id) and the one only central sets.
func visitJSON(v *kipass.Visit) (map[string]any, error) {
	v.At = v.At.UTC()
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for _, k := range []string{"id", "facility_id", "device_id", "received_at"} {
		delete(m, k)
	}
	return m, nil
}

// decodeQR looks for a QR code in a frame of width x height luminance bytes (row
// major, one byte a pixel) and returns its text, or "" when there is none.
func (e *engine) decodeQR(lum []byte, width, height int) string {
	if width <= 0 || height <= 0 || len(lum) < width*height {
		return ""
	}
	e.frame = lumSource{LuminanceSourceBase: gozxing.LuminanceSourceBase{Width: width, Height: height}, pix: lum}
	bmp, err := gozxing.NewBinaryBitmap(gozxing.NewHybridBinarizer(&e.frame))
	if err != nil {
		return ""
	}
	text, err := qrread.Read(bmp)
	if err != nil {
		return ""
	}
	return text
}

// sealPhone normalizes a Korean phone number and seals it to the authority's key from
// the bundle, for a handwritten-log visit; it returns base64 of the sealed value, or
// an error for a malformed number or when no bundle is loaded.
func (e *engine) sealPhone(phone string) (string, error) {
	if e.bundle == nil || len(e.bundle.SealingKey) != seal.KeySize {
		return "", errors.New("no trust bundle with a sealing key is loaded")
	}
	n, ok := kipass.NormalizePhone(phone)
	if !ok {
		return "", errors.New("not a Korean phone number")
	}
	sealed, err := seal.Seal(e.bundle.SealingKey, seal.InfoContact, []byte(n))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sealed), nil
}

// lumSource is a gozxing.LuminanceSource over a frame's luminance bytes as the page
// computed them: no per-pixel interface calls, no copy.
type lumSource struct {
	gozxing.LuminanceSourceBase
	pix []byte
}

// GetRow returns row y of the frame.
func (s *lumSource) GetRow(y int, row []byte) ([]byte, error) {
	if y < 0 || y >= s.Height {
		return nil, errors.New("row outside the image")
	}
	if len(row) < s.Width {
		row = make([]byte, s.Width)
	}
	copy(row, s.pix[y*s.Width:(y+1)*s.Width])
	return row, nil
}

// GetMatrix returns the whole frame, row major.
func (s *lumSource) GetMatrix() []byte { return s.pix[:s.Width*s.Height] }

// Invert returns the frame with black and white swapped.
func (s *lumSource) Invert() gozxing.LuminanceSource { return gozxing.LuminanceSourceInvert(s) }

// String draws the frame as text, for debugging.
func (s *lumSource) String() string { return gozxing.LuminanceSourceString(s) }
