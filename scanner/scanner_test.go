package scanner

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/pass"
	"github.com/kipass/kipass/policy"
	"github.com/kipass/kipass/trust"
)

func key(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(label))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

var (
	issuerKey  = key("issuer")
	revokedKey = key("revoked issuer")
	strangeKey = key("unknown issuer")
	rootKey    = key("root")
	lunch      = time.Date(2022, 1, 12, 12, 0, 0, 0, kipass.KST)
	gymBusan   = kipass.Place{Category: "gym", Region: "busan"}
)

// mustScanner returns a scanner with a bundle that trusts issuerKey and revokes revokedKey.
func mustScanner(tb testing.TB) *Scanner {
	tb.Helper()
	rules := policy.Default()
	b := &trust.Bundle{
		Version: 1, MadeAt: lunch.Add(-24 * time.Hour),
		Issuers: []trust.IssuerKey{
			{KeyID: pass.KeyID(pub(issuerKey)), Issuer: "Test", PublicKey: pub(issuerKey), ValidFrom: lunch.AddDate(-1, 0, 0), ValidTo: lunch.AddDate(1, 0, 0)},
			{KeyID: pass.KeyID(pub(revokedKey)), Issuer: "Revoked", PublicKey: pub(revokedKey), ValidFrom: lunch.AddDate(-1, 0, 0), ValidTo: lunch.AddDate(1, 0, 0)},
		},
		RevokedKeyIDs: []string{pass.KeyID(pub(revokedKey))},
		Rules:         rules.Document(), Categories: rules.Categories(), Regions: rules.Regions(),
		SealingKey: make([]byte, 32),
	}
	signed, err := trust.Sign(b, rootKey)
	if err != nil {
		tb.Fatal(err)
	}
	vb, err := trust.Verify(signed, pub(rootKey), nil)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := New(vb)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func boosted() kipass.Holder {
	born := kipass.MustParseDate("1980-05-05")
	return kipass.Holder{BirthDate: &born, Doses: []kipass.Dose{
		{Date: kipass.MustParseDate("2021-06-01"), Product: kipass.ProductPfizer},
		{Date: kipass.MustParseDate("2021-07-01"), Product: kipass.ProductPfizer},
		{Date: kipass.MustParseDate("2021-12-01"), Product: kipass.ProductModerna},
	}}
}

// mustPass signs a pass issued at iat for the holder with the given key and token seed.
func mustPass(tb testing.TB, k ed25519.PrivateKey, kid string, iat time.Time, h kipass.Holder, token byte) string {
	tb.Helper()
	tok := make([]byte, pass.TokenIDSize)
	tok[0], tok[1] = token, byte(iat.Unix())
	text, err := pass.Sign(&pass.Claims{
		KeyID: kid, IssuedAt: iat, Expiry: iat.Add(pass.DefaultTTL), TokenID: tok,
		SRef: make([]byte, pass.SRefSize), DTag: make([]byte, pass.DTagSize), Holder: h,
	}, k)
	if err != nil {
		tb.Fatal(err)
	}
	return text
}

func TestDecide(t *testing.T) {
	kid := pass.KeyID(pub(issuerKey))
	for _, tc := range []struct {
		name    string
		text    func(t *testing.T) string
		now     time.Time
		want    kipass.Outcome
		refusal string
		warn    bool
	}{
		{"Pass", func(t *testing.T) string { return mustPass(t, issuerKey, kid, lunch, boosted(), 1) }, lunch.Add(5 * time.Second), kipass.PASS, "", false},
		{"FailUnvaccinated", func(t *testing.T) string { return mustPass(t, issuerKey, kid, lunch, kipass.Holder{}, 2) }, lunch, kipass.FAIL, "", false},
		{"ErrMalformed", func(*testing.T) string { return "KP1:HELLO" }, lunch, Refused, RefusalMalformed, false},
		{"ErrNotAPass", func(*testing.T) string { return "https://example.com" }, lunch, Refused, RefusalMalformed, false},
		{"ErrUnknownKey", func(t *testing.T) string {
			return mustPass(t, strangeKey, pass.KeyID(pub(strangeKey)), lunch, boosted(), 3)
		}, lunch, Refused, RefusalUnknownKey, false},
		{"ErrRevokedKey", func(t *testing.T) string {
			return mustPass(t, revokedKey, pass.KeyID(pub(revokedKey)), lunch, boosted(), 4)
		}, lunch, Refused, RefusalRevokedKey, false},
		{"ErrBadSignature", func(t *testing.T) string { return mustPass(t, strangeKey, kid, lunch, boosted(), 5) }, lunch, Refused, RefusalBadSignature, false},
		{"ErrExpired", func(t *testing.T) string { return mustPass(t, issuerKey, kid, lunch, boosted(), 6) }, lunch.Add(pass.DefaultTTL + ClockTolerance + time.Second), Refused, RefusalExpired, false},
		{"ExpiredWithinTolerance", func(t *testing.T) string { return mustPass(t, issuerKey, kid, lunch, boosted(), 7) }, lunch.Add(pass.DefaultTTL + ClockTolerance), kipass.PASS, "", false},
		{"ErrNotYetValid", func(t *testing.T) string { return mustPass(t, issuerKey, kid, lunch, boosted(), 8) }, lunch.Add(-ClockTolerance - time.Second), Refused, RefusalNotYetValid, true},
		{"EarlyWithinTolerance", func(t *testing.T) string { return mustPass(t, issuerKey, kid, lunch, boosted(), 9) }, lunch.Add(-ClockTolerance), kipass.PASS, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustScanner(t)
			r := s.Decide(tc.text(t), gymBusan, 1, tc.now)
			if r.Outcome != tc.want || r.Refusal != tc.refusal || r.ClockWarning != tc.warn {
				t.Fatalf("got %s/%s warn=%v (%s), want %s/%s warn=%v", r.Outcome, r.Refusal, r.ClockWarning, r.Detail, tc.want, tc.refusal, tc.warn)
			}
			if r.Outcome == Refused && r.Detail == "" {
				t.Fatal("a refusal without a reason")
			}
		})
	}
}

