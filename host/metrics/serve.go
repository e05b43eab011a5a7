package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ShutdownTimeout bounds how long Serve's server waits for open requests
// when its context ends.
const ShutdownTimeout = 5 * time.Second

// readHeaderTimeout bounds how long a client may take to send a request's
// headers, so idle or slow connections cannot pile up.
const readHeaderTimeout = 10 * time.Second

// Serve listens on addr and serves m's metrics on /metrics and a health
// check on /healthz until ctx ends; then it shuts the server down, waiting
// at most ShutdownTimeout for open requests. It returns the address it
// listens on (with the real port when addr's port is 0) as soon as it
// listens, or an error naming addr when it cannot listen.
//
// /healthz answers 200 "ok" when health returns nil (or health is nil),
// else 503 with the error's text. health is called on every request to
// /healthz and should return quickly. Any other path is 404. log (nil for
// none) receives the server's start, stop and errors.
func Serve(ctx context.Context, addr string, m *Metrics, health func() error, log hclog.Logger) (net.Addr, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: cannot listen on %q: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           newMux(m, health),
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server failed", "addr", ln.Addr().String(), "error", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("metrics server shutdown incomplete; closing", "addr", ln.Addr().String(), "error", err)
			_ = srv.Close()
		}
		<-stopped
		log.Debug("metrics server stopped", "addr", ln.Addr().String())
	}()
	log.Info("serving metrics and health", "addr", ln.Addr().String())
	return ln.Addr(), nil
}

// newMux routes /metrics and /healthz; the mux answers 404 for any other
// path.
func newMux(m *Metrics, health func() error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		var err error
		if health != nil {
			err = health()
		}
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err.Error())
			return
		}
		fmt.Fprint(w, "ok\n")
	})
	return mux
}
