package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// RestartSignal asks a worker (agent-loop) or a host (serve) to restart in
// place without interrupting anything: it checks that the tthost binary on
// disk runs, hands its sessions and running turns to its plugins (which
// keep them for the reattach window), and re-executes that binary with the
// same arguments, environment and pid. The new image reattaches to the
// plugins and carries on where the old one stopped. It is how a new tthost
// version is rolled out under a supervisor (systemd's main pid does not
// change) and what `tthost serve --upgrade` sends.
const RestartSignal = syscall.SIGUSR2

// restartCheckTimeout bounds the check that the new binary runs.
const restartCheckTimeout = 10 * time.Second

// restarter turns RestartSignal into a detach-and-re-exec of exe.
type restarter struct {
	exe    string
	log    hclog.Logger
	asked  atomic.Bool
	cancel context.CancelFunc
	stop   func()
}

// watchRestart returns a context that ends with ctx or when a restart is
// asked for and the binary passed its check; detach runs first, so the
// worker ends without interrupting its turns. A binary that fails its
// check leaves the process serving, and the log says why.
func watchRestart(ctx context.Context, exe string, log hclog.Logger, detach func()) (context.Context, *restarter) {
	rctx, cancel := context.WithCancel(ctx)
	r := &restarter{exe: exe, log: log, cancel: cancel}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, RestartSignal)
	done := make(chan struct{})
	r.stop = func() {
		signal.Stop(sig)
		close(done)
	}
	go func() {
		for {
			select {
			case <-done:
				return
			case <-rctx.Done():
				return
			case <-sig:
				if err := checkBinary(rctx, exe); err != nil {
					log.Error("restart refused: the tthost binary on disk does not run; still serving with this one", "binary", exe, "error", err)
					continue
				}
				log.Info("restarting in place: leaving sessions and running turns to the plugins", "binary", exe)
				r.asked.Store(true)
				detach()
				cancel()
				return
			}
		}
	}()
	return rctx, r
}

// checkBinary runs `exe --version`: a binary that cannot start (wrong
// architecture, missing, truncated by a half-done copy) is never exec'd.
func checkBinary(ctx context.Context, exe string) error {
	ctx, cancel := context.WithTimeout(ctx, restartCheckTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, exe, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("`%s --version`: %v: %s", exe, err, out)
	}
	return nil
}

// Asked reports whether the context ended for a restart.
func (r *restarter) Asked() bool { return r.asked.Load() }

// Close stops watching for the signal.
func (r *restarter) Close() {
	r.stop()
	r.cancel()
}

// Exec hands the plugins on (detach: backend.Manager.Detach) and replaces
// the process with the binary, same arguments, environment and pid. It
// returns only on failure.
func (r *restarter) Exec(detach func() error) error {
	if err := detach(); err != nil {
		r.log.Warn("detach from the plugins", "error", err)
	}
	r.log.Info("re-executing", "binary", r.exe)
	err := syscall.Exec(r.exe, os.Args, os.Environ())
	return fmt.Errorf("restart: exec %s: %w; the plugins keep the sessions for their reattach window: start tthost again within it", r.exe, err)
}
