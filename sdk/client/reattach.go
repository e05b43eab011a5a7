package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/convert"
	"github.com/tthost/tthost/sdk/internal/wire"
)

// ErrNotAttachable: the plugin named for reattach is not running where its
// entry says, or is not a plugin this host may use.
var ErrNotAttachable = errors.New("cannot attach to the plugin in debug mode")

// ReattachInfo is where a plugin serving in debug mode (`plugin --debug`)
// listens: one entry of the host's sdk.ReattachEnv variable, which the
// plugin prints when it starts.
type ReattachInfo struct {
	Protocol        string       `json:"protocol"`
	ProtocolVersion int          `json:"protocol_version"`
	Pid             int          `json:"pid"`
	Addr            ReattachAddr `json:"addr"`
}

// ReattachAddr is the plugin's socket.
type ReattachAddr struct {
	Network string `json:"network"`
	String  string `json:"string"`
}

// ParseReattach parses the value of sdk.ReattachEnv: a JSON object from
// backend name to ReattachInfo.
func ParseReattach(value string) (map[string]ReattachInfo, error) {
	var m map[string]ReattachInfo
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		return nil, fmt.Errorf("%s is not a JSON object of plugins in debug mode (%v); "+
			"copy the line a plugin started with --debug prints", sdk.ReattachEnv, err)
	}
	return m, nil
}

// ReattachFromEnv parses sdk.ReattachEnv from the environment; it returns
// nil when the variable is unset or empty.
func ReattachFromEnv() (map[string]ReattachInfo, error) {
	v := os.Getenv(sdk.ReattachEnv)
	if v == "" {
		return nil, nil
	}
	return ParseReattach(v)
}

// Attach connects to a plugin that serves in debug mode, started by hand
// (typically under a debugger: `dlv exec ./plugin -- --debug`), instead of
// launching one, and calls Describe. Of cfg it uses Logger,
// DescribeTimeout and HostVersion; Path, when set, names the plugin in
// logs. Nothing is verified against a checksum and the connection has no
// TLS (go-plugin supports neither with reattach): debug mode is for
// development only. The socket must be a unix socket served by the
// process info names and owned by this user.
//
// The returned Plugin works like a launched one, except that Stop closes
// the sessions this host opened and disconnects, leaving the process
// running for the next host; Done is closed when the process exits or Stop
// returns; ExitState stays nil.
func Attach(ctx context.Context, info ReattachInfo, cfg Config) (*Plugin, error) {
	if cfg.DescribeTimeout <= 0 {
		cfg.DescribeTimeout = defaultDescribeTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.L()
	}
	where := info.Addr.String
	fail := func(stage string, err error) error { return &LaunchError{Path: where, Stage: stage, Err: err} }

	set, err := checkReattach(info)
	if err != nil {
		return nil, fail("attach", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fail("attach", err)
	}

	name := "pid-" + strconv.Itoa(info.Pid)
	if cfg.Path != "" {
		name = filepath.Base(cfg.Path)
	}
	p := newPlugin(cfg, name)
	p.pid = info.Pid
	p.debug = true
	p.exit = watchPid(info.Pid, p.detached)
	p.done = p.exit
	go func() {
		<-p.done
		p.finish()
	}()

	addr := &net.UnixAddr{Name: info.Addr.String, Net: "unix"}
	p.gp = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: wire.Handshake,
		// Reattach skips version negotiation, so Plugins must name the
		// set of the plugin's version (go-plugin #310: VersionedPlugins
		// alone leaves nothing to dispense).
		Plugins: set,
		Reattach: &plugin.ReattachConfig{
			Protocol:        plugin.ProtocolGRPC,
			ProtocolVersion: info.ProtocolVersion,
			Addr:            addr,
			Pid:             info.Pid,
			// Test: go-plugin never kills the process; it is the
			// developer's.
			Test:         true,
			ReattachFunc: func() (runner.AttachedRunner, error) { return attachedRunner{p: p}, nil },
		},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  wire.DialOptions(),
		Logger:           cfg.Logger,
		SyncStdout:       newLineLogger(p.log, "stdout"),
		SyncStderr:       newLineLogger(p.log, "stderr"),
	})
	if err := p.dispense(); err != nil {
		p.detach()
		return nil, fail("handshake", err)
	}

	resp, timedOut, err := p.describe(ctx)
	if err != nil {
		if timedOut {
			err = fmt.Errorf("%w: no answer within %v (is it stopped at a breakpoint?)", ErrDescribeTimeout, cfg.DescribeTimeout)
		} else {
			err = fmt.Errorf("the plugin's Describe failed: %w", p.mapErr(ctx, err))
		}
		p.detach()
		return nil, fail("describe", err)
	}
	p.desc = convert.DescriptionFromProto(resp)
	if cfg.Path == "" && p.desc.Name != "" {
		p.name = p.desc.Name
		p.log = cfg.Logger.Named(p.name)
	}
	if p.desc.ProtocolVersion != info.ProtocolVersion {
		p.log.Warn("plugin reports another protocol version than its reattach entry",
			"reported", p.desc.ProtocolVersion, "entry", info.ProtocolVersion)
	}
	p.log.Info("attached to a plugin in debug mode", "pid", p.pid, "backend", p.desc.Name, "socket", info.Addr.String)
	return p, nil
}

