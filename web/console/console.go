// Package console serves the investigator console: a page (plain HTML, CSS and
// JavaScript, Korean by default) that runs the whole trace of a confirmed case in the
// investigator's browser, with a timeline picture of the case's visits and the
// overlapping visitors, the contact table and a CSV download. The page calls central's
// and the issuers' trace APIs with the tokens the investigator types in, and opens
// sealed phone numbers with the authority's private key, loaded from a file into the
// page and used there by a WebAssembly build of the seal package: the key is never
// uploaded. Central mounts the console at Prefix.
package console

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"slices"
	"strings"
)

// Prefix is the path central serves the console under.
const Prefix = "/console/"

//go:embed static
var static embed.FS

// Config is what the page is told: where the services are. The tokens are never
// part of it; the investigator types them in.
type Config struct {
	// CentralURL is central's base URL as the browser reaches it; empty means the
	// page's own origin (the console is served by central).
	CentralURL string `json:"central_url"`
	// IssuerURL is the default issuer's base URL as the browser reaches it. An issuer
	// on another origin must allow the console's origin (see CORS).
	IssuerURL string `json:"issuer_url"`
	// IssuerKeys maps issuer key ids to the base URL of the issuer holding each key;
	// visits of other key ids are resolved at IssuerURL.
	IssuerKeys map[string]string `json:"issuer_keys,omitempty"`
}

// Handler returns the console's handler, to be mounted at Prefix.
func Handler(cfg Config) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	conf, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	files := http.FileServerFS(sub)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(conf)
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		// The page holds a private key while it runs: no framing, no foreign scripts,
		// no referrer, and nothing cached that a later user could read.
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src *; img-src 'self' blob: data:; style-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	return http.StripPrefix(strings.TrimSuffix(Prefix, "/"), mux)
}

// CORS lets pages of the given origins (e.g. "http://127.0.0.1:8080", where central
// serves the console) call h from the browser with a bearer token: an issuer on
// another origin than the console is wrapped with it. Other origins get no CORS
// headers, so the browser keeps them out.
func CORS(h http.Handler, origins ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !slices.Contains(origins, origin) {
			h.ServeHTTP(w, r)
			return
		}
		hd := w.Header()
		hd.Set("Access-Control-Allow-Origin", origin)
		hd.Add("Vary", "Origin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			hd.Set("Access-Control-Allow-Methods", "GET, POST")
			hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			hd.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(w, r)
	})
}
