package http

import "time"

// SetReadTimeout changes the server's read timeout, for tests of long-lived requests.
func SetReadTimeout(s *Server, d time.Duration) { s.server.ReadTimeout = d }
