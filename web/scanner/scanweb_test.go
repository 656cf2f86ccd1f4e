package scanweb

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func testHandler(t *testing.T) (http.Handler, ed25519.PublicKey) {
	t.Helper()
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)
	return Handler(Config{RootKey: pub}), pub
}

func get(h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandler(t *testing.T) {
	h, pub := testHandler(t)
	t.Run("IndexCarriesRootKey", func(t *testing.T) {
		w := get(h, "/scan/")
		body := w.Body.String()
		if w.Code != 200 || !strings.Contains(body, base64.StdEncoding.EncodeToString(pub)) || strings.Contains(body, rootKeyPlaceholder) {
			t.Fatalf("GET /scan/ = %d without the root key", w.Code)
		}
		if w.Header().Get("Content-Security-Policy") == "" || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
			t.Errorf("headers = %v", w.Header())
		}
	})
	t.Run("RedirectKeepsQuery", func(t *testing.T) {
		w := get(h, "/scan?at=2022-01-27T12:00:00%2B09:00")
		if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/scan/?at=2022-01-27T12:00:00%2B09:00" {
			t.Fatalf("GET /scan = %d %q", w.Code, w.Header().Get("Location"))
		}
	})
	t.Run("ServiceWorkerVersioned", func(t *testing.T) {
		w := get(h, "/scan/sw.js")
		if w.Code != 200 || strings.Contains(w.Body.String(), versionPlaceholder) {
			t.Fatalf("GET /scan/sw.js = %d, version not filled in", w.Code)
		}
		other := Handler(Config{RootKey: make(ed25519.PublicKey, 32)})
		if get(other, "/scan/sw.js").Body.String() == w.Body.String() {
			t.Error("another root key gives the same service worker version: browsers would keep the old page")
		}
	})
	t.Run("WasmGzipAndETag", func(t *testing.T) {
		w := get(h, "/scan/kipass.wasm", "Accept-Encoding", "gzip, br")
		if w.Code != 200 || w.Header().Get("Content-Type") != "application/wasm" || w.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("GET kipass.wasm = %d %v", w.Code, w.Header())
		}
		zr, err := gzip.NewReader(w.Body)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil || !bytes.HasPrefix(raw, []byte("\x00asm")) {
			t.Fatalf("gunzipped body is not WebAssembly: %v", err)
		}
		etag := w.Header().Get("ETag")
		if w := get(h, "/scan/kipass.wasm", "If-None-Match", etag); w.Code != http.StatusNotModified {
			t.Errorf("revalidation = %d, want 304", w.Code)
		}
		if w := get(h, "/scan/kipass.wasm"); w.Header().Get("Content-Encoding") != "" || !bytes.HasPrefix(w.Body.Bytes(), []byte("\x00asm")) {
			t.Error("a client without gzip got a compressed body")
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		for _, p := range []string{"/scan/nope.js", "/scan/../go.mod", "/other"} {
			if w := get(h, p); w.Code != http.StatusNotFound {
				t.Errorf("GET %s = %d", p, w.Code)
			}
		}
	})
	t.Run("MethodNotAllowed", func(t *testing.T) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/scan/", nil))
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST /scan/ = %d", w.Code)
		}
	})
	t.Run("PanicsWithoutRootKey", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("no panic for a missing root key")
			}
		}()
		Handler(Config{})
	})
}
