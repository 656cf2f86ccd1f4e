//go:build js && wasm

package main

import "syscall/js"

// main installs the global object kipassTrace and keeps the module alive.
func main() {
	api := js.Global().Get("Object").New()
	api.Set("openContact", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 2 {
			return map[string]any{"error": "openContact(privateKeyBase64, sealedBase64)"}
		}
		phone, err := openContact(args[0].String(), args[1].String())
		if err != nil {
			return map[string]any{"error": err.Error()}
		}
		return map[string]any{"phone": phone}
	}))
	js.Global().Set("kipassTrace", api)
	js.Global().Call("dispatchEvent", js.Global().Get("Event").New("kipasstrace"))
	select {}
}
