package pass_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/base45"
	"github.com/kipass/kipass/pass"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestKey returns a fixed issuer key, so that golden passes are byte-identical.
func testKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("kipass test issuer key"))
	return ed25519.NewKeyFromSeed(seed[:])
}

func fixed(label string, n int) []byte {
	sum := sha256.Sum256([]byte(label))
	return bytes.Repeat(sum[:], 2)[:n]
}

func date(s string) *kipass.Date {
	d := kipass.MustParseDate(s)
	return &d
}

// typicalClaims is the typical pass of issue 2: two doses and a booster, no tests.
func typicalClaims() *pass.Claims {
	iat := time.Date(2022, 1, 12, 12, 0, 0, 0, kipass.KST)
	return &pass.Claims{
		KeyID:    pass.KeyID(testKey().Public().(ed25519.PublicKey)),
		IssuedAt: iat, Expiry: iat.Add(pass.DefaultTTL),
		TokenID: fixed("token", pass.TokenIDSize),
		SRef:    fixed("sref", pass.SRefSize),
		DTag:    fixed("dtag", pass.DTagSize),
		Holder: kipass.Holder{
			BirthDate: date("1985-03-14"),
			Doses: []kipass.Dose{
				{Date: kipass.MustParseDate("2021-06-20"), Product: kipass.ProductAstraZeneca},
				{Date: kipass.MustParseDate("2021-09-05"), Product: kipass.ProductPfizer},
				{Date: kipass.MustParseDate("2021-12-20"), Product: kipass.ProductModerna},
			},
		},
	}
}

// fullClaims uses every holder field.
func fullClaims() *pass.Claims {
	c := typicalClaims()
	c.Holder.Tests = []kipass.Test{
		{Kind: kipass.TestPCR, Result: kipass.ResultNegative, At: time.Date(2022, 1, 11, 10, 0, 0, 0, kipass.KST)},
		{Kind: kipass.TestRAT, Result: kipass.ResultPositive, At: time.Date(2021, 11, 1, 9, 30, 0, 0, kipass.KST)},
		{Kind: kipass.TestSelf, Result: kipass.ResultNegative, At: time.Date(2022, 1, 12, 8, 0, 0, 0, kipass.KST)},
	}
	c.Holder.RecoveredOn = date("2021-11-15")
	c.Holder.Exemption = kipass.ExemptionMedical
	return c
}

