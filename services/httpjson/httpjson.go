// Package httpjson writes the HTTP API's JSON replies and errors in the one
// shape CONTRACT.md section 8 promises: {"error": "...", "code": "..."}.
package httpjson

import (
	"encoding/json"
	"net/http"
	"strings"
)

// ErrorBody is the JSON error of the HTTP API.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// WriteError writes {"error": msg, "code": code} with status.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	Write(w, status, ErrorBody{Error: strings.TrimSpace(msg), Code: code})
}

// Write writes v as JSON with status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
