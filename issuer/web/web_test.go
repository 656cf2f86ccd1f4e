package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/kipass/kipass/issuer/web"
)

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(w.Result().Body)
	return w.Result(), string(body)
}

func TestAssets(t *testing.T) {
	h := web.Handler()
	resp, page := get(t, h, "/wallet")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != web.CSP || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("/wallet: %d %v", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(page, `<html lang="ko">`) || strings.Contains(page, "{{") {
		t.Fatal("the page is not Korean by default, or has unresolved asset names")
	}
	assets := regexp.MustCompile(`/wallet/assets/wallet\.[0-9a-f]{12}\.(css|js)`).FindAllString(page, -1)
	if len(assets) != 2 {
		t.Fatalf("hashed assets in the page: %v", assets)
	}
	for _, a := range assets {
		resp, body := get(t, h, a)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || len(body) < 1000 {
			t.Fatalf("%s: %d %v", a, resp.StatusCode, resp.Header)
		}
	}
	if resp, sw := get(t, h, "/wallet/sw.js"); resp.StatusCode != 200 || resp.Header.Get("Service-Worker-Allowed") != "/wallet" || !strings.Contains(sw, assets[0]) {
		t.Fatalf("service worker: %d %v", resp.StatusCode, resp.Header)
	}
	for _, p := range []string{"/wallet/assets/wallet.js", "/wallet/assets/wallet.000000000000.js", "/wallet/other"} {
		if resp, _ := get(t, h, p); resp.StatusCode != 404 {
			t.Errorf("%s: HTTP %d, want 404", p, resp.StatusCode)
		}
	}
}
