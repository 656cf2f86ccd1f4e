package issuer

import (
	"strconv"
	"strings"

	"github.com/skip2/go-qrcode"
)

// QRSVG renders text as a QR code (error correction level M, with the 4-module quiet
// zone) in a compact SVG: one stroked path, a horizontal segment per run of dark
// modules, so that a pass's code is a few kilobytes. The SVG scales to its container.
func QRSVG(text string) (string, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", err
	}
	bm := q.Bitmap()
	n := strconv.Itoa(len(bm))
	var b strings.Builder
	b.Grow(8 << 10)
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ` + n + ` ` + n +
		`" shape-rendering="crispEdges" aria-hidden="true" focusable="false"><rect width="` + n + `" height="` + n +
		`" fill="#fff"/><path stroke="#000" stroke-width="1" d="`)
	for y, row := range bm {
		last := -1 // end of the previous run on this row, -1 before the first
		for x := 0; x < len(row); {
			if !row[x] {
				x++
				continue
			}
			start := x
			for x < len(row) && row[x] {
				x++
			}
			if last < 0 {
				b.WriteString("M" + strconv.Itoa(start) + " " + strconv.Itoa(y) + ".5")
			} else {
				b.WriteString("m" + strconv.Itoa(start-last) + " 0")
			}
			b.WriteString("h" + strconv.Itoa(x-start))
			last = x
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String(), nil
}
