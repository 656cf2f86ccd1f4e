package sqlite

import (
	"bytes"
	"testing"
)

// Entries appended to a bucket parse back as they were written.
func TestBucketRoundTrip(t *testing.T) {
	type e struct {
		kind      byte
		key       string
		at, rowid int64
	}
	in := []e{{keyFacility, "f-1", 1643252400000000, 1}, {keyDayTag, "0123456789abcdef", 0, 1}, {keyFacility, "", -5, 1<<63 - 1},
		{keyDayTag, "", 0, 0}, {keyFacility, "a-much-longer-facility-id-" + string(bytes.Repeat([]byte("x"), 200)), 0, 300}}
	var b []byte
	for _, x := range in {
		b = appendEntry(b, x.kind, []byte(x.key), x.at, x.rowid)
	}
	var out []e
	if err := parseBucket(b, func(kind byte, key []byte, at, rowid int64) { out = append(out, e{kind, string(key), at, rowid}) }); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d entries, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i] != in[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, out[i], in[i])
		}
	}
	p := probe{kind: keyFacility, key: []byte("f-1"), from: 1643252400000000, to: 1643252400000001}
	if got, err := p.match(b, nil); err != nil || len(got) != 1 || got[0] != 1 {
		t.Fatalf("probe for f-1: %v, %v", got, err)
	}
	p.from++
	if got, err := p.match(b, nil); err != nil || len(got) != 0 {
		t.Fatalf("probe for f-1 after its time: %v, %v", got, err)
	}
	// Every truncation of a bucket is refused, never misread past its end.
	for n := 1; n < len(b); n++ {
		count := 0
		err := parseBucket(b[:n], func(byte, []byte, int64, int64) { count++ })
		if err == nil && count == len(in) {
			t.Fatalf("bucket cut to %d of %d bytes parsed whole", n, len(b))
		}
	}
}

// A damaged bucket is an error, never a panic.
func FuzzParseBucket(f *testing.F) {
	f.Add(appendEntry(appendEntry(nil, keyDayTag, []byte("0123456789abcdef"), 0, 7), keyFacility, []byte("f-9"), 99, 8))
	f.Add([]byte{keyFacility, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseBucket(b, func(kind byte, key []byte, at, rowid int64) {
			if kind != keyDayTag && kind != keyFacility || rowid < 0 {
				t.Fatalf("parsed an entry of kind %q, rowid %d", kind, rowid)
			}
		})
	})
}
