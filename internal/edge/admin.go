package edge

import (
	"encoding/json"
	"io"
	"net/http"
)

// The admin listener's JSON endpoints share their token check and their
// reading and writing of JSON.

// authorizedOr401 answers 401 unless r carries the admin token.
func (s *Server) authorizedOr401(w http.ResponseWriter, r *http.Request) bool {
	if s.authorized(r) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="kubecdn"`)
	http.Error(w, "unauthorized: a valid bearer token is required", http.StatusUnauthorized)
	return false
}

// decodeJSON reads r's body, at most limit bytes, into v; a field v does
// not have is an error.
func decodeJSON(r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}
