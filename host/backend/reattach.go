package backend

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tthost/tthost/host/reattach"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
)

// A host process that ends without stopping its plugins (killed, crashed,
// or restarting on purpose: Detach) leaves them running its sessions and
// turns for their reattach window. The manager keeps what its successor
// needs to reattach in the reattach file (Options.StateFile, private to
// the user): each plugin's address, pid, identity and TLS client identity,
// and which agent's session runs where. Recover, at the successor's start,
// reattaches to each plugin after the checks a launch makes, and
// ResumeSession hands an agent's surviving session back to its loop.

// recoverGrace bounds the stop of a plugin that must not be reattached.
const recoverGrace = 5 * time.Second

// Recover reattaches to the plugins the reattach file names, as the
// previous process of this host left them. Each is verified as at launch:
// the running image must be the binary verified at the plugin's launch and
// the installed file what the plugin store records now (a plugin upgraded
// meanwhile is kept, as an older version, for the sessions it has), the
// pid must be that plugin's process (its start time and instance token),
// the socket must be its, and only the recorded TLS identities are
// accepted. A plugin that fails a check but is provably
// ours is stopped, with every process it started; one that is not ours is
// left alone. The sessions of the reattached plugins wait for their agents
// (ResumeSession); the others are closed by CloseUnadopted or when their
// agent opens a new session. A missing file is nothing to recover.
//
// Call it once this process owns what the file's owner served (the agent's
// lease, the host id), and before anything launches a plugin: a launch
// rewrites the file. Later calls do nothing.
func (m *Manager) Recover(ctx context.Context) error {
	m.recoverOnce.Do(func() { m.recover(ctx) })
	return nil
}

func (m *Manager) recover(ctx context.Context) {
	path := m.opts.StateFile
	if path == "" {
		return
	}
	st, err := reattach.Load(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		m.previousUnknown = true
		return
	case err != nil:
		// Unusable to reattach: the file may have been tampered with. Its
		// plugins still run their turns, which are about to be delivered
		// again; stop those that are provably ours.
		m.log.Error("the reattach file cannot be trusted: stopping the plugins it names instead of reattaching", "file", path, "error", err)
		m.previousUnknown = true
		if raw, rerr := os.ReadFile(path); rerr == nil {
			if bad, perr := reattach.ParseState(raw); perr == nil {
				for key, ps := range bad.Plugins {
					m.killDetached(key, ps, "the reattach file cannot be trusted")
				}
				m.previousUnknown = false
			}
		}
		_ = reattach.Remove(path)
		return
	}

	reattached := map[string]string{} // recorded key → key now
	for key, ps := range st.Plugins {
		if now, ok := m.reattachOne(ctx, key, ps); ok {
			reattached[key] = now
		}
	}
	m.mu.Lock()
	for _, s := range st.Sessions {
		if now, ok := reattached[s.Instance]; ok {
			s.Instance = now
			m.recovered[s.AgentID] = s
		}
	}
	n := len(m.recovered)
	m.mu.Unlock()
	m.log.Info("reattached to the plugins of the previous process", "plugins", len(reattached), "of", len(st.Plugins), "sessions", n, "previous_pid", st.HostPID)
	m.saveState()
}

// PreviousPluginsKnown reports whether Recover knows what became of the
// plugins the previous process of this owner left: it found their
// reattach file, and each was reattached, found gone, or stopped. Without
// the file (deleted, or never written) a plugin of a process that died may
// still run a turn until its reattach window passes.
func (m *Manager) PreviousPluginsKnown() bool { return !m.previousUnknown }

