package backend

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/host/pluginstore"
	"github.com/tthost/tthost/host/reattach"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
)

// Options configures a Manager.
type Options struct {
	// Dirs are searched for plugin binaries in order; the built-in
	// directory (next to the tthost executable) comes first.
	Dirs []string
	// Env is added to every plugin process's environment.
	Env []string
	// Logger receives the manager's and the plugins' logs.
	Logger hclog.Logger
	// HostVersion is reported to plugins in Describe.
	HostVersion string
	// StopGrace is how long a plugin may take to stop before SIGKILL.
	StopGrace time.Duration
	// StartTimeout and DescribeTimeout bound a launch (defaults 10 s, 5 s).
	StartTimeout    time.Duration
	DescribeTimeout time.Duration
	// MaxBackoff caps the delay before relaunching a crashed plugin.
	MaxBackoff time.Duration
	// Reattach lists plugins an author runs by hand in debug mode (from
	// sdk.ReattachEnv), by backend name or instance key ("<backend>@<cli>").
	// The manager attaches to them instead of launching those backends,
	// without checksum or TLS: a development aid only.
	Reattach map[string]client.ReattachInfo
	// OnPluginExit, when set, is called after a plugin process exited
	// unexpectedly (it is relaunched on next use): a host's metrics.
	OnPluginExit func(backend string)
	// ReattachWindow, above 0, launches plugins that outlive this process
	// for that long with its sessions and running turns, for its next
	// process to reattach (see Recover, Detach). 0: plugins stop with it.
	ReattachWindow time.Duration
	// StateFile is the reattach file (host/reattach) this process keeps
	// for its successor; "" keeps none (and nothing is reattached).
	StateFile string
	// Owner names this process in the reattach file ("serve:<host id>",
	// "agent-loop:<agent id>").
	Owner string
	// LogDir is where a plugin logs while no host reads its stderr
	// (plugin-<backend>.log); "" drops those logs.
	LogDir string
}

// Manager owns the plugin processes of one host process.
type Manager struct {
	opts       Options
	log        hclog.Logger
	candidates map[string]pluginstore.Candidate
	order      []string
	// warnings describe plugin directories left out at discovery (see
	// pluginstore.DiscoverUsable); every Choice carries them.
	warnings []string

	mu      sync.Mutex
	plugins map[string]*instance       // by instance key (see Choice.Instance)
	descs   map[string]sdk.Description // by backend name, from the last launch
	closed  bool
	// For the reattach file (reattach.go), by instance key and agent id.
	states          map[string]client.ReattachState
	sessions        map[string]reattach.Session // each agent's last session
	recovered       map[string]reattach.Session // sessions Recover found, not yet resumed
	saveMu          sync.Mutex                  // one write of the file at a time
	recoverOnce     sync.Once
	previousUnknown bool // Recover found no usable reattach file (see PreviousPluginsKnown)
}

// instance is one plugin process (a backend, or a backend for one CLI)
// and its restart state.
type instance struct {
	cand pluginstore.Candidate
	cli  string // the CLI a per-CLI instance serves ("" for a shared one)
	// alias is the key of a reattached plugin that runs an older binary
	// than the one installed now ("<key>#<pid>"): it keeps the sessions it
	// has, new ones go to a launch of the installed binary under the key.
	alias string

	mu        sync.Mutex // held while launching, so one launch at a time
	plugin    *client.Plugin
	launched  time.Time
	crashes   int
	nextStart time.Time
	lastErr   error
}

