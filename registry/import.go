package registry

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kipass/kipass"
)

// Import file formats.
const (
	FormatCSV   = "csv"   // a header row, then one person per row (docs/registry.md)
	FormatJSONL = "jsonl" // one person per line, the JSON of a PUT body
)

// Import defaults.
const (
	DefaultBatchSize   = 2000    // rows per transaction
	DefaultMaxReported = 100     // rejected rows listed in a report
	MaxLineSize        = 1 << 20 // bytes in one line; a longer line is rejected
)

// ImportOptions tunes Import. The zero value of each field selects its default.
type ImportOptions struct {
	Format           string               // FormatCSV or FormatJSONL; "" detects it from Name, then from the content
	Name             string               // the file's name, for detection by extension (.csv, .jsonl, .ndjson, .json)
	Size             int64                // the file's size in bytes, for the percentage; 0 when unknown
	Now              time.Time            // no fact may lie after it (default time.Now())
	BatchSize        int                  // rows per transaction (default DefaultBatchSize)
	MaxReported      int                  // rejected rows kept in the report (default DefaultMaxReported)
	Progress         func(ImportProgress) // called from Import's goroutine every ProgressInterval and at the end
	ProgressInterval time.Duration        // default 200 ms
}

// ImportProgress is the state of a running import.
type ImportProgress struct {
	Bytes, Size            int64 // bytes read so far, of Size (0 when unknown)
	Rows, Stored, Rejected int   // data rows read, stored (committed), rejected
	Elapsed                time.Duration
	Done                   bool // the last call
}

// ImportReport is what an import did.
type ImportReport struct {
	Format     string
	Rows       int         // data rows read (not the header, not blank lines)
	Stored     int         // rows committed to the store
	Rejected   int         // rows refused
	Rejections []Rejection // the first MaxReported rejected rows, in file order
	Bytes      int64       // bytes read
	Elapsed    time.Duration
	// MissingFinalNewline says that the file's last line had no line end. It was stored
	// when it was valid; a file cut short at a line boundary cannot be told from a whole
	// one, so a file that should end elsewhere needs checking.
	MissingFinalNewline bool
}

// RowsPerSecond returns the import's rate of rows read.
func (r *ImportReport) RowsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Rows) / r.Elapsed.Seconds()
}

// Rejection is one refused row: its line number (1 is the file's first line), the
// field at fault when there is one, and why.
type Rejection struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// String formats the rejection as "line 7: doses[1].product: unknown vaccine product".
func (r Rejection) String() string { return fmt.Sprintf("line %d: %s", r.Line, r.Message) }

// Import reads person records from r (CSV or JSON lines) and stores every valid row in
// w, in transactions of BatchSize rows, while it reads on. A bad row is reported with
// its line number and the field at fault and never stops the import: wrong or future
// dates, unknown products, test kinds or results, a malformed test time, a missing
// value, a person id already stored from an earlier line of the same file (the first
// valid row of an id wins; later ones are rejected), a line too long, a last line cut
// short. Import returns an error, with the report so far, only when the input cannot
// be read (a missing or unknown CSV header, an I/O error), when the store fails, or
// when ctx ends; batches committed before that stay stored.
func Import(ctx context.Context, r io.Reader, w PersonWriter, opts ImportOptions) (*ImportReport, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.MaxReported <= 0 {
		opts.MaxReported = DefaultMaxReported
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 200 * time.Millisecond
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	im := &importer{opts: opts, w: w, start: time.Now(), seen: map[string]int{}, report: &ImportReport{}}
	im.lr = newLineReader(r)
	switch opts.Format {
	case "":
		im.report.Format = detectFormat(opts.Name, im.lr.peek())
	case FormatCSV, FormatJSONL:
		im.report.Format = opts.Format
	default:
		return im.report, fmt.Errorf("unknown format %q (want %s or %s)", opts.Format, FormatCSV, FormatJSONL)
	}
	err := im.run(ctx)
	im.report.Bytes = im.lr.bytes
	im.report.Elapsed = time.Since(im.start)
	im.progress(true)
	return im.report, err
}

// importer is the state of one Import.
type importer struct {
	opts   ImportOptions
	w      PersonWriter
	lr     *lineReader
	csv    *csvLayout
	report *ImportReport
	seen   map[string]int // person id -> line of its stored row
	start  time.Time

	stored       atomic.Int64
	writeFailed  atomic.Bool
	lastProgress time.Time
}

func (im *importer) run(ctx context.Context) error {
	batches := make(chan []*Person, 2)
	done := make(chan error, 1)
	go func() { done <- im.write(ctx, batches) }()

	readErr := im.read(ctx, batches)
	close(batches)
	writeErr := <-done
	im.report.Stored = int(im.stored.Load())
	if writeErr != nil {
		return fmt.Errorf("store: %w", writeErr)
	}
	return readErr
}

// write stores the batches in order; after a failure it drains the rest unstored.
func (im *importer) write(ctx context.Context, batches <-chan []*Person) error {
	var err error
	for b := range batches {
		if err != nil {
			continue
		}
		if err = im.w.PutPersons(ctx, b); err != nil {
			im.writeFailed.Store(true)
			continue
		}
		im.stored.Add(int64(len(b)))
	}
	return err
}

// read parses the lines and sends full batches to the writer.
func (im *importer) read(ctx context.Context, batches chan<- []*Person) error {
	batch := make([]*Person, 0, im.opts.BatchSize)
	for {
		ln, err := im.lr.next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("read: after line %d: %w", im.lr.line, err)
		}
		if ln.number%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if im.writeFailed.Load() {
				return nil // the writer's error is the one to report
			}
			im.progress(false)
		}
		if len(bytes.TrimSpace(ln.text)) == 0 && !ln.tooLong {
			continue
		}
		if im.report.Format == FormatCSV && im.csv == nil {
			if im.csv, err = parseHeader(ln); err != nil {
				return err
			}
			continue
		}
		im.report.Rows++
		p, err := im.row(ln)
		if err != nil {
			im.reject(ln, err)
			continue
		}
		if !ln.terminated {
			im.report.MissingFinalNewline = true
		}
		im.seen[strings.Clone(p.PersonID)] = ln.number
		batch = append(batch, p)
		if len(batch) == im.opts.BatchSize {
			select {
			case batches <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			batch = make([]*Person, 0, im.opts.BatchSize)
		}
	}
	if im.report.Format == FormatCSV && im.csv == nil {
		return errors.New("the file is empty: a CSV file starts with a header row")
	}
	if len(batch) > 0 {
		batches <- batch
	}
	return ctx.Err()
}