func TestGolden(t *testing.T) {
	for name, c := range map[string]*pass.Claims{"typical": typicalClaims(), "full": fullClaims()} {
		t.Run(name, func(t *testing.T) {
			text, err := pass.Sign(c, testKey())
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".pass")
			if *update {
				if err := os.WriteFile(path, []byte(text+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if text != strings.TrimSpace(string(want)) {
				t.Fatalf("pass differs from %s (run go test ./pass -update if the format changed on purpose)\n got %s", path, text)
			}
			p, err := pass.Parse(text)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Verify(testKey().Public().(ed25519.PublicKey)); err != nil {
				t.Fatal(err)
			}
			assertClaimsEqual(t, &p.Claims, c)
		})
	}
}

func assertClaimsEqual(t *testing.T, got, want *pass.Claims) {
	t.Helper()
	if got.KeyID != want.KeyID || !got.IssuedAt.Equal(want.IssuedAt) || !got.Expiry.Equal(want.Expiry) ||
		!bytes.Equal(got.TokenID, want.TokenID) || !bytes.Equal(got.SRef, want.SRef) || !bytes.Equal(got.DTag, want.DTag) {
		t.Fatalf("claims differ:\n got %+v\nwant %+v", got, want)
	}
	g, w := got.Holder, want.Holder
	if (g.BirthDate == nil) != (w.BirthDate == nil) || (g.BirthDate != nil && *g.BirthDate != *w.BirthDate) ||
		(g.RecoveredOn == nil) != (w.RecoveredOn == nil) || (g.RecoveredOn != nil && *g.RecoveredOn != *w.RecoveredOn) ||
		g.Exemption != w.Exemption || len(g.Doses) != len(w.Doses) || len(g.Tests) != len(w.Tests) {
		t.Fatalf("holder differs:\n got %+v\nwant %+v", g, w)
	}
	for i := range g.Doses {
		if g.Doses[i] != w.Doses[i] {
			t.Fatalf("dose %d: got %+v want %+v", i, g.Doses[i], w.Doses[i])
		}
	}
	for i := range g.Tests {
		if g.Tests[i].Kind != w.Tests[i].Kind || g.Tests[i].Result != w.Tests[i].Result || !g.Tests[i].At.Equal(w.Tests[i].At) {
			t.Fatalf("test %d: got %+v want %+v", i, g.Tests[i], w.Tests[i])
		}
	}
}

// TestQRSize checks the typical pass fits a version 11 QR code at level M, in
// alphanumeric mode, and logs the size reached.
func TestQRSize(t *testing.T) {
	text, err := pass.Sign(typicalClaims(), testKey())
	if err != nil {
		t.Fatal(err)
	}
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("typical pass: %d characters, QR version %d at level M", len(text), q.VersionNumber)
	if q.VersionNumber > 11 {
		t.Fatalf("typical pass needs QR version %d (%d characters), want 11 or lower", q.VersionNumber, len(text))
	}
	if len(text) > 366 {
		t.Fatalf("typical pass is %d characters, over the 366 of version 11-M alphanumeric", len(text))
	}
}

func TestTamper(t *testing.T) {
	key := testKey()
	pub := key.Public().(ed25519.PublicKey)
	text, err := pass.Sign(fullClaims(), key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base45.DecodeString(text[len(pass.Prefix):])
	if err != nil {
		t.Fatal(err)
	}
	t.Run("EveryByte", func(t *testing.T) {
		for i := range raw {
			for _, flip := range []byte{0x01, 0x80, 0xff} {
				b := bytes.Clone(raw)
				b[i] ^= flip
				if p, err := pass.Parse(pass.Prefix + base45.Encode(b)); err == nil {
					if err := p.Verify(pub); err == nil {
						t.Fatalf("byte %d ^ %#x accepted", i, flip)
					}
				}
			}
		}
	})
	t.Run("EveryCharacter", func(t *testing.T) {
		for i := len(pass.Prefix); i < len(text); i++ {
			c := byte('0')
			if text[i] == '0' {
				c = '1'
			}
			s := text[:i] + string(c) + text[i+1:]
			if p, err := pass.Parse(s); err == nil {
				if err := p.Verify(pub); err == nil {
					t.Fatalf("character %d changed and accepted", i)
				}
			}
		}
	})
	t.Run("ErrWrongKey", func(t *testing.T) {
		_, other, _ := ed25519.GenerateKey(nil)
		p, _ := pass.Parse(text)
		if err := p.Verify(other.Public().(ed25519.PublicKey)); !errors.Is(err, pass.ErrBadSignature) {
			t.Fatalf("want ErrBadSignature, got %v", err)
		}
	})
}

func TestParseErrors(t *testing.T) {
	good, _ := pass.Sign(typicalClaims(), testKey())
	for name, text := range map[string]string{
		"ErrEmpty":     "",
		"ErrPrefix":    "KP2:" + good[4:],
		"ErrBase45":    "KP1:abc",
		"ErrNotCOSE":   "KP1:" + base45.Encode([]byte("hello world")),
		"ErrTooLong":   "KP1:" + strings.Repeat("0", pass.MaxTextLen),
		"ErrTruncated": good[:len(good)-3],
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := pass.Parse(text); !errors.Is(err, pass.ErrMalformed) {
				t.Fatalf("want ErrMalformed, got %v", err)
			}
		})
	}
}

func TestSignErrors(t *testing.T) {
	for name, mutate := range map[string]func(c *pass.Claims){
		"ErrKeyID":   func(c *pass.Claims) { c.KeyID = "zz" },
		"ErrTokenID": func(c *pass.Claims) { c.TokenID = c.TokenID[:8] },
		"ErrSRef":    func(c *pass.Claims) { c.SRef = nil },
		"ErrDTag":    func(c *pass.Claims) { c.DTag = append(c.DTag, 0) },
		"ErrExpiry":  func(c *pass.Claims) { c.Expiry = c.IssuedAt },
		"ErrProduct": func(c *pass.Claims) { c.Holder.Doses[0].Product = "sputnik" },
	} {
		t.Run(name, func(t *testing.T) {
			c := typicalClaims()
			mutate(c)
			if _, err := pass.Sign(c, testKey()); err == nil {
				t.Fatal("signed invalid claims")
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, c := range []*pass.Claims{typicalClaims(), fullClaims()} {
		text, _ := pass.Sign(c, testKey())
		f.Add(text)
	}
	f.Add("KP1:")
	f.Add("KP1:6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3/XIV0W23NTDEXWK G2EP4J0BGJLFX3R3VHXK.PJ:2DPF6R:5SVBHABVCNN95SWMPHQUHQN%A0SOE+QQAB-HQ/HQ7IR.SQEEOK9SAI4- 7Y15KBPD34  QWSP0WRGTQFNPLIR.KQJA")
	pub := testKey().Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, text string) {
		p, err := pass.Parse(text)
		if err != nil {
			if !errors.Is(err, pass.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		_ = p.Verify(pub)
	})
}
