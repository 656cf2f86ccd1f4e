package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/demo"
	kiphttp "github.com/kipass/kipass/http"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/policy"
	"github.com/kipass/kipass/scanner"
	"github.com/kipass/kipass/seal"
	"github.com/kipass/kipass/trust"
)

func testKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(label))
	return ed25519.NewKeyFromSeed(seed[:])
}

var (
	rootKey   = testKey("root")
	issuerKey = testKey("issuer")
)

// mustBundle signs a bundle of the given version that trusts issuerKey.
func mustBundle(tb testing.TB, version uint64, sealPub []byte) []byte {
	tb.Helper()
	rules := policy.Default()
	pub := issuerKey.Public().(ed25519.PublicKey)
	b := &trust.Bundle{
		Version: version, MadeAt: demo.Start.Add(time.Duration(version) * time.Hour),
		Issuers:       []trust.IssuerKey{{KeyID: pass.KeyID(pub), Issuer: "test", PublicKey: pub, ValidFrom: demo.Start.AddDate(-1, 0, 0), ValidTo: demo.Start.AddDate(1, 0, 0)}},
		RevokedKeyIDs: []string{}, Rules: rules.Document(), Categories: rules.Categories(), Regions: rules.Regions(),
		SealingKey: sealPub,
	}
	signed, err := trust.Sign(b, rootKey)
	if err != nil {
		tb.Fatal(err)
	}
	return signed
}

func rootB64() string {
	return base64.StdEncoding.EncodeToString(rootKey.Public().(ed25519.PublicKey))
}

// mustPass mints a pass for the demo person at at.
func mustPass(tb testing.TB, p demo.Person, at time.Time) string {
	tb.Helper()
	text, err := pass.Sign(&pass.Claims{
		KeyID: pass.KeyID(issuerKey.Public().(ed25519.PublicKey)), IssuedAt: at, Expiry: at.Add(pass.DefaultTTL),
		TokenID: pass.NewTokenID(), SRef: make([]byte, pass.SRefSize), DTag: make([]byte, pass.DTagSize), Holder: p.Holder,
	}, issuerKey)
	if err != nil {
		tb.Fatal(err)
	}
	return text
}

func person(tb testing.TB, id string) demo.Person {
	for _, p := range demo.People() {
		if p.PersonID == id {
			return p
		}
	}
	tb.Fatalf("no demo person %s", id)
	return demo.Person{}
}

func TestLoadBundle(t *testing.T) {
	e := newEngine()
	t.Run("Verifies", func(t *testing.T) {
		got := e.loadBundle(mustBundle(t, 2, make([]byte, 32)), rootB64())
		if got["error"] != nil || got["version"] != float64(2) || len(got["categories"].([]any)) == 0 {
			t.Fatalf("loadBundle = %v", got)
		}
	})
	t.Run("ErrRollback", func(t *testing.T) {
		got := e.loadBundle(mustBundle(t, 1, make([]byte, 32)), rootB64())
		if got["error"] == nil || got["rollback"] != true {
			t.Fatalf("an older bundle was taken: %v", got)
		}
	})
	t.Run("ErrOtherRoot", func(t *testing.T) {
		other := base64.StdEncoding.EncodeToString(testKey("other root").Public().(ed25519.PublicKey))
		if got := e.loadBundle(mustBundle(t, 3, make([]byte, 32)), other); got["error"] == nil {
			t.Fatalf("a bundle under another root was taken: %v", got)
		}
	})
	t.Run("ErrBadRootKey", func(t *testing.T) {
		if got := e.loadBundle(mustBundle(t, 3, make([]byte, 32)), "not base64!"); got["error"] == nil {
			t.Fatal("a malformed root key was accepted")
		}
	})
}

