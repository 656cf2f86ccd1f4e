//go:build js && wasm

package main

import (
	"syscall/js"
	"time"
)

// main installs the global object kipass and then keeps the module alive: its
// functions run on the page's calls.
func main() {
	e := newEngine()
	var lum []byte // reused between frames: a 640x480 frame is 300 KB
	api := js.Global().Get("Object").New()
	api.Set("loadBundle", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 2 || args[0].Type() != js.TypeObject {
			return map[string]any{"error": "loadBundle(signedBytes Uint8Array, rootKeyBase64)"}
		}
		b := make([]byte, args[0].Get("length").Int())
		js.CopyBytesToGo(b, args[0])
		return e.loadBundle(b, args[1].String())
	}))
	api.Set("decide", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 5 {
			return map[string]any{"outcome": "REFUSED", "refusal": "bad_input", "detail": "decide(text, category, region, party, nowUnixMillis)"}
		}
		now := time.UnixMilli(int64(args[4].Float()))
		return e.decide(args[0].String(), args[1].String(), args[2].String(), args[3].Int(), now)
	}))
	api.Set("decodeQR", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 3 || args[0].Type() != js.TypeObject {
			return ""
		}
		n := args[0].Get("length").Int()
		if cap(lum) < n {
			lum = make([]byte, n)
		}
		lum = lum[:n]
		js.CopyBytesToGo(lum, args[0])
		return e.decodeQR(lum, args[1].Int(), args[2].Int())
	}))
	api.Set("sealPhone", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 1 {
			return ""
		}
		s, err := e.sealPhone(args[0].String())
		if err != nil {
			return ""
		}
		return s
	}))
	api.Set("checkSafeNumber", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 1 {
			return ""
		}
		return checkSafeNumber(args[0].String())
	}))
	js.Global().Set("kipass", api)
	if ready := js.Global().Get("kipassReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {}
}
