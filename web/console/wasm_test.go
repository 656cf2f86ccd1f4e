package console_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWasmUpToDate rebuilds static/trace.wasm from the current source with the flags of
// generate.go and fails if the committed one differs by a byte, and checks that
// wasm_exec.js is the toolchain's own.
func TestWasmUpToDate(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go command on PATH")
	}
	goroot, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	const fix = "the committed WebAssembly build is stale: run `go generate ./web/console` and commit web/console/static"
	wantJS, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		t.Fatal(err)
	}
	if gotJS, err := os.ReadFile("static/wasm_exec.js"); err != nil || !bytes.Equal(gotJS, wantJS) {
		t.Errorf("static/wasm_exec.js is not the one of this Go toolchain (%v): %s", err, fix)
	}
	out := filepath.Join(t.TempDir(), "trace.wasm")
	cmd := exec.Command(goBin, "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, "github.com/kipass/kipass/cmd/tracewasm")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "GOFLAGS=", "GOWASM=", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the WebAssembly module: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("static/trace.wasm")
	if err != nil {
		t.Fatalf("%v: %s", err, fix)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("static/trace.wasm (%d bytes) differs from a build of the source (%d bytes): %s", len(got), len(want), fix)
	}
}
