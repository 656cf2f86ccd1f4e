package scanweb

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// wasmBuild is the command that makes static/kipass.wasm: the same as the go:generate
// line in generate.go. -trimpath and -buildvcs=false make the build reproducible.
var wasmBuild = []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w"}

// TestWasmUpToDate rebuilds the WebAssembly module from the current source and fails
// if the committed one differs by a byte, and checks that wasm_exec.js is the
// toolchain's own.
func TestWasmUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the WebAssembly module")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	goroot, err := exec.Command(goBin, "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	const fix = "the committed WebAssembly build is stale: run `make wasm` (go generate ./web/scanner) and commit web/scanner/static"

	wantJS, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		t.Fatal(err)
	}
	gotJS, err := os.ReadFile("static/wasm_exec.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotJS, wantJS) {
		t.Errorf("static/wasm_exec.js is not the one of this Go toolchain: %s", fix)
	}

	out := filepath.Join(t.TempDir(), "kipass.wasm")
	cmd := exec.Command(goBin, append(wasmBuild, "-o", out, "github.com/kipass/kipass/cmd/scanwasm")...)
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "GOFLAGS=", "GOWASM=", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the WebAssembly module: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("static/kipass.wasm")
	if err != nil {
		t.Fatalf("%v: %s", err, fix)
	}
	if !bytes.Equal(got, want) {
		ver, _ := exec.Command(goBin, "env", "GOVERSION").Output()
		t.Fatalf("static/kipass.wasm (%d bytes) differs from a build of the source with %s (%d bytes): %s",
			len(got), strings.TrimSpace(string(ver)), len(want), fix)
	}
}
