package qrread

import (
	"image"
	"math/rand/v2"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	goqr "github.com/skip2/go-qrcode"
)

// frame draws text as a QR code, 6 pixels a module, lit on a dim 640x480 frame, as
// the browser test's camera clips do.
func frame(t *testing.T, text string) *gozxing.BinaryBitmap {
	t.Helper()
	q, err := goqr.New(text, goqr.Medium)
	if err != nil {
		t.Fatal(err)
	}
	bm := q.Bitmap()
	const w, h = 640, 480
	scale := 440 / len(bm)
	x0, y0 := (w-len(bm)*scale)/2, (h-len(bm)*scale)/2
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 90
	}
	for r, row := range bm {
		for c, dark := range row {
			v := byte(230)
			if dark {
				v = 20
			}
			for dy := range scale {
				for dx := range scale {
					img.Pix[(y0+r*scale+dy)*w+x0+c*scale+dx] = v
				}
			}
		}
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	return bmp
}

// Passes of random content, drawn sharp: Read finds every one, including those the
// plain QR reader misses.
func TestReadSharpFrames(t *testing.T) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:" // Base45
	rng := rand.New(rand.NewPCG(2022, 1))
	n := 250
	if testing.Short() {
		n = 40
	}
	plainMissed := 0
	for i := range n {
		b := []byte("KP1:")
		for range 297 {
			b = append(b, alphabet[rng.IntN(len(alphabet))])
		}
		text := string(b)
		bmp := frame(t, text)
		got, err := Read(bmp)
		if err != nil || got != text {
			t.Fatalf("pass %d: read %q, %v", i, got, err)
		}
		if res, err := qrcode.NewQRCodeReader().Decode(bmp, nil); err != nil || res.GetText() != text {
			plainMissed++
		}
	}
	t.Logf("%d passes read; the plain reader alone missed %d", n, plainMissed)
	if n == 250 && plainMissed == 0 {
		t.Fatal("the plain reader read every pass: this test no longer shows the fallback is needed")
	}
}
