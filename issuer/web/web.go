// Package web is the visitor's wallet page: plain HTML, CSS and JavaScript embedded in
// the binary, served by the issuer at /wallet. Assets are served under names that carry
// their content hash, so browsers may cache them for good.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// asset is one embedded file as served.
type asset struct {
	name        string // the hashed name under /wallet/assets/
	body        []byte
	contentType string
}

// site is the wallet with its asset names resolved.
type site struct {
	index  []byte
	sw     []byte
	assets map[string]*asset // by hashed name
}

// CSP is the Content-Security-Policy of the wallet page: nothing but its own origin.
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
	"worker-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

func load() *site {
	read := func(name string) []byte {
		b, err := static.ReadFile("static/" + name)
		if err != nil {
			panic("web: missing embedded file " + name)
		}
		return b
	}
	s := &site{assets: map[string]*asset{}}
	urls := map[string]string{}
	for _, f := range []struct{ name, ctype string }{
		{"wallet.css", "text/css; charset=utf-8"},
		{"wallet.js", "text/javascript; charset=utf-8"},
	} {
		body := read(f.name)
		sum := sha256.Sum256(body)
		ext := path.Ext(f.name)
		hashed := strings.TrimSuffix(f.name, ext) + "." + hex.EncodeToString(sum[:6]) + ext
		s.assets[hashed] = &asset{name: hashed, body: body, contentType: f.ctype}
		urls[f.name] = "/wallet/assets/" + hashed
	}
	s.index = read("index.html")
	s.sw = read("sw.js")
	for name, url := range urls {
		s.index = bytes.ReplaceAll(s.index, []byte("{{"+name+"}}"), []byte(url))
		s.sw = bytes.ReplaceAll(s.sw, []byte("{{"+name+"}}"), []byte(url))
	}
	return s
}

// Handler serves the wallet: the page at /wallet (and /wallet/), its service worker at
// /wallet/sw.js and its assets at /wallet/assets/NAME.HASH.EXT.
func Handler() http.Handler {
	s := load()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		switch p := r.URL.Path; {
		case p == "/wallet" || p == "/wallet/":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Cache-Control", "no-cache")
			h.Set("Content-Security-Policy", CSP)
			w.Write(s.index)
		case p == "/wallet/sw.js":
			h.Set("Content-Type", "text/javascript; charset=utf-8")
			h.Set("Cache-Control", "no-cache")
			h.Set("Service-Worker-Allowed", "/wallet")
			w.Write(s.sw)
		case strings.HasPrefix(p, "/wallet/assets/"):
			a, ok := s.assets[strings.TrimPrefix(p, "/wallet/assets/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			h.Set("Content-Type", a.contentType)
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
			w.Write(a.body)
		default:
			http.NotFound(w, r)
		}
	})
}