func TestReplay(t *testing.T) {
	s := mustScanner(t)
	text := mustPass(t, issuerKey, pass.KeyID(pub(issuerKey)), lunch, boosted(), 1)
	if r := s.Decide(text, gymBusan, 1, lunch); r.Outcome != kipass.PASS {
		t.Fatalf("first showing: %s %s", r.Outcome, r.Detail)
	}
	r := s.Decide(text, gymBusan, 1, lunch.Add(10*time.Second))
	if r.Outcome != Refused || r.Refusal != RefusalReplayed {
		t.Fatalf("second showing: got %s/%s, want REFUSED/replayed", r.Outcome, r.Refusal)
	}
	// Another pass of the same visitor (a new token) is fine.
	if r := s.Decide(mustPass(t, issuerKey, pass.KeyID(pub(issuerKey)), lunch, boosted(), 2), gymBusan, 1, lunch); r.Outcome != kipass.PASS {
		t.Fatalf("fresh pass: %s %s", r.Outcome, r.Detail)
	}
}

func TestBadPlace(t *testing.T) {
	s := mustScanner(t)
	text := mustPass(t, issuerKey, pass.KeyID(pub(issuerKey)), lunch, boosted(), 1)
	r := s.Decide(text, kipass.Place{Category: "spaceport", Region: "busan"}, 1, lunch)
	if r.Outcome != Refused || r.Refusal != RefusalBadInput || !strings.Contains(r.Detail, "category") {
		t.Fatalf("got %s/%s %q", r.Outcome, r.Refusal, r.Detail)
	}
}