// reattachOne reattaches to one recorded plugin instance and returns the
// key it is kept under.
func (m *Manager) reattachOne(ctx context.Context, recorded string, ps client.ReattachState) (string, bool) {
	key, _, _ := strings.Cut(recorded, "#") // an older version's alias
	name, cli := splitInstance(key)
	cand, ok := m.candidates[name]
	switch {
	case !ok:
		m.killDetached(key, ps, "its backend is no longer installed")
		return "", false
	case cand.Checksum == nil:
		m.killDetached(key, ps, "no checksum is recorded for its binary")
		return "", false
	}
	if err := cand.CheckSafe(); err != nil {
		m.killDetached(key, ps, err.Error())
		return "", false
	}
	p, err := client.Reattach(ctx, ps, client.Config{
		Path:            cand.Path,
		Checksum:        cand.Checksum,
		Logger:          m.opts.Logger,
		DescribeTimeout: m.opts.DescribeTimeout,
		HostVersion:     m.opts.HostVersion,
	})
	switch {
	case errors.Is(err, client.ErrNotOurs):
		m.log.Warn("a recorded plugin's pid is another process now: the plugin is gone", "instance", key, "pid", ps.Pid)
		return "", false
	case errors.Is(err, sdk.ErrPluginExited):
		m.log.Info("a recorded plugin has exited (its reattach window passed?)", "instance", key, "pid", ps.Pid)
		return "", false
	case err != nil:
		m.killDetached(key, ps, err.Error())
		return "", false
	}
	inst := &instance{cand: cand, cli: cli}
	if p.Upgraded() {
		// A newer binary is installed: this one serves the sessions it has
		// until they end; new sessions get the installed binary.
		inst.alias = fmt.Sprintf("%s#%d", key, p.Pid())
		m.log.Info("the plugin was upgraded on disk while it ran: its sessions stay on the running version, new ones get the installed one",
			"instance", key, "pid", p.Pid())
	}
	inst.mu.Lock()
	m.mu.Lock()
	m.plugins[inst.key()] = inst
	m.mu.Unlock()
	m.started(inst, name, p)
	inst.mu.Unlock()
	m.log.Info("reattached to plugin", "instance", inst.key(), "pid", p.Pid(), "version", p.Description().Version)
	return inst.key(), true
}

// running is the instance's plugin (nil when none runs).
func (inst *instance) running() *client.Plugin {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	return inst.plugin
}

// retireOlder stops the reattached plugins of an older version (see
// instance.alias) that no agent's session uses any more.
func (m *Manager) retireOlder() {
	m.mu.Lock()
	used := map[string]bool{}
	for _, s := range m.sessions {
		used[s.Instance] = true
	}
	for _, s := range m.recovered {
		used[s.Instance] = true
	}
	var old []*instance
	for key, inst := range m.plugins {
		if inst.alias != "" && !used[key] && !m.closed {
			old = append(old, inst)
			delete(m.plugins, key)
			delete(m.states, key)
		}
	}
	m.mu.Unlock()
	for _, inst := range old {
		p := inst.take()
		if p == nil {
			continue
		}
		m.log.Info("stopping the older version of an upgraded plugin: its sessions have ended", "instance", inst.alias, "pid", p.Pid())
		go func() {
			if err := p.Stop(m.opts.StopGrace); err != nil {
				m.log.Warn("stop the older plugin", "instance", inst.alias, "error", err)
			}
		}()
	}
	if len(old) > 0 {
		m.saveState()
	}
}

// killDetached stops a recorded plugin that must not be reattached, if it
// is provably ours: its turns are about to be delivered again.
func (m *Manager) killDetached(key string, ps client.ReattachState, why string) {
	m.log.Error("refusing to reattach to a plugin: stopping it and what it started", "instance", key, "pid", ps.Pid, "why", why)
	if err := client.KillDetached(ps, recoverGrace); err != nil && !errors.Is(err, client.ErrNotOurs) {
		m.log.Error("stop the plugin that was not reattached", "instance", key, "pid", ps.Pid, "error", err)
	}
}

// ResumeSession returns the agent's session sessionID, which a previous
// process of this host left running in a plugin Recover reattached to,
// following its events after afterSeq. ok is false when no such session
// survived here: the agent's loop then delivers its in-flight messages
// again.
func (m *Manager) ResumeSession(ctx context.Context, agentID, sessionID string, afterSeq uint64) (*client.Session, bool, error) {
	m.mu.Lock()
	rs, found := m.recovered[agentID]
	if found && rs.SessionID == sessionID {
		delete(m.recovered, agentID)
	}
	inst := m.plugins[rs.Instance]
	m.mu.Unlock()
	if !found || rs.SessionID != sessionID || inst == nil {
		return nil, false, nil
	}
	p := inst.running()
	if p == nil {
		return nil, false, nil
	}
	s, err := p.ResumeSession(ctx, sessionID, afterSeq)
	switch {
	case errors.Is(err, sdk.ErrSessionNotFound), errors.Is(err, sdk.ErrPluginExited):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("resume session %s on the %s backend: %w", sessionID, rs.Backend, err)
	}
	m.trackSession(rs)
	return s, true, nil
}