// checkReattach validates an entry and returns the plugin set of its
// protocol version.
func checkReattach(info ReattachInfo) (plugin.PluginSet, error) {
	if info.Protocol != "" && info.Protocol != string(plugin.ProtocolGRPC) {
		return nil, fmt.Errorf("%w: protocol %q; tthost plugins speak grpc", ErrNotAttachable, info.Protocol)
	}
	set, ok := wire.ClientPlugins(hostVersions())[info.ProtocolVersion]
	if !ok {
		return nil, protocolMismatch("Plugin version: " + strconv.Itoa(info.ProtocolVersion))
	}
	if info.Pid <= 1 {
		return nil, fmt.Errorf("%w: pid %d", ErrNotAttachable, info.Pid)
	}
	if info.Addr.Network != "unix" || !filepath.IsAbs(info.Addr.String) {
		return nil, fmt.Errorf("%w: address %s %q; a plugin in debug mode listens on a unix socket with an absolute path",
			ErrNotAttachable, info.Addr.Network, info.Addr.String)
	}
	fi, err := os.Stat(info.Addr.String)
	if err != nil || fi.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("%w: no socket at %s; the plugin has stopped: start it again with --debug, "+
			"or unset %s to have the host launch the installed plugin", ErrNotAttachable, info.Addr.String, sdk.ReattachEnv)
	}
	if err := checkPeer(info.Addr.String, info.Pid); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotAttachable, err)
	}
	return set, nil
}

// newPlugin is a Plugin before its process is known.
func newPlugin(cfg Config, name string) *Plugin {
	p := &Plugin{
		cfg:      cfg,
		name:     name,
		log:      cfg.Logger.Named(name),
		reaped:   make(chan struct{}),
		detached: make(chan struct{}),
		sessions: map[*Session]struct{}{},
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

// track and untrack keep the sessions whose events are being read: an
// attached plugin's Stop closes them, Detach waits for their readers.
func (p *Plugin) track(s *Session) {
	p.sessMu.Lock()
	if p.sessions != nil {
		p.sessions[s] = struct{}{}
	}
	p.sessMu.Unlock()
}

func (p *Plugin) untrack(s *Session) {
	p.sessMu.Lock()
	delete(p.sessions, s)
	p.sessMu.Unlock()
}

func (p *Plugin) openSessions() []*Session {
	p.sessMu.Lock()
	defer p.sessMu.Unlock()
	open := make([]*Session, 0, len(p.sessions))
	for s := range p.sessions {
		open = append(open, s)
	}
	return open
}

func (p *Plugin) isDetached() bool {
	select {
	case <-p.detached:
		return true
	default:
		return false
	}
}

// either returns a channel closed once a or b is closed.
func either(a, b <-chan struct{}) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		defer close(c)
		select {
		case <-a:
		case <-b:
		}
	}()
	return c
}

// stopAttached closes the sessions this host opened, within grace, and
// detaches. The plugin process keeps running: it belongs to whoever
// started it in debug mode.
func (p *Plugin) stopAttached(grace time.Duration) error {
	open := p.openSessions()

	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	errs := make([]error, len(open))
	var wg sync.WaitGroup
	for i, s := range open {
		wg.Go(func() {
			if errs[i] = s.Close(ctx, sdk.CloseImmediate); errs[i] != nil {
				return
			}
			// The plugin has emitted Exited; let it arrive before the
			// connection goes, or the host would make one up.
			select {
			case <-s.received:
			case <-ctx.Done():
			}
		})
	}
	wg.Wait()
	p.detach()
	return errors.Join(errs...)
}

// detach disconnects from the plugin and waits until the client's
// goroutines are done; it does not signal the process.
func (p *Plugin) detach() {
	p.detachOnce.Do(func() { close(p.detached) })
	if p.conn != nil {
		_ = p.conn.Close()
	}
	<-p.reaped
}

// attachedRunner is go-plugin's handle on an attached or reattached
// process. Its Wait returns when the process exits or the host detaches,
// which ends go-plugin's goroutines for it. It kills only a reattached
// plugin (ours), never one in debug mode.
type attachedRunner struct{ p *Plugin }

func (r attachedRunner) Wait(context.Context) error {
	<-r.p.done
	return nil
}

func (r attachedRunner) Kill(context.Context) error {
	if r.p.debug {
		return errors.New("a plugin in debug mode is stopped by whoever started it")
	}
	if r.p.exited() {
		return nil
	}
	return signalGroup(r.p.pid, syscall.SIGKILL)
}

func (r attachedRunner) ID() string { return strconv.Itoa(r.p.pid) }

func (r attachedRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r attachedRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// pollPid is watchPid where the process cannot be waited on as an event:
// there is none for "a process that is not my child exited".
func pollPid(pid int, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if syscall.Kill(pid, 0) != nil || zombie(pid) {
				return
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return done
}
