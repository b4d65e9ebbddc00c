package api

import (
	"embed"
	"net/http"
)

// The dashboard's assets are embedded: the binary serves them with no CDN
// and no internet access.
//
//go:embed dashboard/index.html dashboard/app.js dashboard/style.css
var dashboardFS embed.FS

// RegisterDashboard serves the dashboard at GET / and its assets under
// /assets/.
func (s *Server) RegisterDashboard() {
	serve := func(name, contentType string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			data, err := dashboardFS.ReadFile("dashboard/" + name)
			if err != nil {
				http.Error(w, "dashboard asset missing", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write(data)
		}
	}
	s.HandleFunc("GET /{$}", serve("index.html", "text/html; charset=utf-8"))
	s.HandleFunc("GET /assets/app.js", serve("app.js", "text/javascript; charset=utf-8"))
	s.HandleFunc("GET /assets/style.css", serve("style.css", "text/css; charset=utf-8"))
}