// row parses and validates one data line.
func (im *importer) row(ln line) (*Person, error) {
	if ln.tooLong {
		return nil, kipass.Errorf(kipass.EINVALID, "the line is longer than %d bytes", MaxLineSize)
	}
	var p *Person
	var err error
	if im.report.Format == FormatCSV {
		p, err = im.csv.person(string(ln.text))
	} else {
		var doc personDoc
		if err = decodeStrict(ln.text, &doc); err == nil {
			p, err = doc.person()
		}
	}
	if err != nil {
		return nil, err
	}
	if err := p.Validate(im.opts.Now); err != nil {
		return nil, err
	}
	if first, dup := im.seen[p.PersonID]; dup {
		return nil, kipass.FieldErrorf("person_id", "%q is already in this file, on line %d", p.PersonID, first)
	}
	p.Normalize()
	return p, nil
}

func (im *importer) reject(ln line, err error) {
	im.report.Rejected++
	if len(im.report.Rejections) >= im.opts.MaxReported {
		return
	}
	msg := kipass.ErrorMessage(err)
	if !ln.terminated {
		msg += " (the file ends without a line end: this line may be cut short)"
	}
	im.report.Rejections = append(im.report.Rejections, Rejection{Line: ln.number, Field: kipass.ErrorField(err), Message: msg})
}

// progress calls the Progress function when the interval has passed, or at the end.
func (im *importer) progress(done bool) {
	if im.opts.Progress == nil {
		return
	}
	now := time.Now()
	if !done && now.Sub(im.lastProgress) < im.opts.ProgressInterval {
		return
	}
	im.lastProgress = now
	stored := int(im.stored.Load())
	if done {
		stored = im.report.Stored
	}
	im.opts.Progress(ImportProgress{Bytes: im.lr.bytes, Size: im.opts.Size, Rows: im.report.Rows, Stored: stored,
		Rejected: im.report.Rejected, Elapsed: now.Sub(im.start), Done: done})
}

// detectFormat picks the format by the file's extension, then by its first byte: a
// JSON line starts with '{'.
func detectFormat(name string, head []byte) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return FormatCSV
	case ".jsonl", ".ndjson", ".json":
		return FormatJSONL
	}
	head = bytes.TrimLeft(bytes.TrimPrefix(head, utf8BOM), " \t\r\n")
	if len(head) > 0 && head[0] == '{' {
		return FormatJSONL
	}
	return FormatCSV
}

var utf8BOM = []byte("\xef\xbb\xbf")

// line is one line of input without its line end.
type line struct {
	text       []byte // valid until the next call of next
	number     int
	terminated bool // it ended with '\n', not with the end of the input
	tooLong    bool // longer than MaxLineSize; text is empty
}

// lineReader splits the input into numbered lines and counts the bytes read.
type lineReader struct {
	r     *bufio.Reader
	buf   []byte
	line  int
	bytes int64
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 256<<10)}
}

// peek returns the start of the input without consuming it.
func (lr *lineReader) peek() []byte {
	b, _ := lr.r.Peek(512)
	return b
}

// next returns the next line, or io.EOF after the last one.
func (lr *lineReader) next() (line, error) {
	lr.buf = lr.buf[:0]
	var l line
	for {
		chunk, err := lr.r.ReadSlice('\n')
		lr.bytes += int64(len(chunk))
		switch {
		case l.tooLong:
		case len(lr.buf)+len(chunk) > MaxLineSize+2:
			l.tooLong, lr.buf = true, lr.buf[:0]
		case err == nil && len(lr.buf) == 0:
			l.text = chunk // the common case: no copy
		default:
			lr.buf = append(lr.buf, chunk...)
			l.text = lr.buf
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			if len(l.text) == 0 && !l.tooLong {
				return line{}, io.EOF
			}
		} else if err != nil {
			return line{}, err
		} else {
			l.terminated = true
		}
		lr.line++
		l.number = lr.line
		if l.tooLong {
			l.text = nil
		}
		l.text = bytes.TrimSuffix(bytes.TrimSuffix(l.text, []byte("\n")), []byte("\r"))
		if l.number == 1 {
			l.text = bytes.TrimPrefix(l.text, utf8BOM)
		}
		return l, nil
	}
}
