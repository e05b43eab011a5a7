package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/convert"
	"github.com/tthost/tthost/sdk/internal/procscan"
	"github.com/tthost/tthost/sdk/internal/wire"
)

// A host that restarts (an upgrade, a crash) can leave its plugins
// running for a while so that its successor reattaches to them instead of
// launching new ones, and the agents' running turns survive: launch with
// Config.ReattachWindow, keep Plugin.ReattachState where the successor
// finds it, Detach (or just exit); the successor calls Reattach, then
// ResumeSession for each session it knew of. A plugin nobody reattached
// to within its window stops by itself; one the successor must not use is
// ended with KillDetached.

var (
	// ErrNotOurs: the process a ReattachState names is not the plugin
	// this host launched (its pid was reused by another process, or the
	// record is wrong). Leave it alone.
	ErrNotOurs = errors.New("the process is not the plugin this host launched")
	// ErrDetached: the host detached from the plugin; this Plugin takes
	// no more calls. A successor reattaches with Reattach.
	ErrDetached = errors.New("the host detached from the plugin")
)

// ReattachState is what a successor host needs to reattach to a plugin
// this host launched with a reattach window: which binary it runs, which
// process it is, where it listens and the mTLS identity of the
// connection. It holds the client's private key: store it readable by
// this user only. Field names (JSON) are stable.
type ReattachState struct {
	// Backend is the name the plugin gave in Describe.
	Backend string `json:"backend"`
	// Path is the binary's absolute path.
	Path string `json:"path"`
	// Checksum is the binary's SHA-256 (hex) verified at launch.
	Checksum string `json:"checksum"`
	// Pid is the plugin process; also its process group.
	Pid int `json:"pid"`
	// StartTime is field 22 of /proc/PID/stat: with Pid it names the
	// process, so a reused pid is not mistaken for the plugin.
	StartTime uint64 `json:"start_time"`
	// Instance is the token of InstanceEnv, carried by the plugin and
	// every process it started.
	Instance string `json:"instance"`
	// ProtocolVersion is the backend protocol version negotiated at launch.
	ProtocolVersion int `json:"protocol_version"`
	// Network and Addr are the plugin's socket ("unix", its path).
	Network string `json:"network"`
	Addr    string `json:"addr"`
	// SocketDir is the private directory holding the socket.
	SocketDir string `json:"socket_dir"`
	// ClientCertPEM and ClientKeyPEM are the host's mTLS identity: the
	// plugin accepts only this client certificate.
	ClientCertPEM string `json:"client_cert_pem"`
	ClientKeyPEM  string `json:"client_key_pem"`
	// ServerCertDER is the plugin's certificate: a successor accepts only
	// a plugin presenting it.
	ServerCertDER []byte `json:"server_cert_der"`
	// WindowMS is the reattach window in milliseconds: how long the plugin
	// waits for a new host once its host is gone.
	WindowMS int64 `json:"window_ms"`
}

// ParseReattachState parses a ReattachState from JSON and validates it.
func ParseReattachState(b []byte) (ReattachState, error) {
	var st ReattachState
	if err := json.Unmarshal(b, &st); err != nil {
		return ReattachState{}, fmt.Errorf("the plugin's reattach state is not valid JSON: %v", err)
	}
	if err := st.Validate(); err != nil {
		return ReattachState{}, err
	}
	return st, nil
}

