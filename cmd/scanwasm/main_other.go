//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

// main explains that the module runs only in a browser.
func main() {
	fmt.Fprintln(os.Stderr, "scanwasm is the browser scanner's WebAssembly module: build it with GOOS=js GOARCH=wasm (make wasm)")
	os.Exit(2)
}
