package registry

import (
	"context"
	_ "embed"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/kipass/kipass"
)

// openAPI is the hand-written OpenAPI 3 description of the API. A test checks that it
// describes every registered route and nothing else.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document served at /v1/openapi.json.
func OpenAPI() []byte { return openAPI }

func (s *Server) registerRoutes() {
	s.handle("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.handle("GET /readyz", s.handleReady)
	metrics := s.metrics.handler()
	s.handle("GET /metrics", metrics.ServeHTTP)
	s.handle("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(openAPI)
	})
	s.handle("GET /v1/persons/{id}", s.handleFacts)
	s.handle("PUT /v1/persons/{id}", s.handlePut)
	s.handle("GET /v1/persons/{id}/record", s.handleRecord)
	s.handle("POST /v1/persons/{id}/doses", s.handleAddDose)
	s.handle("POST /v1/persons/{id}/tests", s.handleAddTest)
	s.handle("POST /v1/persons/{id}/recoveries", s.handleAddRecovery)

	// A known path with another method is a 405 that says which methods it has.
	allow := map[string][]string{}
	for _, pat := range s.routes {
		method, path, _ := strings.Cut(pat, " ")
		allow[path] = append(allow[path], method)
	}
	for path, methods := range allow {
		list := strings.Join(methods, ", ")
		s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", list)
			writeJSON(w, http.StatusMethodNotAllowed, &ErrorResponse{Error: ErrorBody{
				Code: kipass.EINVALID, Message: "method " + r.Method + " not allowed here; allowed: " + list}})
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.error(w, r, kipass.Errorf(kipass.ENOTFOUND, "no such route"))
	})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ready(ctx); err != nil {
		if kipass.ErrorCode(err) != kipass.EUNAVAILABLE {
			err = errors.Join(kipass.Errorf(kipass.EUNAVAILABLE, "database not ready"), err)
		}
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// handleFacts answers an issuer: the holder facts of one person as of now.
func (s *Server) handleFacts(w http.ResponseWriter, r *http.Request) {
	who, err := s.require(r, roleIssuer, roleAdmin)
	if err != nil {
		s.error(w, r, err)
		return
	}
	id := r.PathValue("id")
	if err := ValidatePersonID(id); err != nil {
		s.error(w, r, err)
		return
	}
	p, err := s.store.Person(r.Context(), id)
	switch kipass.ErrorCode(err) {
	case "":
		s.metrics.lookups.WithLabelValues(who.Name, "found").Inc()
	case kipass.ENOTFOUND:
		s.metrics.lookups.WithLabelValues(who.Name, "not_found").Inc()
		s.error(w, r, err)
		return
	default:
		s.metrics.lookups.WithLabelValues(who.Name, "error").Inc()
		s.error(w, r, err)
		return
	}
	now := s.cfg.Now()
	writeJSON(w, http.StatusOK, &Record{PersonID: p.PersonID, Holder: p.Facts(now), UpdatedAt: p.UpdatedAt, AsOf: now})
}

// handleRecord answers an operator: the whole record.
func (s *Server) handleRecord(w http.ResponseWriter, r *http.Request) {
	id, err := s.adminID(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	p, err := s.store.Person(r.Context(), id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// handlePut creates or replaces one record: 201 when created, 200 when replaced.
func (s *Server) handlePut(w http.ResponseWriter, r *http.Request) {
	id, err := s.adminID(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	var doc personDoc
	if err := s.decodeBody(w, r, &doc); err != nil {
		s.writeFailed(w, r, "put", err)
		return
	}
	p, err := doc.person()
	if err == nil && doc.PersonID != nil && *doc.PersonID != id {
		err = kipass.FieldErrorf("person_id", "%q is not the id in the path", *doc.PersonID)
	}
	if err == nil {
		p.PersonID = id
		err = p.Validate(s.cfg.Now())
	}
	if err != nil {
		s.writeFailed(w, r, "put", err)
		return
	}
	p.Normalize()
	created, err := s.store.PutPerson(r.Context(), p)
	if err != nil {
		s.writeFailed(w, r, "put", err)
		return
	}
	s.metrics.writes.WithLabelValues("put", "changed").Inc()
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, p)
}

func (s *Server) handleAddDose(w http.ResponseWriter, r *http.Request) {
	var doc doseDoc
	s.update(w, r, "dose", &doc, func(p *Person, now time.Time) (bool, error) {
		d, err := doc.dose("")
		if err != nil {
			return false, err
		}
		return p.AddDose(d, now)
	})
}

func (s *Server) handleAddTest(w http.ResponseWriter, r *http.Request) {
	var doc testDoc
	s.update(w, r, "test", &doc, func(p *Person, now time.Time) (bool, error) {
		t, err := doc.test("")
		if err != nil {
			return false, err
		}
		return p.AddTest(t, now)
	})
}

func (s *Server) handleAddRecovery(w http.ResponseWriter, r *http.Request) {
	var doc recoveryDoc
	s.update(w, r, "recovery", &doc, func(p *Person, now time.Time) (bool, error) {
		if doc.Date == nil {
			return false, kipass.FieldErrorf("date", "missing")
		}
		return p.AddRecovery(*doc.Date, now)
	})
}

// update is a single update of one record: decode the body into doc, then apply fn to
// the stored record in one transaction. It answers the whole record.
func (s *Server) update(w http.ResponseWriter, r *http.Request, kind string, doc any, fn func(p *Person, now time.Time) (bool, error)) {
	id, err := s.adminID(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if err := s.decodeBody(w, r, doc); err != nil {
		s.writeFailed(w, r, kind, err)
		return
	}
	now := s.cfg.Now()
	var changed bool
	p, err := s.store.UpdatePerson(r.Context(), id, func(p *Person) (bool, error) {
		c, err := fn(p, now)
		changed = c
		return c, err
	})
	if err != nil {
		s.writeFailed(w, r, kind, err)
		return
	}
	result := "unchanged"
	if changed {
		result = "changed"
	}
	s.metrics.writes.WithLabelValues(kind, result).Inc()
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) writeFailed(w http.ResponseWriter, r *http.Request, kind string, err error) {
	s.metrics.writes.WithLabelValues(kind, "error").Inc()
	s.error(w, r, err)
}

// adminID authenticates an operator and returns the validated person id of the path.
func (s *Server) adminID(r *http.Request) (string, error) {
	if _, err := s.require(r, roleAdmin); err != nil {
		return "", err
	}
	id := r.PathValue("id")
	return id, ValidatePersonID(id)
}

// decodeBody reads a JSON body of at most MaxBodySize bytes into v, strictly.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return kipass.Errorf(kipass.EINVALID, "the body must be application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodySize))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return kipass.Errorf(kipass.EINVALID, "the body is larger than %d bytes", maxErr.Limit)
	} else if err != nil {
		return kipass.Errorf(kipass.EINVALID, "the body could not be read")
	}
	return decodeStrict(body, v)
}