// Validate checks that every field is present and well formed. It does
// not look at the process: Reattach does.
func (st ReattachState) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("the plugin's reattach state has an invalid %s: %s; the record is damaged: "+
			"end the plugin by its pid if it still runs, and let the host launch it anew", field, fmt.Sprintf(format, args...))
	}
	switch {
	case st.Backend == "":
		return bad("backend", "empty")
	case !filepath.IsAbs(st.Path):
		return bad("path", "%q is not absolute", st.Path)
	case !isHex(st.Checksum, 64, 64):
		return bad("checksum", "%q is not a hex SHA-256", st.Checksum)
	case st.Pid <= 1:
		return bad("pid", "%d", st.Pid)
	case st.StartTime == 0:
		return bad("start_time", "missing")
	case !isHex(st.Instance, 16, 128):
		return bad("instance", "%q is not a hex token", st.Instance)
	case st.ProtocolVersion <= 0:
		return bad("protocol_version", "%d", st.ProtocolVersion)
	case st.Network != "unix":
		return bad("network", "%q; tthost plugins listen on unix sockets", st.Network)
	case !filepath.IsAbs(st.Addr) || filepath.Clean(st.Addr) != st.Addr:
		return bad("addr", "%q is not a clean absolute path", st.Addr)
	case !isSocketDir(st.SocketDir):
		return bad("socket_dir", "%q is not a plugin socket directory (absolute, named %s*)", st.SocketDir, wire.SocketDirPrefix)
	case filepath.Dir(st.Addr) != st.SocketDir:
		return bad("addr", "%q is not in socket_dir %q", st.Addr, st.SocketDir)
	case st.WindowMS <= 0:
		return bad("window_ms", "%d", st.WindowMS)
	}
	if _, err := tls.X509KeyPair([]byte(st.ClientCertPEM), []byte(st.ClientKeyPEM)); err != nil {
		return bad("client_cert_pem or client_key_pem", "%v", err)
	}
	if _, err := x509.ParseCertificate(st.ServerCertDER); err != nil {
		return bad("server_cert_der", "%v", err)
	}
	return nil
}

