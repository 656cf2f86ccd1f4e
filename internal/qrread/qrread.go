// Package qrread finds the QR code in a binarised image with gozxing, for the kiosk
// (qrimage) and the browser scanner's WebAssembly module.
package qrread

import (
	"github.com/makiuchi-d/gozxing"
	mqrcode "github.com/makiuchi-d/gozxing/multi/qrcode"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// Read returns the text of the QR code in bmp. gozxing's QR reader takes the three
// finder patterns it rates best; on a sharp image a run of data modules can look like
// one, and then the reader fails: on synthetic frames of random passes (the browser
// test's camera clips), about 1.7 % of them. The multi-code reader weighs more
// combinations of candidate patterns and read every one of those, so it is tried when
// the plain reader fails (a frame without a code pays for both).
func Read(bmp *gozxing.BinaryBitmap) (string, error) {
	hints := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, hints)
	if err == nil {
		return res.GetText(), nil
	}
	rs, merr := mqrcode.NewQRCodeMultiReader().DecodeMultiple(bmp, hints)
	if merr == nil && len(rs) > 0 {
		return rs[0].GetText(), nil
	}
	return "", err
}