// TestVisitHasNoHolderFacts checks the visit record carries what a trace needs and
// nothing of the holder's facts.
func TestVisitHasNoHolderFacts(t *testing.T) {
	s := mustScanner(t)
	r := s.Decide(mustPass(t, issuerKey, pass.KeyID(pub(issuerKey)), lunch, boosted(), 1), gymBusan, 1, lunch)
	v := r.Visit("v1", "f1", "d1", lunch)
	b, _ := json.Marshal(v)
	for _, banned := range []string{"1980", "birth", "pfizer", "moderna", "dose"} {
		if strings.Contains(string(b), banned) {
			t.Fatalf("visit record leaks %q: %s", banned, b)
		}
	}
	if v.IssuerKeyID == "" || len(v.TokenID) != pass.TokenIDSize || len(v.SRef) != pass.SRefSize || len(v.DTag) != pass.DTagSize || v.Outcome != kipass.PASS {
		t.Fatalf("visit record incomplete: %s", b)
	}
}

// BenchmarkEd25519Verify is the raw limit: one signature check over a message the size
// of a typical pass's COSE Sig_structure.
func BenchmarkEd25519Verify(b *testing.B) {
	msg := make([]byte, 150)
	sig := ed25519.Sign(issuerKey, msg)
	p := pub(issuerKey)
	b.ResetTimer()
	for range b.N {
		if !ed25519.Verify(p, msg, sig) {
			b.Fatal("verify failed")
		}
	}
}

// BenchmarkDecide is the whole offline decision: Base45, COSE and CBOR decoding, the
// signature check, the replay check and the rules. Goal: at most 1.3 times
// BenchmarkEd25519Verify.
func BenchmarkDecide(b *testing.B) {
	s := mustScanner(b)
	kid := pass.KeyID(pub(issuerKey))
	texts := make([]string, 256)
	for i := range texts {
		texts[i] = mustPass(b, issuerKey, kid, lunch, boosted(), byte(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%len(texts) == 0 {
			clear(s.seen)
		}
		if r := s.Decide(texts[i%len(texts)], gymBusan, 1, lunch); r.Outcome != kipass.PASS {
			b.Fatalf("%s %s", r.Outcome, r.Detail)
		}
	}
}

// TestSlowClockRecentTest: a scanner clock a minute behind must not refuse a test
// notified just before the pass was issued as a test "in the future".
func TestSlowClockRecentTest(t *testing.T) {
	s := mustScanner(t)
	h := kipass.Holder{Tests: []kipass.Test{{Kind: kipass.TestPCR, Result: kipass.ResultNegative, At: lunch.Add(-10 * time.Second)}}}
	r := s.Decide(mustPass(t, issuerKey, pass.KeyID(pub(issuerKey)), lunch, h, 1), gymBusan, 1, lunch.Add(-time.Minute))
	if r.Outcome != kipass.PASS || r.Decision.Basis != kipass.BasisNegativePCR {
		t.Fatalf("got %s/%s %s %s", r.Outcome, r.Decision.Basis, r.Refusal, r.Detail)
	}
}

// BenchmarkDecideVsVerify interleaves the whole decision with a raw signature check of
// the same pass, one of each per iteration, and reports their ratio: interleaving keeps
// the comparison fair on a machine whose load drifts. Goal: ratio <= 1.3.
func BenchmarkDecideVsVerify(b *testing.B) {
	s := mustScanner(b)
	kid := pass.KeyID(pub(issuerKey))
	texts := make([]string, 256)
	for i := range texts {
		texts[i] = mustPass(b, issuerKey, kid, lunch, boosted(), byte(i))
	}
	msg := make([]byte, 150)
	sig := ed25519.Sign(issuerKey, msg)
	p := pub(issuerKey)
	var decide, verify time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i%len(texts) == 0 {
			clear(s.seen)
		}
		t0 := time.Now()
		if !ed25519.Verify(p, msg, sig) {
			b.Fatal("verify failed")
		}
		t1 := time.Now()
		if r := s.Decide(texts[i%len(texts)], gymBusan, 1, lunch); r.Outcome != kipass.PASS {
			b.Fatalf("%s %s", r.Outcome, r.Detail)
		}
		t2 := time.Now()
		verify += t1.Sub(t0)
		decide += t2.Sub(t1)
	}
	b.ReportMetric(float64(verify.Nanoseconds())/float64(b.N), "verify-ns/op")
	b.ReportMetric(float64(decide.Nanoseconds())/float64(b.N), "decide-ns/op")
	b.ReportMetric(float64(decide)/float64(verify), "ratio")
}