func isHex(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// isSocketDir accepts only a directory the host could have made for a
// plugin's socket: KillDetached and Stop remove it, so a damaged record
// must not name anything else.
func isSocketDir(dir string) bool {
	return filepath.IsAbs(dir) && filepath.Clean(dir) == dir &&
		strings.HasPrefix(filepath.Base(dir), wire.SocketDirPrefix) && filepath.Dir(dir) != dir
}

// recordIdentity builds the ReattachState of a plugin just launched with
// a reattach window.
func (p *Plugin) recordIdentity() error {
	stat, err := readStat(p.pid)
	if err != nil {
		return fmt.Errorf("cannot read the plugin's start time: %w", err)
	}
	rc := p.gp.ReattachConfig()
	if rc == nil || rc.Addr == nil || rc.Addr.Network() != "unix" {
		return fmt.Errorf("the plugin does not listen on a unix socket (%v): it cannot be reattached", rc)
	}
	p.identity = &ReattachState{
		Backend:         p.desc.Name,
		Path:            p.cfg.Path,
		Checksum:        hex.EncodeToString(p.cfg.Checksum),
		Pid:             p.pid,
		StartTime:       stat.startTime,
		Instance:        p.instance,
		ProtocolVersion: p.gp.NegotiatedVersion(),
		Network:         "unix",
		Addr:            rc.Addr.String(),
		SocketDir:       p.socketDir,
		ClientCertPEM:   string(p.certPEM),
		ClientKeyPEM:    string(p.keyPEM),
		ServerCertDER:   p.serverCert,
		WindowMS:        max(p.cfg.ReattachWindow.Milliseconds(), 1),
	}
	if err := p.identity.Validate(); err != nil {
		return fmt.Errorf("the plugin cannot be reattached: %w", err)
	}
	return nil
}

// ReattachState returns what a successor host needs to Reattach to this
// plugin. It is false for a plugin launched without a reattach window
// and for one in debug mode (Attach).
func (p *Plugin) ReattachState() (ReattachState, bool) {
	if p.identity == nil || p.debug {
		return ReattachState{}, false
	}
	return *p.identity, true
}

// Detach lets go of a plugin launched with a reattach window, or
// reattached, without stopping it: the host is about to exit (restart,
// upgrade) and a successor will Reattach. The plugin and its sessions run
// on; nothing is signalled and the socket directory stays.
//
// Detach stops reading every session's events and disconnects. The
// sessions' Events channels close after the events already received,
// without a synthetic Exited: the sessions are not over. After Detach the
// Plugin refuses calls with ErrDetached, Done is closed, and Stop does
// nothing. A plugin without a ReattachState cannot be detached: Detach
// returns an error and changes nothing (Stop it instead).
func (p *Plugin) Detach() error {
	if _, ok := p.ReattachState(); !ok {
		return fmt.Errorf("plugin %s was not launched with a reattach window: it cannot be detached; stop it instead", p.name)
	}
	var err error
	ran := false
	p.stopOnce.Do(func() {
		ran = true
		if p.exited() {
			err = fmt.Errorf("plugin %s (pid %d) has exited: %w", p.name, p.pid, ErrDetached)
			return
		}
		p.detachOnce.Do(func() { close(p.detached) })
		p.cancel() // ends the event streams
		for _, s := range p.openSessions() {
			<-s.received
		}
		if p.conn != nil {
			_ = p.conn.Close()
		}
		if p.adopted {
			<-p.reaped // the pid watch and go-plugin's goroutines are done
		}
		p.log.Info("detached from the plugin; it keeps running for a successor host",
			"pid", p.pid, "window", p.cfg.ReattachWindow)
	})
	if !ran {
		return fmt.Errorf("plugin %s was already stopped or detached", p.name)
	}
	return err
}

// Reattach connects to a plugin a predecessor host launched with a
// reattach window, from the ReattachState it kept, and calls Describe.
// It verifies what Launch verifies: cfg.Checksum (the checksum the plugin
// store records now) is required; the process must be the one launched
// (pid, start time and instance token, else an error wrapping ErrNotOurs:
// leave that process alone); the running image must hash to st.Checksum,
// the binary verified at its launch, and the file at st.Path to
// cfg.Checksum (else ErrChecksumMismatch: end the plugin with
// KillDetached). When the two checksums differ the plugin was upgraded on
// disk while it ran: it is reattached, and Upgraded says so; the socket must
// be served by that process; the connection is mTLS with the recorded
// identities; and the plugin must describe itself as st.Backend.
//
// Of cfg it uses Checksum, Logger, DescribeTimeout and HostVersion; the
// reattach window is st's (the plugin got it at launch). A plugin that is
// gone is an error wrapping sdk.ErrPluginExited (KillDetached then clears
// what it left). A failed Reattach leaves the process as it was.
//
// The returned Plugin works like a launched one: Stop ends the plugin and
// its process group, Detach lets go of it again (and its ReattachState
// serves the next host). The plugin is not this host's child: Done is
// closed when the process exits (or on Detach), and ExitState stays nil.
func Reattach(ctx context.Context, st ReattachState, cfg Config) (*Plugin, error) {
	if cfg.DescribeTimeout <= 0 {
		cfg.DescribeTimeout = defaultDescribeTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.L()
	}
	fail := func(stage string, err error) error { return &LaunchError{Path: st.Path, Stage: stage, Err: err} }
	if err := st.Validate(); err != nil {
		return nil, fail("check", err)
	}
	set, ok := wire.ClientPlugins(hostVersions())[st.ProtocolVersion]
	if !ok {
		return nil, fail("check", protocolMismatch("Plugin version: "+strconv.Itoa(st.ProtocolVersion)))
	}
	if err := verifyReattach(st, cfg.Checksum); err != nil {
		return nil, fail("verify", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fail("reattach", err)
	}
	cfg.ReattachWindow = time.Duration(st.WindowMS) * time.Millisecond
	cfg.Path = st.Path

	p := newPlugin(cfg, filepath.Base(st.Path))
	p.pid = st.Pid
	p.adopted = true
	p.upgraded = hex.EncodeToString(cfg.Checksum) != st.Checksum
	p.instance = st.Instance
	p.socketDir = st.SocketDir
	p.certPEM, p.keyPEM = []byte(st.ClientCertPEM), []byte(st.ClientKeyPEM)
	tlsCfg, err := clientTLS(p.certPEM, p.keyPEM, st.ServerCertDER)
	if err != nil {
		return nil, fail("reattach", err)
	}
	p.tls = tlsCfg
	p.exit = watchPid(st.Pid, p.detached)
	p.done = p.exit
	go p.reapAdopted()

	p.gp = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: wire.Handshake,
		// Reattach skips version negotiation, so Plugins must name the
		// set of the plugin's version (go-plugin #310).
		Plugins: set,
		Reattach: &plugin.ReattachConfig{
			Protocol:        plugin.ProtocolGRPC,
			ProtocolVersion: st.ProtocolVersion,
			Addr:            &net.UnixAddr{Name: st.Addr, Net: "unix"},
			Pid:             st.Pid,
			ReattachFunc:    func() (runner.AttachedRunner, error) { return attachedRunner{p: p}, nil },
		},
		TLSConfig:        tlsCfg,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  wire.DialOptions(),
		Logger:           cfg.Logger,
		SyncStdout:       newLineLogger(p.log, "stdout"),
		SyncStderr:       newLineLogger(p.log, "stderr"),
	})
	// On failure: disconnect, leave the process alone.
	letGo := func() {
		p.detachOnce.Do(func() { close(p.detached) })
		if p.conn != nil {
			_ = p.conn.Close()
		}
		<-p.reaped
	}
	if err := p.dispense(); err != nil {
		letGo()
		return nil, fail("handshake", err)
	}
	resp, timedOut, err := p.describe(ctx)
	if err != nil {
		if timedOut {
			err = fmt.Errorf("%w: no answer within %v", ErrDescribeTimeout, cfg.DescribeTimeout)
		} else {
			err = fmt.Errorf("the plugin's Describe failed (a TLS error means the plugin does not accept the recorded client identity): %w",
				p.mapErr(ctx, err))
		}
		letGo()
		return nil, fail("describe", err)
	}
	p.desc = convert.DescriptionFromProto(resp)
	if p.desc.Name != st.Backend {
		letGo()
		return nil, fail("describe", fmt.Errorf("%w: the plugin describes itself as %q, the record says %q",
			ErrNotOurs, p.desc.Name, st.Backend))
	}
	id := st
	p.identity = &id
	p.log.Info("reattached to the plugin", "pid", p.pid, "backend", p.desc.Name, "socket", st.Addr)
	return p, nil
}