// New discovers the plugins in opts.Dirs. It fails when the built-in
// one-shot backend is missing, because every agent can fall back to it. A
// plugin directory whose lock file is unusable does not fail it: that
// directory's installed plugins are left out and Warnings says why, so one
// corrupt file cannot stop every worker of a town.
func New(opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = 5 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	cands, warnings, err := pluginstore.DiscoverUsable(opts.Dirs...)
	if err != nil {
		return nil, err
	}
	m := &Manager{opts: opts, log: opts.Logger.Named("backend"), candidates: map[string]pluginstore.Candidate{},
		warnings: warnings, plugins: map[string]*instance{}, descs: map[string]sdk.Description{},
		states: map[string]client.ReattachState{}, sessions: map[string]reattach.Session{}, recovered: map[string]reattach.Session{}}
	for _, w := range warnings {
		m.log.Warn(w)
	}
	for _, c := range cands {
		m.candidates[c.Name] = c
		m.order = append(m.order, c.Name)
	}
	for key := range opts.Reattach {
		// A plugin being debugged need not be installed: its name is enough.
		name, _ := splitInstance(key)
		if _, ok := m.candidates[name]; !ok {
			m.candidates[name] = pluginstore.Candidate{Name: name, Path: name + " (debug mode)"}
			m.order = append(m.order, name)
		}
		m.log.Warn("using a plugin in debug mode instead of launching it: its checksum is not verified and its connection has no TLS",
			"backend", key, "pid", opts.Reattach[key].Pid, "env", sdk.ReattachEnv)
	}
	if _, ok := m.candidates[pluginstore.OneShot]; !ok {
		return nil, fmt.Errorf("the built-in one-shot backend (%s%s) was not found in %v: build it with `make build`, which puts it next to tthost",
			pluginstore.BinaryPrefix, pluginstore.OneShot, opts.Dirs)
	}
	return m, nil
}

// Warnings describes what discovery left out: each plugin directory whose
// lock file could not be used, with the file and the fix.
func (m *Manager) Warnings() []string { return slices.Clone(m.warnings) }

// Candidates lists the discovered plugins, sorted by name.
func (m *Manager) Candidates() []pluginstore.Candidate {
	out := make([]pluginstore.Candidate, 0, len(m.order))
	for _, n := range m.order {
		out = append(out, m.candidates[n])
	}
	return out
}

// Plugin returns the running plugin process for an instance key (a
// backend name, or "<backend>@<cli>"), launching it when it is not
// running. After a crash the relaunch waits for a backoff (100 ms doubling
// up to MaxBackoff) so a plugin that crashes at once cannot spin.
func (m *Manager) Plugin(ctx context.Context, key string) (*client.Plugin, error) {
	name, cli := splitInstance(key)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, sdk.ErrShuttingDown
	}
	inst := m.plugins[key]
	if inst == nil {
		cand, ok := m.candidates[name]
		if !ok {
			m.mu.Unlock()
			return nil, fmt.Errorf("no backend plugin named %q (found: %v)", name, m.order)
		}
		inst = &instance{cand: cand, cli: cli}
		m.plugins[key] = inst
	}
	m.mu.Unlock()

	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.plugin != nil {
		select {
		case <-inst.plugin.Done():
			inst.plugin = nil // crashed; the watcher recorded it
		default:
			return inst.plugin, nil
		}
	}
	if wait := time.Until(inst.nextStart); wait > 0 {
		m.log.Info("waiting before relaunching plugin", "backend", name, "wait", wait.Round(time.Millisecond), "last_error", inst.lastErr)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	if info, ok := m.reattachInfo(key); ok {
		return m.attach(ctx, inst, name, info)
	}
	if inst.cand.Checksum == nil {
		err := fmt.Errorf("plugin %s: %w in %s: refusing to run a plugin whose SHA-256 cannot be verified (rebuild with `make build`, or install it with `tthost plugin install`)",
			inst.cand.Path, pluginstore.ErrNoChecksum, filepath.Join(inst.cand.Dir, pluginstore.ChecksumFile))
		inst.lastErr = err
		return nil, err
	}
	// Checked at every launch, not only at install: permissions change, and
	// a checksum kept where others may write protects nothing.
	if err := inst.cand.CheckSafe(); err != nil {
		inst.lastErr = err
		return nil, err
	}
	env := m.opts.Env
	if inst.cli != "" {
		env = append(append([]string(nil), env...), PluginCLIEnv+"="+inst.cli)
	}
	cfg := client.Config{
		Path:            inst.cand.Path,
		Env:             env,
		Checksum:        inst.cand.Checksum,
		Logger:          m.opts.Logger,
		StartTimeout:    m.opts.StartTimeout,
		DescribeTimeout: m.opts.DescribeTimeout,
		HostVersion:     m.opts.HostVersion,
	}
	if m.opts.StateFile != "" && m.opts.ReattachWindow > 0 {
		cfg.ReattachWindow = m.opts.ReattachWindow
		cfg.DetachedLog = m.detachedLog(name)
	}
	p, err := client.Launch(ctx, cfg)
	if err != nil {
		m.failedLocked(inst, err)
		return nil, err
	}
	m.started(inst, name, p)
	m.log.Debug("plugin started", "backend", name, "pid", p.Pid(), "version", p.Description().Version)
	return p, nil
}