// CloseUnadopted closes the recovered sessions no agent resumed: their
// agents are served elsewhere now (another host took them), and their
// turns are delivered again there.
func (m *Manager) CloseUnadopted(ctx context.Context) {
	m.mu.Lock()
	left := make([]reattach.Session, 0, len(m.recovered))
	for id, rs := range m.recovered {
		left = append(left, rs)
		delete(m.recovered, id)
	}
	m.mu.Unlock()
	for _, rs := range left {
		m.closeRecovered(ctx, rs)
	}
	if len(left) > 0 {
		m.saveState()
	}
	m.retireOlder()
}

// closeRecovered closes one recovered session immediately.
func (m *Manager) closeRecovered(ctx context.Context, rs reattach.Session) {
	m.mu.Lock()
	inst := m.plugins[rs.Instance]
	m.mu.Unlock()
	if inst == nil {
		return
	}
	p := inst.running()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, m.opts.StopGrace+time.Second)
	defer cancel()
	s, err := p.ResumeSession(ctx, rs.SessionID, 0)
	if err != nil {
		return // gone already
	}
	m.log.Info("closing a session no agent of this host took back", "agent", rs.AgentName, "session", rs.SessionID)
	if err := s.Close(ctx, sdk.CloseImmediate); err != nil {
		m.log.Warn("close the unadopted session", "session", rs.SessionID, "error", err)
	}
	go func() {
		for range s.Events() { // let the receiver finish
		}
	}()
}

// trackSession records the agent's session for the reattach file.
func (m *Manager) trackSession(s reattach.Session) {
	if m.opts.StateFile == "" || s.AgentID == "" {
		return
	}
	m.mu.Lock()
	m.sessions[s.AgentID] = s
	m.mu.Unlock()
	m.saveState()
	m.retireOlder()
}

// unadopted returns and forgets the agent's recovered session, if any.
func (m *Manager) unadopted(agentID string) (reattach.Session, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs, ok := m.recovered[agentID]
	if ok {
		delete(m.recovered, agentID)
	}
	return rs, ok
}

// saveState writes the reattach file from what the manager holds now.
func (m *Manager) saveState() {
	if m.opts.StateFile == "" {
		return
	}
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	st := reattach.State{
		Version: reattach.Version, Owner: m.opts.Owner, HostPID: os.Getpid(), Written: time.Now().UTC(),
		Plugins: map[string]client.ReattachState{},
	}
	for key, ps := range m.states {
		st.Plugins[key] = ps
	}
	for _, s := range m.sessions {
		if _, ok := st.Plugins[s.Instance]; ok {
			st.Sessions = append(st.Sessions, s)
		}
	}
	for _, s := range m.recovered {
		if _, ok := st.Plugins[s.Instance]; ok {
			st.Sessions = append(st.Sessions, s)
		}
	}
	m.mu.Unlock()
	if len(st.Plugins) == 0 {
		if err := reattach.Remove(m.opts.StateFile); err != nil {
			m.log.Warn("remove the reattach file", "error", err)
		}
		return
	}
	if err := reattach.Save(m.opts.StateFile, st); err != nil {
		m.log.Error("write the reattach file: a restart of this process would not keep its turns", "file", m.opts.StateFile, "error", err)
	}
}

// Detach disconnects from every plugin without stopping it, leaving their
// sessions and running turns for the next process of this host (a restart
// or upgrade), and keeps the reattach file for it. Plugins that cannot be
// reattached (launched without a window, or in debug mode) are stopped.
// The manager is closed afterwards.
func (m *Manager) Detach() error { return m.letGo(true) }

// Abandon is Detach for a process that lost what it served (its lease was
// taken over while it was frozen): it lets go of the plugins without
// writing the reattach file, which may be its successor's now. A plugin
// nobody reattaches to ends its turns when its window passes, and the
// successor waits for that before delivering them again.
func (m *Manager) Abandon() error { return m.letGo(false) }

func (m *Manager) letGo(save bool) error {
	insts, ok := m.closeAll()
	if !ok {
		return nil
	}
	if save {
		m.saveState()
	}
	var errs []error
	for _, inst := range insts {
		p := inst.take()
		if p == nil {
			continue
		}
		if _, ok := p.ReattachState(); ok {
			if err := p.Detach(); err == nil {
				continue
			}
		}
		if err := p.Stop(m.opts.StopGrace); err != nil {
			errs = append(errs, fmt.Errorf("stop plugin %s: %w", inst.cand.Name, err))
		}
	}
	return errors.Join(errs...)
}

// detachedLog is where a plugin of the backend logs while no host reads
// its stderr.
func (m *Manager) detachedLog(name string) string {
	if m.opts.LogDir == "" {
		return ""
	}
	return filepath.Join(m.opts.LogDir, "plugin-"+name+".log")
}