// verifyReattach checks the record against the plugin store's checksum
// and the running process, before anything talks to the process.
func verifyReattach(st ReattachState, checksum []byte) error {
	if len(checksum) == 0 {
		return fmt.Errorf("%w: the host reattaches only to binaries whose SHA-256 it recorded at install; "+
			"install the plugin with `tthost plugin install`", ErrNoChecksum)
	}
	installed := hex.EncodeToString(checksum)
	if err := checkIdentity(st.Pid, st.StartTime, st.Instance); err != nil {
		return err
	}
	// The running image: /proc/PID/exe opens the file the process runs,
	// even when the path was since replaced. It must be the binary
	// verified at launch, whatever is installed now.
	if got, err := FileSHA256(filepath.Join("/proc", strconv.Itoa(st.Pid), "exe")); err != nil {
		return fmt.Errorf("cannot read the running plugin's image (pid %d): %w", st.Pid, err)
	} else if hex.EncodeToString(got) != st.Checksum {
		return fmt.Errorf("%w: the running plugin (pid %d) runs a binary with SHA-256 %x, not the %s verified at its launch: "+
			"end it with KillDetached", ErrChecksumMismatch, st.Pid, got, st.Checksum)
	}
	// The installed file must be what the plugin store records now, as a
	// launch requires: a file replaced behind the store's back is refused.
	// A store that records another checksum than the running plugin's was
	// upgraded (reinstalled) meanwhile: the running plugin is still the
	// verified one, and is reattached as an older version (Upgraded).
	if got, err := FileSHA256(st.Path); err != nil {
		return fmt.Errorf("%w: cannot hash %s (%v): the installed binary is gone; end the plugin with KillDetached",
			ErrChecksumMismatch, st.Path, err)
	} else if hex.EncodeToString(got) != installed {
		return fmt.Errorf("%w: %s now has SHA-256 %x, not the %s its plugin store records: the file was replaced behind the store's back; "+
			"end the plugin with KillDetached, and reinstall the plugin if the change is yours, else find out who replaced it",
			ErrChecksumMismatch, st.Path, got, installed)
	}
	pid, uid, err := socketPeer(st.Addr)
	if err != nil {
		return fmt.Errorf("the plugin's socket: %w", err)
	}
	if pid != st.Pid || uid != os.Getuid() {
		return fmt.Errorf("%w: %s is served by pid %d (user %d), not by the plugin (pid %d, user %d)",
			ErrNotOurs, st.Addr, pid, uid, st.Pid, os.Getuid())
	}
	return nil
}

