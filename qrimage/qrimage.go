// Package qrimage reads QR codes from images (PNG, JPEG, GIF) with gozxing, for the
// kiosk scanner and the tests. The browser scanner decodes camera frames in its own
// WebAssembly module.
package qrimage

import (
	"fmt"
	"image"
	_ "image/gif" // image formats a kiosk may be handed
	_ "image/jpeg"
	_ "image/png"
	"io"

	"github.com/makiuchi-d/gozxing"

	"github.com/kipass/kipass/internal/qrread"
)

// Decode reads an image and returns the text of the QR code in it.
func Decode(r io.Reader) (string, error) {
	img, _, err := image.Decode(io.LimitReader(r, 32<<20))
	if err != nil {
		return "", fmt.Errorf("not an image: %w", err)
	}
	return DecodeImage(img)
}

// DecodeImage returns the text of the QR code in img.
func DecodeImage(img image.Image) (string, error) {
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", fmt.Errorf("qr: %w", err)
	}
	text, err := qrread.Read(bmp)
	if err != nil {
		return "", fmt.Errorf("no QR code found: %w", err)
	}
	return text, nil
}
