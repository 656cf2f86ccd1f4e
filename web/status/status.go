// Package status is the operators' and venue owners' status page: central's health,
// ingest queue and operator notices, live from /v1/status/stream, in Korean by default
// with an English switch. It is one embedded HTML file served beside central's API.
package status

import (
	_ "embed"
	"net/http"
)

// Prefix is the path the page is served at.
const Prefix = "/status"

//go:embed index.html
var page []byte

// Handler serves the status page.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'")
		w.Write(page)
	})
}