func TestDecide(t *testing.T) {
	e := newEngine()
	gym := kipass.Place{Category: "gym", Region: "busan"}
	t.Run("ErrNoBundle", func(t *testing.T) {
		got := e.decide(mustPass(t, person(t, "R-0001"), demo.Start), gym.Category, gym.Region, 1, demo.Start)
		if got["outcome"] != "REFUSED" || got["refusal"] != RefusalNoBundle || got["detail_ko"] == "" {
			t.Fatalf("decide without a bundle = %v", got)
		}
	})
	e.loadBundle(mustBundle(t, 1, make([]byte, 32)), rootB64())
	now := demo.Start.Add(5 * time.Second)
	cases := []struct {
		name, person, category string
		outcome, basis         string
		until                  string
	}{
		{"Booster", "R-0001", "gym", "PASS", kipass.BasisBooster, ""},
		{"Vaccinated", "R-0002", "gym", "PASS", kipass.BasisVaccinated, "04-04 24:00까지"},
		{"Expired", "R-0003", "gym", "FAIL", policy.BasisExpired, ""},
		{"CinemaRemoved", "R-0003", "cinema", "NOT_REQUIRED", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := e.decide(mustPass(t, person(t, c.person), demo.Start), c.category, "busan", 1, now)
			if got["outcome"] != c.outcome || (c.basis != "" && got["basis"] != c.basis) {
				t.Fatalf("decide = %v, want %s %s", got, c.outcome, c.basis)
			}
			if got["basis_ko"] == "" || got["basis_ko"] == got["basis"] {
				t.Errorf("basis_ko = %q: want Korean words", got["basis_ko"])
			}
			if c.until != "" && got["until_ko"] != c.until {
				t.Errorf("until_ko = %q, want %q", got["until_ko"], c.until)
			}
			v, _ := got["visit"].(map[string]any)
			if (c.outcome == "FAIL") != (v == nil) {
				t.Fatalf("visit = %v for %s", v, c.outcome)
			}
			if v == nil {
				return
			}
			if v["method"] != kipass.MethodQR || v["decision"] != c.outcome || v["at"] != now.UTC().Format(time.RFC3339Nano) {
				t.Errorf("visit = %v", v)
			}
			for _, k := range []string{"id", "facility_id", "device_id", "received_at", "birth_date", "doses"} {
				if _, ok := v[k]; ok {
					t.Errorf("visit carries %q: %v", k, v)
				}
			}
			if tok, _ := v["token_id"].(string); len(tok) != base64.StdEncoding.EncodedLen(pass.TokenIDSize) {
				t.Errorf("visit token_id = %q", tok)
			}
		})
	}
	t.Run("Replayed", func(t *testing.T) {
		text := mustPass(t, person(t, "R-0001"), demo.Start)
		e.decide(text, "gym", "busan", 1, now)
		got := e.decide(text, "gym", "busan", 1, now.Add(time.Second))
		if got["outcome"] != "REFUSED" || got["refusal"] != scanner.RefusalReplayed || got["detail_ko"] == "" || got["visit"] != nil {
			t.Fatalf("replay = %v", got)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		got := e.decide(mustPass(t, person(t, "R-0001"), demo.Start), "gym", "busan", 1, demo.Start.Add(time.Hour))
		if got["outcome"] != "REFUSED" || got["refusal"] != scanner.RefusalExpired {
			t.Fatalf("decide an hour late = %v", got)
		}
	})
}

func TestDecodeQR(t *testing.T) {
	e := newEngine()
	text := mustPass(t, person(t, "R-0001"), demo.Start)
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	const w, h, scale = 640, 480, 5
	lum := make([]byte, w*h)
	for i := range lum {
		lum[i] = 200 // a grey background, as a camera sees a lit screen
	}
	bm := q.Bitmap()
	x0, y0 := (w-len(bm)*scale)/2, (h-len(bm)*scale)/2
	for y, row := range bm {
		for x, black := range row {
			if !black {
				continue
			}
			for dy := range scale {
				for dx := range scale {
					lum[(y0+y*scale+dy)*w+x0+x*scale+dx] = 20
				}
			}
		}
	}
	if got := e.decodeQR(lum, w, h); got != text {
		t.Fatalf("decodeQR = %q, want the pass text", got)
	}
	if got := e.decodeQR(make([]byte, w*h), w, h); got != "" {
		t.Errorf("decodeQR of a black frame = %q", got)
	}
	if got := e.decodeQR(lum[:100], w, h); got != "" {
		t.Errorf("decodeQR of a short buffer = %q", got)
	}
}

func BenchmarkDecodeQR(b *testing.B) {
	e := newEngine()
	q, _ := qrcode.New(mustPass(b, person(b, "R-0001"), demo.Start), qrcode.Medium)
	const w, h, scale = 640, 480, 5
	lum := make([]byte, w*h)
	bm := q.Bitmap()
	for i := range lum {
		lum[i] = 255
	}
	for y, row := range bm {
		for x, black := range row {
			if black {
				for d := range scale * scale {
					lum[(60+y*scale+d/scale)*w+100+x*scale+d%scale] = 0
				}
			}
		}
	}
	for b.Loop() {
		if e.decodeQR(lum, w, h) == "" {
			b.Fatal("no QR found")
		}
	}
}

func TestSealPhone(t *testing.T) {
	pub, priv, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine()
	if _, err := e.sealPhone("010-1234-5678"); err == nil {
		t.Fatal("sealed without a bundle")
	}
	e.loadBundle(mustBundle(t, 1, pub), rootB64())
	s, err := e.sealPhone("+82 10-1234-5678")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) <= 48 || len(sealed) > kiphttp.MaxContact {
		t.Errorf("sealed contact is %d bytes: central takes 49 to %d", len(sealed), kiphttp.MaxContact)
	}
	plain, err := seal.Open(priv, seal.InfoContact, sealed)
	if err != nil || string(plain) != "01012345678" {
		t.Fatalf("open = %q, %v; want the normalized number", plain, err)
	}
	if _, err := e.sealPhone("12345"); err == nil {
		t.Error("sealed a malformed number")
	}
}

func TestCheckSafeNumber(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"1234가나", "1234가나"}, {"12 34-가나", "1234가나"}, {"가1나234", "가1나234"},
		{"12345가", ""}, {"1234ab", ""}, {"1234가나다", ""}, {"", ""},
	} {
		got := checkSafeNumber(c.in)
		if got != c.want {
			t.Errorf("checkSafeNumber(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestUntilText(t *testing.T) {
	end := kipass.MustParseDate("2022-01-28").End()
	if got := untilText(end, "ko"); got != "01-28 24:00까지" {
		t.Errorf("untilText(end of 01-28) = %q", got)
	}
	if got := untilText(time.Date(2022, 1, 28, 15, 30, 0, 0, kipass.KST), "en"); got != "until 01-28 15:30" {
		t.Errorf("untilText(15:30) = %q", got)
	}
}
