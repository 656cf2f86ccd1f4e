// Package policy is the vaccine-pass rules engine. Rules are data: a versioned JSON rule
// document (the reference set kr-2022 is embedded) says which facility categories need
// the pass from when, which court orders suspended it where, and what counts as a pass.
// The engine compiles the document once and then answers, for one visitor at one
// facility at one time, PASS, FAIL or NOT_REQUIRED with the basis of the answer.
//
// The package is pure (no I/O but Load, no global state but the parsed default) so that
// the server, the CLI and the browser scanner (js/wasm) run the same code.
package policy

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"slices"
	"sync"
)

//go:embed kr-2022.json
var kr2022 []byte

// DefaultID is the id of the embedded reference rule document.
const DefaultID = "kr-2022"

var defaultRules = sync.OnceValue(func() *Rules {
	r, err := Parse(kr2022)
	if err != nil {
		panic("policy: embedded " + DefaultID + " does not parse: " + err.Error())
	}
	return r
})

// Default returns the embedded reference rules kr-2022, parsed once. The returned
// Rules are shared and immutable.
func Default() *Rules { return defaultRules() }

// Rules is a compiled, validated rule document. It is immutable and safe for
// concurrent use.
type Rules struct {
	id      string
	version int
	title   string
	doc     []byte

	categories []string
	regions    []string
	catIndex   map[string]int
	regIndex   map[string]int

	requirements []requirement // in document order
	suspensions  []suspension
	exceptions   []exception

	products    []product
	seriesWait  int
	boosterWait int
	expiry      *expiry // nil: a completed series never expires

	recoveryDays int
	tests        []testRule
	minors       []minorRule // ascending by from
	exemptions   []exemption

	reasons     [numBases]string    // one English sentence per holder basis
	failReasons [numFailures]string // one English sentence per failure
}

// Parse validates a rule document and compiles it. Errors name the JSON path at fault,
// as in `suspensions[3].from: "2022-02-30" is not a date of the form YYYY-MM-DD`.
func Parse(data []byte) (*Rules, error) {
	var d document
	if err := decodeStrict(data, &d); err != nil {
		return nil, err
	}
	r, err := compile(&d)
	if err != nil {
		return nil, err
	}
	r.doc = bytes.Clone(data)
	return r, nil
}

// Load reads and parses a rule document file.
func Load(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load rules %s: %w", path, err)
	}
	return r, nil
}

// ID returns the document's id, such as "kr-2022".
func (r *Rules) ID() string { return r.id }

// Version returns the document's version; a trust bundle refuses to go back to a
// lower one.
func (r *Rules) Version() int { return r.version }

// Title returns the document's human-readable title, or "".
func (r *Rules) Title() string { return r.title }

// Document returns a copy of the exact bytes the rules were parsed from, which the
// trust bundle carries and signs.
func (r *Rules) Document() []byte { return bytes.Clone(r.doc) }

// Categories returns the facility category ids the document knows, in its order.
func (r *Rules) Categories() []string { return slices.Clone(r.categories) }

// Regions returns the region ids the document knows, in its order.
func (r *Rules) Regions() []string { return slices.Clone(r.regions) }