// checkIdentity proves that pid is the recorded plugin: alive (not a
// zombie), started at startTime, carrying the instance token. It wraps
// sdk.ErrPluginExited when there is no such live process, ErrNotOurs when
// the pid names another.
func checkIdentity(pid int, startTime uint64, instance string) error {
	stat, err := readStat(pid)
	if errors.Is(err, os.ErrNotExist) || (err == nil && (stat.state == 'Z' || stat.state == 'X')) {
		return fmt.Errorf("plugin pid %d is gone: %w", pid, sdk.ErrPluginExited)
	}
	if err != nil {
		return fmt.Errorf("%w: cannot read pid %d: %v", ErrNotOurs, pid, err)
	}
	if stat.startTime != startTime {
		return fmt.Errorf("%w: pid %d started at tick %d, the plugin at %d: the pid was reused", ErrNotOurs, pid, stat.startTime, startTime)
	}
	if !procscan.HasEnv(pid, InstanceEnv+"="+instance) {
		return fmt.Errorf("%w: pid %d does not carry the plugin's instance token", ErrNotOurs, pid)
	}
	return nil
}

// reapAdopted runs once a reattached plugin exited or the host detached.
// After an exit it clears what the plugin left, as reap does for a
// launched one: the rest of its process group, processes carrying its
// instance token, its socket directory.
func (p *Plugin) reapAdopted() {
	<-p.done
	if !p.isDetached() {
		// The group outlives its leader only while members live, so its id
		// cannot have been reused yet when members are found.
		if len(groupAlive(p.pid)) > 0 {
			if err := signalGroup(p.pid, syscall.SIGKILL); err != nil {
				p.log.Warn("could not kill the plugin's process group", "pgid", p.pid, "error", err)
			}
		}
		if left := waitGroupGone(p.pid, groupGoneTimeout); len(left) > 0 {
			p.groupErr = fmt.Errorf("plugin %s: process group %d still has live processes %v after SIGKILL", p.name, p.pid, left)
		}
		p.sweep()
		_ = os.RemoveAll(p.socketDir)
	}
	if p.conn != nil {
		_ = p.conn.Close()
	}
	p.cancel()
	close(p.reaped)
}

// KillDetached ends a plugin a predecessor launched that must not be
// reattached (its binary no longer matches, or the host decided to drop
// it): when the process is the recorded plugin (pid, start time, instance
// token), it sends SIGTERM to its process group, waits up to grace for it
// to exit, SIGKILLs the group, then kills every process still carrying
// the instance token and removes the socket directory.
//
// When the pid names another process (or the record does not match it),
// KillDetached does nothing and returns an error wrapping ErrNotOurs.
// When the plugin is already gone, it kills what still carries the
// instance token (only this plugin's processes can), removes the socket
// directory and returns nil. The error also reports processes that
// survived SIGKILL.
func KillDetached(st ReattachState, grace time.Duration) error {
	if st.Pid <= 1 || st.StartTime == 0 || !isHex(st.Instance, 16, 128) {
		return fmt.Errorf("KillDetached: the record names no plugin (pid %d, start_time %d, instance %q)", st.Pid, st.StartTime, st.Instance)
	}
	identityErr := checkIdentity(st.Pid, st.StartTime, st.Instance)
	if identityErr != nil && !errors.Is(identityErr, sdk.ErrPluginExited) {
		return identityErr
	}
	var errs []error
	if identityErr == nil {
		_ = signalGroup(st.Pid, syscall.SIGTERM)
		timeout := make(chan struct{})
		t := time.AfterFunc(grace, func() { close(timeout) })
		select {
		case <-watchPid(st.Pid, timeout):
		case <-timeout:
		}
		t.Stop()
		// SIGKILL the group while its leader is still the plugin, or while
		// members keep the group's id from being reused.
		if checkIdentity(st.Pid, st.StartTime, st.Instance) == nil || len(groupAlive(st.Pid)) > 0 {
			_ = signalGroup(st.Pid, syscall.SIGKILL)
		}
		if left := waitGroupGone(st.Pid, groupGoneTimeout); len(left) > 0 {
			errs = append(errs, fmt.Errorf("process group %d of the plugin %s still has live processes %v after SIGKILL", st.Pid, st.Backend, left))
		}
	}
	if left := procscan.KillByEnv(InstanceEnv+"="+st.Instance, groupGoneTimeout); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes of the plugin %s are still alive after SIGKILL: %v", st.Backend, left))
	}
	if isSocketDir(st.SocketDir) {
		_ = os.RemoveAll(st.SocketDir)
	}
	return errors.Join(errs...)
}

// Upgraded reports whether the reattached plugin runs an older binary than
// the one installed now (it was upgraded while it ran). The host keeps it
// for the sessions it has and launches the installed binary for new ones.
func (p *Plugin) Upgraded() bool { return p.upgraded }
