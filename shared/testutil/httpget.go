package testutil

import (
	"io"
	"net/http"
	"net/http/httptrace"
)

// GetReused sends GET url on c and returns the answer, read whole, and
// whether it came over a reused (kept-alive) connection: what a test of
// checks that must hold on an already open connection needs.
func GetReused(c *http.Client, url string) (status int, body string, reused bool, err error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", false, err
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", reused, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), reused, err
}
