package plugin

import (
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/sdk/internal/wire"
)

// attachment is the plugin's attached/detached state when it serves with a
// reattach window (sdk.ReattachWindowEnv > 0). Attached: a host is there.
// Detached: the host that launched the plugin died, or every Events stream
// of the host that was attached broke and none came back within
// wire.ResubscribeGrace. While detached nothing is cancelled; the window
// runs, and a host that calls Describe or opens an Events stream before it
// ends reattaches the plugin. At the end of the window expired is closed
// and the serving loop shuts the plugin down.
type attachment struct {
	window time.Duration
	grace  time.Duration // how long a broken stream waits for a new one
	log    hclog.Logger
	// onDetach runs (outside the lock) every time the plugin detaches,
	// before the detach is logged: it moves the log to the detached log.
	onDetach func()
	// notify, set by tests, is told "detached", "reattached" and
	// "expired" (outside the lock).
	notify func(state string)

	mu           sync.Mutex
	detached     bool
	detachedAt   time.Time
	windowTimer  *time.Timer // runs while detached
	hostIsParent bool        // the attached host is the process that launched the plugin
	orphaned     bool        // the process that launched the plugin is gone
	stopped      bool        // the plugin is stopping: no more state changes
	streams      int         // open Events streams
	lost         *time.Timer // grace after the last stream broke
	expiredOnce  sync.Once
	expired      chan struct{}
}

func newAttachment(window time.Duration, log hclog.Logger, onDetach func()) *attachment {
	return &attachment{
		window:       window,
		grace:        wire.ResubscribeGrace,
		log:          log,
		onDetach:     onDetach,
		hostIsParent: true,
		expired:      make(chan struct{}),
	}
}

// Expired is closed when the window ran out while detached.
func (a *attachment) Expired() <-chan struct{} { return a.expired }

// isDetached reports whether no host is attached.
func (a *attachment) isDetached() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.detached
}

// parentGone handles the death of the process that launched the plugin.
// It detaches unless a host other than the parent reattached since (that
// host's loss is noticed by its streams).
func (a *attachment) parentGone() {
	a.mu.Lock()
	a.orphaned = true
	if !a.hostIsParent {
		a.mu.Unlock()
		a.log.Info("the process that launched the plugin is gone; a host that reattached is serving it")
		return
	}
	a.mu.Unlock()
	a.detach("the host process is gone")
}

// lastSessionClosed: in an orphaned plugin a reattached host closed the
// last session. Its loss would go unnoticed (no stream left to break), so
// the plugin detaches: the window bounds how long an orphan with nothing
// to keep lives, and a host still there reattaches with any call.
func (a *attachment) lastSessionClosed() {
	a.mu.Lock()
	orphaned := a.orphaned
	a.mu.Unlock()
	if orphaned {
		a.detach("the host that launched the plugin is gone and no session is open")
	}
}

// hostSeen is a host calling Describe or opening an Events stream: if the
// plugin is detached, that host reattaches it.
func (a *attachment) hostSeen(how string) {
	a.mu.Lock()
	if !a.detached {
		a.mu.Unlock()
		return
	}
	a.detached = false
	a.hostIsParent = false
	if a.windowTimer != nil {
		a.windowTimer.Stop()
		a.windowTimer = nil
	}
	gone := time.Since(a.detachedAt)
	a.mu.Unlock()
	a.log.Info("host reattached", "by", how, "detached_for", gone.Round(time.Millisecond).String())
	a.tell("reattached")
}

// streamOpened counts an Events stream and stops a pending loss. (The
// Events call itself reattached a detached plugin: hostSeen.)
func (a *attachment) streamOpened() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.streams++
	if a.lost != nil {
		a.lost.Stop()
		a.lost = nil
	}
}

// streamClosed ends an Events stream. When it broke (it did not end after
// the session's Exited) and no other stream is open, the host is lost
// unless a new stream opens within the grace.
func (a *attachment) streamClosed(broken bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.streams--
	if !broken || a.streams > 0 || a.detached || a.stopped || a.lost != nil {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(a.grace, func() {
		a.mu.Lock()
		fire := a.lost == t && a.streams == 0
		if a.lost == t {
			a.lost = nil
		}
		a.mu.Unlock()
		if fire {
			a.detach("every event stream of the host broke and none came back")
		}
	})
	a.lost = t
}

// detach starts a fresh window, unless the plugin is already detached.
func (a *attachment) detach(reason string) {
	a.mu.Lock()
	if a.detached || a.stopped {
		a.mu.Unlock()
		return
	}
	a.detached = true
	a.detachedAt = time.Now()
	var t *time.Timer
	t = time.AfterFunc(a.window, func() {
		a.mu.Lock()
		fire := a.windowTimer == t && a.detached
		a.mu.Unlock()
		if !fire {
			return
		}
		a.log.Warn("reattach window expired: no host came back; closing the sessions and exiting", "window", a.window.String())
		a.expiredOnce.Do(func() { close(a.expired) })
		a.tell("expired")
	})
	a.windowTimer = t
	a.mu.Unlock()
	if a.onDetach != nil {
		a.onDetach()
	}
	a.log.Warn("plugin detached: sessions and running turns are kept for a host to reattach",
		"reason", reason, "window", a.window.String())
	a.tell("detached")
}

// stop disarms the timers for good: the plugin is stopping.
func (a *attachment) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopped = true
	if a.windowTimer != nil {
		a.windowTimer.Stop()
		a.windowTimer = nil
	}
	if a.lost != nil {
		a.lost.Stop()
		a.lost = nil
	}
}

func (a *attachment) tell(state string) {
	if a.notify != nil {
		a.notify(state)
	}
}

// reattachWindow parses sdk.ReattachWindowEnv: milliseconds, unset or 0
// for none. A value that is not a non-negative integer is logged and
// treated as 0.
func reattachWindow(value string, log hclog.Logger, name string) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	ms, err := strconv.ParseInt(value, 10, 64)
	if err != nil || ms < 0 || ms > int64(365*24*time.Hour/time.Millisecond) {
		log.Warn("ignoring an invalid reattach window: the plugin stops when its host is gone",
			"variable", name, "value", value, "want", "milliseconds, a non-negative integer")
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// logOutput is the default logger's output: stderr until the plugin
// detaches, then the detached log when one is configured. Loggers already
// handed out write through it, so they follow the switch.
type logOutput struct {
	mu       sync.Mutex
	w        io.Writer
	switched bool
}

func (o *logOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(p)
}

// toFile makes the output append to path (created 0600) for the rest of
// the process's life. It does so once; when the file cannot be opened the
// output stays where it is and the error is returned.
func (o *logOutput) toFile(path string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.switched {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	o.w = f
	o.switched = true
	return nil
}
