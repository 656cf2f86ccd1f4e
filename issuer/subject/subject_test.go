package subject_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/kipass/kipass"
	"github.com/kipass/kipass/issuer/subject"
	"github.com/kipass/kipass/pass"
)

var t0 = time.Date(2022, 1, 27, 12, 0, 0, 0, kipass.KST)

// MustKeyring returns a keyring maintained at now under the default policy.
func MustKeyring(tb testing.TB, k *subject.Keyring, now time.Time) *subject.Keyring {
	tb.Helper()
	n, _, err := k.Maintain(now, subject.DefaultPolicy())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestSealOpen(t *testing.T) {
	k := MustKeyring(t, nil, t0)
	id := subject.NewID()

	t.Run("RoundTrip", func(t *testing.T) {
		sref, err := k.Seal(id)
		if err != nil {
			t.Fatal(err)
		}
		if len(sref) != pass.SRefSize {
			t.Fatalf("sref is %d bytes, want %d", len(sref), pass.SRefSize)
		}
		got, err := k.Open(sref)
		if err != nil || got != id {
			t.Fatalf("Open = %x, %v; want %x", got, err, id)
		}
	})
	t.Run("Unlinkable", func(t *testing.T) {
		a, _ := k.Seal(id)
		b, _ := k.Seal(id)
		if bytes.Equal(a, b) {
			t.Fatal("two srefs of one subject are equal")
		}
		// No byte position agrees more often than chance would have it.
		same := 0
		for i := range a {
			if a[i] == b[i] {
				same++
			}
		}
		if same > 6 {
			t.Fatalf("%d of %d bytes equal in two srefs of one subject", same, len(a))
		}
	})
	t.Run("ErrWrongKey", func(t *testing.T) {
		other := MustKeyring(t, nil, t0)
		sref, _ := k.Seal(id)
		if _, err := other.Open(sref); !errors.Is(err, subject.ErrCannotOpen) {
			t.Fatalf("another issuer's keyring opened the sref: %v", err)
		}
	})
	t.Run("ErrTampered", func(t *testing.T) {
		sref, _ := k.Seal(id)
		for _, i := range []int{0, subject.NonceSize, len(sref) - 1} {
			bad := bytes.Clone(sref)
			bad[i] ^= 1
			if _, err := k.Open(bad); !errors.Is(err, subject.ErrCannotOpen) {
				t.Fatalf("sref altered at byte %d opened: %v", i, err)
			}
		}
		if _, err := k.Open(sref[:40]); !errors.Is(err, subject.ErrCannotOpen) {
			t.Fatalf("short sref opened: %v", err)
		}
	})
}

func TestRotation(t *testing.T) {
	p := subject.DefaultPolicy()
	k := MustKeyring(t, nil, t0)
	id := subject.NewID()
	old, _ := k.Seal(id)

	// Rotate daily for 28 days: the first key is retired after one day and must
	// still open its references 28 days plus the longest pass life later.
	now := t0
	for range 28 {
		now = now.Add(24 * time.Hour)
		var rep subject.Report
		var err error
		k, rep, err = k.Maintain(now, p)
		if err != nil {
			t.Fatal(err)
		}
		if rep.SealKeysCreated != 1 {
			t.Fatalf("at %s: %d seal keys made, want 1", now, rep.SealKeysCreated)
		}
	}
	fresh, _ := k.Seal(id)
	if got, err := k.Open(old); err != nil || got != id {
		t.Fatalf("28 days after sealing: Open = %v; want the id", err)
	}
	if got, err := k.Open(fresh); err != nil || got != id {
		t.Fatalf("fresh sref: Open = %v", err)
	}
	if n := len(k.SealKeys); n != 29 {
		t.Fatalf("%d seal keys held, want 29", n)
	}

	// The first key was retired at t0+1d: it goes once retention and the longest
	// pass life have passed since.
	k, rep, err := k.Maintain(t0.Add(24*time.Hour+p.Retention+p.MaxPassLife+time.Minute), p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.SealKeysDestroyed == 0 {
		t.Fatal("no seal key destroyed after retention")
	}
	if _, err := k.Open(old); !errors.Is(err, subject.ErrCannotOpen) {
		t.Fatalf("sref of a destroyed key still opens: %v", err)
	}
	if got, err := k.Open(fresh); err != nil || got != id {
		t.Fatalf("recent sref no longer opens: %v", err)
	}
}

func TestDayTag(t *testing.T) {
	k := MustKeyring(t, nil, t0)
	a, b := subject.NewID(), subject.NewID()
	today := kipass.DateOf(t0)

	tag := func(id subject.ID, d kipass.Date) []byte {
		t.Helper()
		v, err := k.DayTag(id, d)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != pass.DTagSize {
			t.Fatalf("day tag of %d bytes", len(v))
		}
		return v
	}
	if !bytes.Equal(tag(a, today), tag(a, today)) {
		t.Error("same subject, same day: tags differ")
	}
	if bytes.Equal(tag(a, today), tag(a, today+1)) {
		t.Error("same subject, next day: tags equal")
	}
	if bytes.Equal(tag(a, today), tag(b, today)) {
		t.Error("two subjects, same day: tags equal")
	}
	other := MustKeyring(t, nil, t0)
	if v, _ := other.DayTag(a, today); bytes.Equal(v, tag(a, today)) {
		t.Error("another keyring gives the same tag")
	}

	t.Run("KeysAheadAndKept", func(t *testing.T) {
		// The key of a day never changes once made, even as keys rotate.
		want := tag(a, today+2)
		k2 := MustKeyring(t, k, t0.Add(48*time.Hour))
		got, err := k2.DayTag(a, today+2)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("day key changed after maintenance: %v", err)
		}
	})
	t.Run("ErrNoKeyAfterRetention", func(t *testing.T) {
		k2 := k
		for d := 1; d <= subject.RetentionDays+1; d++ {
			k2 = MustKeyring(t, k2, t0.Add(time.Duration(d)*24*time.Hour))
		}
		if _, err := k2.DayTag(a, today); !errors.Is(err, subject.ErrNoKey) {
			t.Fatalf("day tag 29 days back: %v, want ErrNoKey", err)
		}
		// 28 days back is still there.
		if _, err := k2.DayTag(a, today+1); err != nil {
			t.Fatalf("day tag 28 days back: %v", err)
		}
	})
}

func TestKeyringMarshal(t *testing.T) {
	k := MustKeyring(t, nil, t0)
	k = MustKeyring(t, k, t0.Add(25*time.Hour))
	id := subject.NewID()
	sref, _ := k.Seal(id)
	data, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := subject.ParseKeyring(data)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.Open(sref); err != nil || got != id {
		t.Fatalf("parsed keyring: Open = %v", err)
	}
	d := kipass.DateOf(t0)
	t1, _ := k.DayTag(id, d)
	t2, _ := k2.DayTag(id, d)
	if !bytes.Equal(t1, t2) {
		t.Fatal("parsed keyring gives another day tag")
	}
	if _, err := subject.ParseKeyring([]byte(`{"seal_keys":[{"key":"AAAA"}]}`)); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestSafeNumber(t *testing.T) {
	for range 100 {
		n := subject.SafeNumbers{}.New()
		if got, ok := subject.NormalizeSafeNumber(n); !ok || got != n {
			t.Fatalf("New made %q, which does not normalise to itself", n)
		}
	}
	tiny := subject.SafeNumbers{Syllables: []string{"가"}, Values: 2}
	if tiny.Space() != 2 {
		t.Fatalf("tiny space = %d", tiny.Space())
	}
	seen := map[string]bool{}
	for range 200 {
		seen[tiny.New()] = true
	}
	if len(seen) != 2 || !seen["0000가가"] || !seen["0001가가"] {
		t.Fatalf("tiny space made %v", seen)
	}
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"1234가나", "1234가나", true},
		{" 1234 가나 ", "1234가나", true},
		{"1234ab", "", false},
		{"123가나", "", false},
		{"12345가나", "", false},
		{"1234가", "", false},
		{"1234가나다", "", false},
		{"１２３４가나", "", false}, // full-width digits
		{"1234ㄱㄴ", "", false}, // jamo, not syllables
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := subject.NormalizeSafeNumber(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("NormalizeSafeNumber(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}