// started records a running plugin of inst and watches it.
func (m *Manager) started(inst *instance, name string, p *client.Plugin) {
	desc := p.Description()
	m.mu.Lock()
	m.descs[name] = desc
	m.mu.Unlock()
	if desc.Name != name {
		m.log.Warn("plugin describes itself under another name", "file", inst.cand.Path, "described_name", desc.Name)
	}
	inst.plugin = p
	inst.launched = time.Now()
	if ps, ok := p.ReattachState(); ok && m.opts.StateFile != "" {
		m.mu.Lock()
		m.states[inst.key()] = ps
		m.mu.Unlock()
		m.saveState()
	}
	go m.watch(inst, p)
}

// closeAll marks the manager closed and returns its instances; ok is
// false when it was closed already.
func (m *Manager) closeAll() (insts []*instance, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, false
	}
	m.closed = true
	for _, inst := range m.plugins {
		insts = append(insts, inst)
	}
	return insts, true
}

// take returns the instance's running plugin, which the caller now ends,
// and forgets it.
func (inst *instance) take() *client.Plugin {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	p := inst.plugin
	inst.plugin = nil
	return p
}

// key is the instance's key (see Choice.Instance).
func (inst *instance) key() string {
	if inst.alias != "" {
		return inst.alias
	}
	if inst.cli != "" {
		return inst.cand.Name + "@" + inst.cli
	}
	return inst.cand.Name
}

// reattachInfo finds the debug-mode entry for an instance key: the key
// itself ("codex@codex-mini"), else its backend name.
func (m *Manager) reattachInfo(key string) (client.ReattachInfo, bool) {
	if info, ok := m.opts.Reattach[key]; ok {
		return info, true
	}
	name, _ := splitInstance(key)
	info, ok := m.opts.Reattach[name]
	return info, ok
}

// attach connects an instance to a plugin running in debug mode. A plugin
// that is gone is an error, never a silent launch of the installed one:
// the author asked for the process under the debugger.
func (m *Manager) attach(ctx context.Context, inst *instance, name string, info client.ReattachInfo) (*client.Plugin, error) {
	p, err := client.Attach(ctx, info, client.Config{
		Path:            inst.cand.Path,
		Logger:          m.opts.Logger,
		DescribeTimeout: m.opts.DescribeTimeout,
		HostVersion:     m.opts.HostVersion,
	})
	if err != nil {
		err = fmt.Errorf("backend %s: %w (start the plugin again with --debug and update %s, or unset it to run the installed plugin)",
			name, err, sdk.ReattachEnv)
		m.failedLocked(inst, err)
		return nil, err
	}
	m.started(inst, name, p)
	m.log.Info("attached to plugin in debug mode", "backend", name, "pid", p.Pid(), "version", p.Description().Version)
	return p, nil
}

// watch records an unexpected plugin exit so the next use relaunches it
// after a backoff. Sessions of the dead plugin see an Exited event from the
// client.
func (m *Manager) watch(inst *instance, p *client.Plugin) {
	<-p.Done()
	m.mu.Lock()
	closing := m.closed
	m.mu.Unlock()
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.plugin != p {
		return
	}
	inst.plugin = nil
	if closing {
		return
	}
	m.mu.Lock()
	_, recorded := m.states[inst.key()]
	delete(m.states, inst.key())
	m.mu.Unlock()
	if recorded {
		m.saveState()
	}
	if time.Since(inst.launched) > healthyRun {
		inst.crashes = 0 // it ran well for a while: this crash starts a new count
	}
	m.failedLocked(inst, fmt.Errorf("plugin %s (pid %d) exited unexpectedly", inst.cand.Name, p.Pid()))
	m.log.Error("plugin exited unexpectedly; it is relaunched on next use", "backend", inst.cand.Name, "pid", p.Pid())
	if m.opts.OnPluginExit != nil {
		m.opts.OnPluginExit(inst.cand.Name)
	}
}

