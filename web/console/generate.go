package console

// The WebAssembly module that opens sealed contacts in the browser, and its JavaScript
// support file, are built from source and committed, so that building and running
// kipass needs only the Go toolchain. TestWasmUpToDate fails when they are stale;
// `go generate ./web/console` rebuilds them.

//go:generate sh -c "cp \"$(go env GOROOT)/lib/wasm/wasm_exec.js\" static/wasm_exec.js"
//go:generate env GOOS=js GOARCH=wasm GOFLAGS= go build -trimpath -buildvcs=false "-ldflags=-s -w" -o static/trace.wasm github.com/kipass/kipass/cmd/tracewasm
