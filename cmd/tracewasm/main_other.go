//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

// main explains that this command is a WebAssembly module for the console.
func main() {
	fmt.Fprintln(os.Stderr, "tracewasm is built for the browser: GOOS=js GOARCH=wasm (go generate ./web/console)")
	os.Exit(2)
}
