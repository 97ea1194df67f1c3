package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth/scheduler/internal/metrics"
)

// With BERTH_METRICS_TOKEN set, /metrics answers only its bearer token;
// unset, it stays open.
func TestRequireToken(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	tests := []struct {
		name, token, header string
		want                int
	}{
		{"no token configured, no header", "", "", 200},
		{"no token configured, any header", "", "Bearer whatever", 200},
		{"token, no header", "metrics-secret", "", 401},
		{"token, wrong bearer", "metrics-secret", "Bearer nope", 401},
		{"token, not bearer", "metrics-secret", "Basic bWV0cmljcy1zZWNyZXQ=", 401},
		{"token, right bearer", "metrics-secret", "Bearer metrics-secret", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			metrics.RequireToken(tt.token, ok).ServeHTTP(rec, req)
			if diff := cmp.Diff(tt.want, rec.Code); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			if tt.want == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without a WWW-Authenticate challenge")
			}
		})
	}
}
