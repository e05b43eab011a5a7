package mockrec

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Server is a mock model server's HTTP side on 127.0.0.1: started by
// StartServer, closed when the test ends or by Close, which also ends the
// answers still streaming (they watch Closing).
type Server struct {
	srv       *httptest.Server
	closeOnce sync.Once
	closing   chan struct{}
}

// StartServer serves h on 127.0.0.1:0 until the test ends.
func StartServer(t testing.TB, h http.Handler) *Server {
	s := &Server{srv: httptest.NewServer(h), closing: make(chan struct{})}
	t.Cleanup(s.Close)
	return s
}

// URL is the server's root, "http://127.0.0.1:PORT": the CLI's base URL.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server; streaming answers end at once. It is called when
// the test ends.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.srv.Close()
	})
}

// Closing is closed by Close.
func (s *Server) Closing() <-chan struct{} { return s.closing }

// Pacer spaces the deltas of a streamed answer; Stop it when the answer
// ends.
type Pacer struct {
	every time.Duration
	timer *time.Timer
}

// NewPacer paces deltas every apart.
func NewPacer(every time.Duration) *Pacer { return &Pacer{every: every} }

// Stop releases the pacer's timer.
func (p *Pacer) Stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

// Pace waits the pacer's interval before the next delta; false when the
// client went away (ctx) or the server closed first.
func (s *Server) Pace(ctx context.Context, p *Pacer) bool {
	if p.every <= 0 {
		return true
	}
	if p.timer == nil {
		p.timer = time.NewTimer(p.every)
	} else {
		p.timer.Reset(p.every)
	}
	select {
	case <-p.timer.C:
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	return false
}
