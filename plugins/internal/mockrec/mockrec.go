// Package mockrec is the recording core the mock model servers of the
// plugins' test helpers share (plugins/codex/codextest's MockModel,
// plugins/claude/claudetest's MockAnthropic, plugins/acp/acptest's
// MockGemini): a numbered log of the requests a mock received that tests
// wait on as events (never with sleeps), the paths it did not serve, and
// the proxy guard that tells a request for the mock itself from one a CLI
// tried to send elsewhere through it. It also holds the little their
// scripts do alike (RunScript, Ticks, LastLine); what a request holds and
// how a reply is streamed differ with each model API and stay in each
// mock.
package mockrec

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Log records requests of type R in arrival order, numbered from 1. Its
// zero value is not usable: make one with NewLog. Every method is safe for
// concurrent use.
type Log[R any] struct {
	mu      sync.Mutex
	items   []R
	other   []string
	changed chan struct{} // closed and replaced at every change
}

// NewLog returns an empty Log.
func NewLog[R any]() *Log[R] { return &Log[R]{changed: make(chan struct{})} }

// Add records the request make returns for the next sequence number, and
// returns that number.
func (l *Log[R]) Add(make func(seq int) R) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := len(l.items) + 1
	l.items = append(l.items, make(seq))
	l.wakeLocked()
	return seq
}

// Update changes the recorded request seq (its outcome, say) and wakes
// the waiters.
func (l *Log[R]) Update(seq int, change func(*R)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq < 1 || seq > len(l.items) {
		return
	}
	change(&l.items[seq-1])
	l.wakeLocked()
}

func (l *Log[R]) wakeLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// All returns every recorded request, in order.
func (l *Log[R]) All() []R {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.items)
}

// AddOther records a request the mock did not serve ("METHOD /path").
func (l *Log[R]) AddOther(what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.other = append(l.other, what)
	l.wakeLocked()
}

// Other returns what AddOther recorded, in order.
func (l *Log[R]) Other() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.other)
}

// Wait waits until a recorded request satisfies pred and returns the
// first that does. pred is evaluated again at every Add and Update, so a
// test can wait for a request or for how its answer ended.
func (l *Log[R]) Wait(ctx context.Context, pred func(R) bool) (R, error) {
	for {
		l.mu.Lock()
		items, changed := slices.Clone(l.items), l.changed
		l.mu.Unlock()
		for _, r := range items {
			if pred(r) {
				return r, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			var zero R
			return zero, fmt.Errorf("waiting for a model request (%d so far): %w", len(items), context.Cause(ctx))
		}
	}
}

// ProxyEnv points a CLI's proxy variables (both cases) at the mock, so that
// a request the CLI would send anywhere but loopback lands on the mock,
// which Foreign then tells from its own traffic. Loopback stays direct.
func ProxyEnv(mockURL string) []string {
	var env []string
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"} {
		env = append(env, k+"="+mockURL, strings.ToLower(k)+"="+mockURL)
	}
	return append(env, "NO_PROXY=127.0.0.1,localhost,::1", "no_proxy=127.0.0.1,localhost,::1")
}

// Foreign reports whether r, received by the server at selfURL
// ("http://127.0.0.1:PORT"), was meant for somewhere else: a proxied
// request (CONNECT host:port, or an absolute URL for another host), which
// a proxy guard (HTTP(S)_PROXY pointing at the mock) brought here. target
// names where it was going.
func Foreign(r *http.Request, selfURL string) (target string, foreign bool) {
	self := strings.TrimPrefix(selfURL, "http://")
	_, port, _ := strings.Cut(self, ":")
	if r.Method != http.MethodConnect && (r.Host == self || r.Host == "localhost:"+port) {
		return "", false
	}
	target = r.Host
	if r.URL.IsAbs() {
		target = r.URL.String()
	}
	return target, true
}
