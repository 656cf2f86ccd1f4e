// Package scanweb is the venue's web scanner at /scan/: plain HTML, CSS and JavaScript
// and the WebAssembly build of the core (cmd/scanwasm), embedded in the binary. The
// page verifies passes and applies the rules offline with the very Go code of the
// server, keeps its device credential, trust bundle and outbox of visits in IndexedDB,
// loads without a network through a service worker, and uploads visits to central's
// /v1 API on the same origin. docs/scanner.md describes it.
package scanweb

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
)

// Prefix is the path the scanner is served under. The page calls central's API at
// /v1/ on the same origin.
const Prefix = "/scan/"

//go:embed static
var static embed.FS

// Placeholders that Handler fills in the static files.
const (
	rootKeyPlaceholder = "{{ROOT_KEY}}" // index.html: the authority root public key
	versionPlaceholder = "{{VERSION}}"  // sw.js: names the offline cache of this build
)

// Config is what the page needs to know that is not in its files.
type Config struct {
	// RootKey is the authority's root public key, built into the page: the scanner
	// accepts only trust bundles it signed.
	RootKey ed25519.PublicKey
}

// asset is one file as served.
type asset struct {
	body  []byte
	ctype string
	etag  string

	gzipOnce sync.Once
	gzipped  []byte // nil when compression does not pay
}

// Handler returns the handler of the scanner's files under Prefix; mount it on the
// same origin as central's API (mux.Handle(scanweb.Prefix, h)). Every file is served
// with its content hash as ETag and revalidated on each load, and the page's service
// worker keeps this build for offline use. Handler panics if cfg.RootKey is not an
// Ed25519 public key: that is a wiring mistake, not a runtime condition.
func Handler(cfg Config) http.Handler {
	if len(cfg.RootKey) != ed25519.PublicKeySize {
		panic(fmt.Sprintf("scanweb: Config.RootKey must be an Ed25519 public key, not %d bytes", len(cfg.RootKey)))
	}
	files := map[string][]byte{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		files[strings.TrimPrefix(p, "static/")] = b
		return err
	})
	if err != nil {
		panic("scanweb: embedded files: " + err.Error()) // the embed is fixed at build time
	}
	root := base64.StdEncoding.EncodeToString(cfg.RootKey)
	files["index.html"] = bytes.ReplaceAll(files["index.html"], []byte(rootKeyPlaceholder), []byte(root))

	// The build version names the service worker's cache: any change of any file or
	// of the root key makes browsers fetch this build anew.
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if name == "sw.js" {
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(files[name]))
		h.Write(files[name])
	}
	version := hex.EncodeToString(h.Sum(nil)[:8])
	files["sw.js"] = bytes.ReplaceAll(files["sw.js"], []byte(versionPlaceholder), []byte(version))

	assets := make(map[string]*asset, len(files))
	for name, b := range files {
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) {
		case ".wasm":
			ctype = "application/wasm" // instantiateStreaming insists on it
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		}
		assets[name] = &asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	return &handler{assets: assets}
}

type handler struct {
	assets map[string]*asset
}

// contentSecurityPolicy allows the page its own files, the WebAssembly module and the
// camera, and nothing from elsewhere.
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; worker-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
		u := Prefix
		if r.URL.RawQuery != "" {
			u += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, u, http.StatusMovedPermanently)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if name == "" {
		name = "index.html"
	}
	a := h.assets[name]
	if !ok || a == nil {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("ETag", a.etag)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Vary", "Accept-Encoding")
	if name == "index.html" {
		hdr.Set("Content-Security-Policy", contentSecurityPolicy)
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("Permissions-Policy", "camera=(self), microphone=()")
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if acceptsGzip(r) {
		if gz := a.gzip(); gz != nil {
			body = gz
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

// gzip returns the compressed body, made on first use, or nil for small or already
// compressed files.
func (a *asset) gzip() []byte {
	a.gzipOnce.Do(func() {
		if len(a.body) < 1024 || strings.HasPrefix(a.ctype, "image/") {
			return
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(a.body)
		zw.Close()
		if buf.Len() < len(a.body)*9/10 {
			a.gzipped = buf.Bytes()
		}
	})
	return a.gzipped
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
