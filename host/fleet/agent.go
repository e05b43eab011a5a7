package fleet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tthost/tthost/host/agentloop"
	"github.com/tthost/tthost/host/backend"
	"github.com/tthost/tthost/host/notify"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/sdk"
)

var pid = os.Getpid()

// served is one agent this host serves: its loop runs in a goroutine.
type served struct {
	h     *Host
	want  town.WantedAgent
	lease *town.Lease
	loop  *agentloop.Loop
	ref   agentloop.AgentRef

	cancel   context.CancelFunc
	done     chan struct{}
	released atomic.Bool // the host ended the loop (shutdown, lease lost, released)

	mu      sync.Mutex
	session agentloop.Session // the last session opened for the agent (closed at once on self-fencing)
}

// start runs the agent's loop under the lease; false when it could not
// be started (its lease is released by the caller).
func (h *Host) start(ctx context.Context, w town.WantedAgent, lease *town.Lease, fence time.Duration, why string) bool {
	logDir := filepath.Join(h.opts.TownDir, ".tt", "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		h.log.Error("create the log directory", "error", err)
		return false
	}
	out, err := os.OpenFile(filepath.Join(logDir, w.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.log.Error("open the agent's log", "agent", w.Name, "error", err)
		return false
	}
	s := &served{h: h, want: w, lease: lease, done: make(chan struct{})}
	var wakeups agentloop.Wakeups
	var watch *notify.Watch
	if n := h.opts.Notifier; n != nil && n.Mode() == notify.ModeKeyspace {
		if watch, err = n.Watch(ctx, w.ID); err != nil {
			h.log.Warn("watch the agent's keys: it polls", "agent", w.Name, "error", err)
		} else {
			wakeups = watch
		}
	}
	loop, err := agentloop.New(agentloop.Options{
		TownDir:   h.opts.TownDir,
		Config:    h.opts.Config,
		Store:     h.store,
		Backends:  agentBackends{Backends: h.opts.Backends, s: s},
		Name:      w.Name,
		ID:        w.ID,
		MaxRounds: w.MaxRounds,
		Out:       out,
		Logger:    h.opts.Logger.Named(w.Name),
		ToolDir:   h.opts.ToolDir,
		Wakeups:   wakeups,
		Claim:     &agentloop.Claim{Lease: lease, Fence: fence, FenceWhy: why},
		Hosted:    true,
		Observer:  h.metrics,
	})
	if err != nil {
		if watch != nil {
			watch.Close()
		}
		_ = out.Close()
		h.log.Error("prepare the agent's loop", "agent", w.Name, "error", err)
		return false
	}
	s.loop = loop
	s.ref = agentloop.AgentRef{ID: w.ID, Name: w.Name, CLI: h.agentLabels(w)["cli"]}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel

	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		cancel()
		if watch != nil {
			watch.Close()
		}
		_ = out.Close()
		return false
	}
	h.agents[w.ID] = s
	n := len(h.agents)
	h.wg.Add(1)
	h.mu.Unlock()
	h.metrics.SetAgentsServed(n)
	h.loadChanged()

	go func() {
		defer h.wg.Done()
		defer close(s.done)
		err := loop.Run(lctx)
		cancel()
		if watch != nil {
			watch.Close()
		}
		_ = out.Close()
		h.ended(s, err)
	}()
	return true
}

// ended handles a loop's end: an agent that stopped (stop request, idle
// timeout, round limit) is no longer wanted; one whose loop failed is
// claimed again after a backoff; one the host let go is simply dropped.
func (h *Host) ended(s *served, err error) {
	id := s.want.ID
	h.mu.Lock()
	delete(h.agents, id)
	n := len(h.agents)
	closing := h.closing
	switch {
	case s.released.Load() || errors.Is(err, agentloop.ErrLeaseLost):
		delete(h.failures, id)
	case err != nil:
		h.failures[id]++
		d := min(time.Second<<min(h.failures[id]-1, 6), time.Minute)
		h.retryAt[id] = time.Now().Add(d)
		h.log.Error("agent loop failed: claiming it again later", "agent", s.want.Name, "retry_in", d, "error", err)
	default:
		delete(h.failures, id)
		delete(h.retryAt, id)
	}
	h.mu.Unlock()
	h.metrics.SetAgentsServed(n)
	h.metrics.Forget(s.ref)
	h.loadChanged()
	if err == nil && !s.released.Load() && !closing {
		// The agent stopped (stop request, idle timeout, round limit): it
		// is done, as an agent-loop that exits is.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, uerr := h.store.Unwant(ctx, id); uerr != nil {
			h.log.Warn("release the stopped agent", "agent", s.want.Name, "error", uerr)
		}
		cancel()
		h.log.Info("agent stopped", "agent", s.want.Name)
	}
	if !closing {
		h.poke()
	}
}

// stop ends the loop the way SIGTERM ends an agent-loop (its turn is
// interrupted, messages re-queued, lease released) and waits for it.
func (s *served) stop() {
	s.released.Store(true)
	s.cancel()
	<-s.done
}

// lose ends the loop without any write of its: the lease is someone
// else's now or can no longer be vouched for. With closeNow its sessions
// are closed at once (their CLIs stopped), without waiting for Redis.
func (s *served) lose(cause error, closeNow bool) {
	if !s.released.CompareAndSwap(false, true) {
		return
	}
	s.h.log.Warn("giving agent up", "agent", s.want.Name, "why", cause)
	s.loop.LoseLease(cause)
	if closeNow {
		s.mu.Lock()
		sess := s.session
		s.mu.Unlock()
		if sess != nil {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), s.h.stopGrace()+5*time.Second)
				defer cancel()
				_ = sess.Close(ctx, sdk.CloseImmediate)
			}()
		}
	}
	s.cancel()
}

// ResumeSession resumes the agent's session on the host's shared backends
// (when they reattached to a previous process's plugins) and remembers it
// for the agent, as OpenSession does.
func (b agentBackends) ResumeSession(ctx context.Context, agentID, sessionID string, afterSeq uint64) (agentloop.Session, bool, error) {
	r, ok := b.Backends.(agentloop.Resumer)
	if !ok {
		return nil, false, nil
	}
	sess, found, err := r.ResumeSession(ctx, agentID, sessionID, afterSeq)
	if err != nil || !found {
		return nil, found, err
	}
	b.s.mu.Lock()
	b.s.session = sess
	b.s.mu.Unlock()
	return sess, true, nil
}

// agentBackends opens an agent's sessions on the host's shared backends
// and remembers them for the agent.
type agentBackends struct {
	agentloop.Backends
	s *served
}

func (b agentBackends) OpenSession(ctx context.Context, ch backend.Choice, cfg sdk.SessionConfig) (agentloop.Session, error) {
	sess, err := b.Backends.OpenSession(ctx, ch, cfg)
	if err != nil {
		return nil, err
	}
	b.s.mu.Lock()
	b.s.session = sess // a loop has one session at a time
	b.s.mu.Unlock()
	return sess, nil
}
