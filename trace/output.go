package trace

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kipass/kipass"
)

// CSVHeader is the header row of WriteCSV: one row per exposure.
var CSVHeader = []string{"contact", "name", "phone", "facility_id", "method", "visit_at", "case_visit_at", "offset_minutes"}

// WriteCSV writes the contact list as CSV, one row per exposure, times in KST.
func WriteCSV(w io.Writer, res *Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for i, c := range res.Contacts {
		for _, e := range c.Exposures {
			row := []string{strconv.Itoa(i + 1), c.Name, c.Phone, e.FacilityID, e.Method, kst(e.At), kst(e.CaseAt),
				strconv.FormatFloat(e.Offset.Minutes(), 'f', 0, 64)}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func kst(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(kipass.KST).Format(time.RFC3339)
}

// methodNames are the Korean words of the visit methods for the screen.
var methodNames = map[string]string{
	kipass.MethodQR: "QR", kipass.MethodPhone: "안심콜", kipass.MethodSafeNumber: "안심번호", kipass.MethodManual: "수기",
}

// WriteTable writes the contact list as a table for a terminal, one row per person,
// with Korean headers, aligned for double-width Hangul.
func WriteTable(w io.Writer, res *Result) error {
	rows := [][]string{{"#", "이름", "전화번호", "시설", "방법", "방문 시각 (KST)", "확진자 방문과의 차이"}}
	for i, c := range res.Contacts {
		name := c.Name
		if name == "" {
			name = "-"
		}
		var fac, meth, times, offs []string
		seen := map[string]bool{}
		for _, e := range c.Exposures {
			if !seen["f"+e.FacilityID] {
				seen["f"+e.FacilityID] = true
				fac = append(fac, e.FacilityID)
			}
			if m := methodNames[e.Method]; !seen["m"+m] {
				seen["m"+m] = true
				meth = append(meth, m)
			}
			times = append(times, e.At.In(kipass.KST).Format("01-02 15:04"))
			offs = append(offs, offset(e.Offset))
		}
		rows = append(rows, []string{strconv.Itoa(i + 1), name, c.Phone, strings.Join(fac, ","), strings.Join(meth, ","),
			strings.Join(times, ", "), strings.Join(offs, ", ")})
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for j, cell := range r {
			widths[j] = max(widths[j], Width(cell))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for j, cell := range r {
			b.WriteString(cell)
			if j < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[j]-Width(cell)+2))
			}
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "\n사례 %s: 확진자 방문 %d건, 주변 방문 %d건, 접촉자 %d명, 미확인 %d건\n",
		res.CaseID, len(res.CaseVisits), res.CoVisits, len(res.Contacts), res.Unresolved)
	_, err := io.WriteString(w, b.String())
	return err
}

func offset(d time.Duration) string {
	m := int(d.Round(time.Minute).Minutes())
	if m >= 0 {
		return "+" + strconv.Itoa(m) + "분"
	}
	return strconv.Itoa(m) + "분"
}

// Width returns the columns s takes in a terminal: two for each wide (East Asian)
// character such as Hangul, one for the others.
func Width(s string) int {
	n := 0
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		if wide(r) {
			n += 2
		} else {
			n++
		}
	}
	return n
}

func wide(r rune) bool {
	return (r >= 0x1100 && r <= 0x115F) || (r >= 0x2E80 && r <= 0xA4CF) || (r >= 0xAC00 && r <= 0xD7A3) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0xFE30 && r <= 0xFE4F) || (r >= 0xFF00 && r <= 0xFF60) || (r >= 0xFFE0 && r <= 0xFFE6)
}