// failedLocked records a failed launch or a crash of inst (whose lock is
// held): the next launch waits for the backoff.
func (m *Manager) failedLocked(inst *instance, err error) {
	inst.crashes++
	inst.nextStart = time.Now().Add(m.backoff(inst.crashes))
	inst.lastErr = err
}

// healthyRun is how long a plugin must run for its earlier crashes to be
// forgotten by the backoff.
const healthyRun = time.Minute

func (m *Manager) backoff(crashes int) time.Duration {
	if crashes <= 1 {
		return 0 // the first relaunch is immediate: a one-off crash costs nothing
	}
	d := 100 * time.Millisecond << min(crashes-2, 20)
	return min(d, m.opts.MaxBackoff)
}

// PluginCLIEnv tells a per-CLI plugin process which CLI it serves. The
// SDK owns the name, so that ChildEnv keeps it from the plugin's CLIs.
const PluginCLIEnv = sdk.PluginCLIEnv

// Describe returns the description of an instance's plugin, launching it
// if needed.
func (m *Manager) Describe(ctx context.Context, key string) (sdk.Description, error) {
	p, err := m.Plugin(ctx, key)
	if err != nil {
		return sdk.Description{}, err
	}
	return p.Description(), nil
}

// cachedDescription is a backend's description from an earlier launch.
func (m *Manager) cachedDescription(name string) (sdk.Description, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.descs[name]
	return d, ok
}

// stopInstance stops an instance's plugin (one launched only to learn its
// description) and forgets it.
func (m *Manager) stopInstance(key string) {
	m.mu.Lock()
	inst := m.plugins[key]
	delete(m.plugins, key)
	m.mu.Unlock()
	if inst == nil {
		return
	}
	if p := inst.take(); p != nil {
		if err := p.Stop(m.opts.StopGrace); err != nil {
			m.log.Warn("stop plugin", "instance", key, "error", err)
		}
	}
}

// Open opens a session on the chosen backend's plugin instance.
func (m *Manager) Open(ctx context.Context, ch Choice, cfg sdk.SessionConfig) (*client.Session, error) {
	key := ch.Instance
	if key == "" {
		key = ch.Backend
	}
	if rs, ok := m.unadopted(cfg.AgentID); ok {
		// The agent's loop did not take its surviving session back (it
		// delivers the turn again): that session must not run on.
		m.closeRecovered(ctx, rs)
	}
	p, err := m.Plugin(ctx, key)
	if err != nil {
		return nil, err
	}
	s, err := p.OpenSession(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open a session on the %s backend: %w", ch.Backend, err)
	}
	m.trackSession(reattach.Session{AgentID: cfg.AgentID, AgentName: cfg.AgentName, Instance: key, Backend: ch.Backend, SessionID: s.ID()})
	return s, nil
}

// Close stops every plugin: each gets SIGTERM (the SDK closes its sessions
// and exits), then SIGKILL to its process group after the grace period.
func (m *Manager) Close() error {
	insts, ok := m.closeAll()
	if !ok {
		return nil
	}

	var wg sync.WaitGroup
	errs := make([]error, len(insts))
	for i, inst := range insts {
		p := inst.take()
		if p == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Stop(m.opts.StopGrace); err != nil {
				errs[i] = fmt.Errorf("stop plugin %s: %w", inst.cand.Name, err)
			}
		}()
	}
	wg.Wait()
	if m.opts.StateFile != "" {
		// Every plugin is stopped: nothing is left to reattach to.
		if err := reattach.Remove(m.opts.StateFile); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
