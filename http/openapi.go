package http

import (
	_ "embed"
	"net/http"
)

// openAPI is the hand-written OpenAPI 3 description of the /v1 API. A test checks that
// it describes every registered route and nothing else.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document the server serves at /v1/openapi.json.
func OpenAPI() []byte { return openAPI }

func (s *Server) registerOpenAPIRoutes() {
	s.handle("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(openAPI)
	})
}
