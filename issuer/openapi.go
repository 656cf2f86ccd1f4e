package issuer

import (
	_ "embed"
	"net/http"
)

// openAPI is the hand-written OpenAPI 3 description of the issuer's API. A test checks
// that it describes every route of Routes and nothing else.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document served at /v1/openapi.json.
func OpenAPI() []byte { return openAPI }

func handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(openAPI)
}
