package metrics

import (
	"net/http"

	"berth/scheduler/internal/auth"
)

// RequireToken guards h (the /metrics handler) with a bearer token:
// "Authorization: Bearer <token>", compared in constant time; anything
// else is 401 with a WWW-Authenticate challenge. An empty token leaves h
// open, as the compute service's /metrics was (BERTH_METRICS_TOKEN unset).
func RequireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := auth.Bearer(r.Header.Get("Authorization"))
		if !ok || !auth.Equal(got, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="berth metrics"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"detail":"Missing or invalid metrics token (BERTH_METRICS_TOKEN)"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
