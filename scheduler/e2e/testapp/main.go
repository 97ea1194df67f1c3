// Command testapp is the development server the end-to-end suites run
// inside a workspace (image berth/workspace-test:dev) to drive the preview
// proxy and the WebSocket proxy through the whole cluster. Built static
// (CGO_ENABLED=0) by `make build` as bin/testapp.
//
//	testapp [--port 3000]
//
// Routes:
//
//	GET  /            an HTML page (it logs "berth testapp ready" to the console)
//	GET  /json        {"app":"berth-testapp","ok":true}
//	GET  /headers     the request's headers, as JSON
//	POST /echo        the body back, with its content type
//	GET  /big?mb=N    N MiB of BigStream bytes, streamed, with Content-Length
//	GET  /sse?n=N&ms=M N server-sent events "data: event i", M ms apart, each flushed
//	GET  /ws          a WebSocket echo (text and binary), greeting first with
//	                  "hello <path> <query> <subprotocol>"; accepts vite-hmr
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// page is the HTML of /.
const page = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>berth test app</title>
</head>
<body>
<h1 id="greeting">Hello from the berth test app</h1>
<p id="script">script not run</p>
<script>
document.getElementById('script').textContent = 'script ran';
console.log('berth testapp ready');
</script>
</body>
</html>
`

// bigSeed seeds the ChaCha8 stream /big sends; the e2e suite computes the
// expected bytes from the same seed (scheduler/e2e/preview_test.go).
var bigSeed = [32]byte{'b', 'e', 'r', 't', 'h'}

func main() {
	port := flag.Int("port", 3000, "TCP port to listen on (all interfaces)")
	flag.Parse()
	srv := &http.Server{Addr: net.JoinHostPort("", strconv.Itoa(*port)), Handler: handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("testapp listening on %s", srv.Addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	})
	mux.HandleFunc("GET /json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"app":"berth-testapp","ok":true}`)
	})
	mux.HandleFunc("GET /headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Header)
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		_, _ = io.Copy(w, r.Body)
	})
	mux.HandleFunc("GET /big", big)
	mux.HandleFunc("GET /sse", events)
	mux.HandleFunc("GET /ws", echoSocket)
	return mux
}

// big streams ?mb= MiB of the bigSeed stream.
func big(w http.ResponseWriter, r *http.Request) {
	mb, err := strconv.Atoi(r.URL.Query().Get("mb"))
	if err != nil || mb < 0 || mb > 4096 {
		http.Error(w, "mb: want 0-4096", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(mb<<20))
	_, _ = io.CopyN(w, rand.NewChaCha8(bigSeed), int64(mb)<<20)
}

// events sends ?n= events, ?ms= apart, each flushed at once.
func events(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	for i := range n {
		if i > 0 {
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		if _, err := fmt.Fprintf(w, "data: event %d\n\n", i); err != nil {
			return
		}
		w.(http.Flusher).Flush()
	}
}

// echoSocket greets, then echoes every message with its type.
func echoSocket(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"vite-hmr"}, InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer func() { _ = conn.CloseNow() }()
	conn.SetReadLimit(16 << 20)
	ctx := r.Context()
	hello := fmt.Sprintf("hello %s %s %s", r.URL.Path, r.URL.RawQuery, conn.Subprotocol())
	if err := conn.Write(ctx, websocket.MessageText, []byte(hello)); err != nil {
		return
	}
	for {
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if err := conn.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}
