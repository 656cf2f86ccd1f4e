# kipass: one binary, every service. See README.md.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Pure packages that the browser scanner runs as WebAssembly.
WASM_PKGS := ./base45 ./pass ./trust ./policy ./seal ./scanner ./issuer/subject ./cmd/scanwasm ./cmd/tracewasm

.PHONY: build run test lint wasm wasm-check bench fuzz

build:
	go build -ldflags "$(LDFLAGS)" -o bin/kipass ./cmd/kipass

run:
	go run ./cmd/kipass demo

# test runs every test: lint, the WebAssembly build of the pure core, and go test
# (PostgreSQL tests included: they need the server on 127.0.0.1:5432).
test: lint wasm-check
	go test -count=1 -timeout 15m ./...

lint:
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# wasm rebuilds the WebAssembly modules of the scanner and the investigator console
# (committed; tests check they are up to date with the Go source).
wasm:
	go generate ./web/scanner ./web/console

wasm-check:
	GOOS=js GOARCH=wasm go build $(WASM_PKGS)

bench:
	go test -run '^$$' -bench . -benchmem -cpu 1 ./scanner ./pass ./policy ./issuer

fuzz:
	go test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./pass
	go test -run '^$$' -fuzz FuzzDecode -fuzztime 30s ./base45
	go test -run '^$$' -fuzz FuzzVerify -fuzztime 30s ./trust
