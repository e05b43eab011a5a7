// Package client launches a backend plugin binary and drives it through the
// contract.
//
// Launch verifies the binary (present, executable, SHA-256 as recorded),
// starts it in its own process group with go-plugin (gRPC over mTLS with
// an identity the host makes, the tthost handshake), and asks it to
// Describe itself. The returned Plugin opens sessions; a Session sends
// input and delivers the session's events on a channel. Stop ends the
// plugin and everything in its process group.
//
// A plugin launched with a reattach window can outlive its host: the host
// keeps its ReattachState and Detaches, a successor Reattaches and resumes
// the sessions (see Reattach).
//
// Errors say what happened and what to do: launch failures are a
// *LaunchError wrapping one of this package's sentinels, and session calls
// return the sdk sentinels (sdk.ErrTurnRunning, sdk.ErrPluginExited, ...),
// so errors.Is works across the process boundary.
package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/convert"
	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
	"github.com/tthost/tthost/sdk/internal/procscan"
	"github.com/tthost/tthost/sdk/internal/wire"
)

const (
	defaultStartTimeout    = 10 * time.Second
	defaultDescribeTimeout = 5 * time.Second
	// reapTimeout bounds the wait for a killed plugin to be reaped.
	reapTimeout = 5 * time.Second
	// groupGoneTimeout bounds the wait for the rest of a killed group.
	groupGoneTimeout = 2 * time.Second
	// stderrTailBytes is how much of a failed plugin's stderr is quoted.
	stderrTailBytes = 2048
)

// Config says which plugin binary to run and how.
type Config struct {
	// Path is the plugin binary. A relative path is taken from the current
	// directory, never looked up in $PATH.
	Path string
	// Args are passed to the binary.
	Args []string
	// Env is added to os.Environ() for the plugin ("KEY=VALUE").
	Env []string
	// Checksum is the SHA-256 recorded when the binary was installed. It is
	// required and checked at every launch.
	Checksum []byte
	// Logger receives the plugin's logs (its JSON stderr, named after the
	// binary) and the client's own. Default: hclog.L().
	Logger hclog.Logger
	// StartTimeout bounds the handshake (default 10s).
	StartTimeout time.Duration
	// DescribeTimeout bounds the Describe call after the handshake
	// (default 5s).
	DescribeTimeout time.Duration
	// HostVersion is sent in Describe, for the plugin's logs.
	HostVersion string
	// ReattachWindow, when positive, lets the plugin outlive this host by
	// that long, so that a successor can Reattach: the plugin gets no
	// parent-death signal, sdk.ReattachWindowEnv tells it the window, and
	// the Plugin has a ReattachState. Zero: the plugin dies with the host.
	ReattachWindow time.Duration
	// DetachedLog, with a ReattachWindow, is the file the plugin appends
	// its logs to while no host reads its stderr (sdk.DetachedLogEnv).
	DetachedLog string
}

// Plugin is a running backend plugin process.
type Plugin struct {
	cfg  Config
	name string // the binary's base name, for messages
	log  hclog.Logger
	gp   *plugin.Client
	cmd  *exec.Cmd
	conn *grpc.ClientConn
	rpc  backendv1.BackendClient
	desc sdk.Description
	pid  int

	socketDir string
	instance  string // the token in InstanceEnv
	stderr    *tail

	exit <-chan struct{} // the process exited
	// done is closed when the process exited or the host detached: the
	// Plugin is finished with either way.
	done   <-chan struct{}
	reaped chan struct{} // go-plugin finished with it; exitState is set
	// ctx is cancelled once the process is reaped, ending event streams.
	ctx       context.Context
	cancel    context.CancelFunc
	exitState *os.ProcessState
	groupErr  error // members of the process group that outlived the reap

	stopOnce sync.Once
	stopErr  error

	debug   bool // from Attach: a plugin in debug mode, not ours to stop
	adopted bool // from Reattach: ours to stop, but not our child
	// upgraded: from Reattach, and the plugin store records a newer binary
	// than the one this process runs (see Upgraded).
	upgraded bool

	// What a successor needs to reattach; set for a plugin launched with a
	// reattach window, or reattached.
	identity *ReattachState
	// tls is the connection's TLS configuration (nil in debug mode).
	tls        *tls.Config
	certPEM    []byte
	keyPEM     []byte
	serverCert []byte // the plugin's certificate, as the connection saw it

	detached   chan struct{} // closed by Detach, or by Attach's disconnect
	detachOnce sync.Once

	sessMu   sync.Mutex
	sessions map[*Session]struct{} // sessions whose events are being read
}

// Launch starts the plugin binary, completes the handshake and calls
// Describe. On any failure the plugin's whole process group is killed and
// a *LaunchError is returned. ctx bounds the launch; its cancellation is
// noticed after the handshake, whose length StartTimeout (or an earlier
// ctx deadline) bounds.
func Launch(ctx context.Context, cfg Config) (*Plugin, error) {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = defaultStartTimeout
	}
	if cfg.DescribeTimeout <= 0 {
		cfg.DescribeTimeout = defaultDescribeTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.L()
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, &LaunchError{Path: cfg.Path, Stage: "check", Err: err}
	}
	cfg.Path = abs
	if err := checkBinary(cfg.Path); err != nil {
		return nil, &LaunchError{Path: cfg.Path, Stage: "check", Err: err}
	}
	if len(cfg.Checksum) == 0 {
		return nil, &LaunchError{Path: cfg.Path, Stage: "verify", Err: fmt.Errorf(
			"%w: the host runs only binaries whose SHA-256 it recorded at install; install the plugin with `tthost plugin install`", ErrNoChecksum)}
	}
	if err := ctx.Err(); err != nil {
		return nil, &LaunchError{Path: cfg.Path, Stage: "start", Err: err}
	}

	p := newPlugin(cfg, filepath.Base(cfg.Path))
	p.instance = newInstanceToken()
	p.stderr = newTail(stderrTailBytes)
	if p.certPEM, p.keyPEM, err = newClientIdentity(); err == nil {
		p.tls, err = clientTLS(p.certPEM, p.keyPEM, nil)
	}
	if err != nil {
		return nil, &LaunchError{Path: cfg.Path, Stage: "start", Err: fmt.Errorf("cannot make the host's TLS identity: %w", err)}
	}
	if p.socketDir, err = socketDir(); err != nil {
		return nil, &LaunchError{Path: cfg.Path, Stage: "start", Err: err}
	}

	p.cmd = exec.Command(cfg.Path, cfg.Args...)
	p.cmd.Env = p.environ()
	p.cmd.SysProcAttr = sysProcAttr(cfg.ReattachWindow > 0)
	startTimeout := cfg.StartTimeout
	if dl, ok := ctx.Deadline(); ok {
		startTimeout = max(min(startTimeout, time.Until(dl)), time.Millisecond)
	}
	p.gp = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.ClientPlugins(hostVersions()),
		Cmd:              p.cmd,
		// go-plugin hashes into Hash without resetting it, so every launch
		// needs a fresh one.
		SecureConfig: &plugin.SecureConfig{Checksum: cfg.Checksum, Hash: sha256.New()},
		// Our own mTLS identity (see tls.go); go-plugin adds the plugin's
		// certificate from the handshake line to p.tls.RootCAs.
		TLSConfig:        p.tls,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  wire.DialOptions(),
		StartTimeout:     startTimeout,
		// go-plugin names the plugin's forwarded log lines after the binary.
		Logger:      cfg.Logger,
		Stderr:      p.stderr,
		SyncStdout:  newLineLogger(p.log, "stdout"),
		SyncStderr:  newLineLogger(p.log, "stderr"),
		SkipHostEnv: true, // p.environ already holds it, with cfg.Env winning
	})

	_, startErr := p.gp.Start()
	if p.cmd.Process != nil { // go-plugin's Start ran cmd.Start on this goroutine
		p.pid = p.cmd.Process.Pid
		p.exit = watchExit(p.cmd.Process)
		p.done = p.exit
		if cfg.ReattachWindow > 0 {
			p.done = either(p.exit, p.detached)
		}
		go p.reap()
	} else {
		closed := make(chan struct{})
		close(closed)
		p.exit, p.done = closed, closed
		p.finish()
	}
	if startErr != nil {
		p.log.Debug("plugin failed to start", "error", startErr)
		return nil, p.abort(func(f startFacts) (string, error) {
			if errors.Is(startErr, plugin.ErrChecksumsDoNotMatch) {
				return "verify", checksumMismatch(cfg.Path, cfg.Checksum)
			}
			return classifyStart(startErr, f)
		})
	}
	if err := ctx.Err(); err != nil {
		return nil, p.abort(func(startFacts) (string, error) { return "start", err })
	}

	if err := p.dispense(); err != nil {
		return nil, p.abort(func(startFacts) (string, error) { return "handshake", err })
	}

	resp, timedOut, err := p.describe(ctx)
	if err != nil {
		var mapped error
		if !timedOut {
			mapped = p.mapErr(ctx, err) // before the kill below makes every error look like an exit
		}
		return nil, p.abort(func(f startFacts) (string, error) {
			switch {
			case timedOut:
				return "describe", fmt.Errorf("%w: no answer within %v; it was killed. A backend's Describe must answer at once, "+
					"without starting any CLI", ErrDescribeTimeout, cfg.DescribeTimeout)
			case f.exit != nil && !wasKilledByHost(f.exit):
				return "describe", fmt.Errorf("%w: it died during Describe: %s%s", sdk.ErrPluginExited, f.status(), f.stderr())
			}
			return "describe", fmt.Errorf("the plugin's Describe failed: %w", mapped)
		})
	}
	p.desc = convert.DescriptionFromProto(resp)
	if v := p.gp.NegotiatedVersion(); p.desc.ProtocolVersion != v {
		p.log.Warn("plugin reports another protocol version than it negotiated",
			"reported", p.desc.ProtocolVersion, "negotiated", v)
	}
	if cfg.ReattachWindow > 0 {
		if err := p.recordIdentity(); err != nil {
			return nil, p.abort(func(startFacts) (string, error) { return "start", err })
		}
	}
	p.log.Debug("plugin ready", "pid", p.pid, "backend", p.desc.Name, "version", p.desc.Version)
	return p, nil
}

// describe calls Describe within DescribeTimeout. The host's own timer
// decides the timeout; the plugin gets a deadline a second later, because
// a gRPC server whose deadline passes resets the stream, and that reset can
// arrive before the host's context expires, looking like another failure.
func (p *Plugin) describe(ctx context.Context) (resp *backendv1.DescribeResponse, timedOut bool, err error) {
	var pr peer.Peer
	defer func() {
		// The Describe call proves the connection is TLS (when it was meant
		// to be) and shows the plugin's certificate.
		if err == nil && p.tls != nil {
			p.serverCert, err = peerCert(&pr)
		}
	}()
	dctx, cancel := context.WithTimeout(ctx, p.cfg.DescribeTimeout+time.Second)
	defer cancel()
	var expired atomic.Bool
	timer := time.AfterFunc(p.cfg.DescribeTimeout, func() {
		expired.Store(true)
		cancel()
	})
	defer timer.Stop()
	resp, err = p.rpc.Describe(dctx, &backendv1.DescribeRequest{HostVersion: p.cfg.HostVersion}, grpc.Peer(&pr))
	return resp, err != nil && expired.Load() && ctx.Err() == nil, err
}

// environ is the plugin's environment: the host's, then cfg.Env, then what
// the SDK needs. Later entries win in exec.
func (p *Plugin) environ() []string {
	env := append(os.Environ(), p.cfg.Env...)
	if !hasEnv(env, sdk.LogLevelEnv) {
		// A plugin logging below the host's level only makes work.
		env = append(env, sdk.LogLevelEnv+"="+p.cfg.Logger.GetLevel().String())
	}
	// The instance token marks the plugin and everything it starts (CLI
	// processes inherit it), so what a crashed plugin leaves behind can be
	// found and killed even after it left the plugin's process group.
	env = append(env, p.instanceEnv())
	// The stdout guard acts in the process whose parent is this host, and
	// so never in a CLI that inherited the plugin's environment.
	env = append(env, wire.HostPIDEnv+"="+strconv.Itoa(os.Getpid()))
	if w := p.cfg.ReattachWindow; w > 0 {
		env = append(env, sdk.ReattachWindowEnv+"="+strconv.FormatInt(max(w.Milliseconds(), 1), 10))
		if p.cfg.DetachedLog != "" {
			env = append(env, sdk.DetachedLogEnv+"="+p.cfg.DetachedLog)
		}
	}
	env = append(env, clientCertEnv+"="+string(p.certPEM))
	// A private socket directory: short enough for the 108-byte limit and
	// removed after the plugin, even when it was killed.
	return append(env, "PLUGIN_UNIX_SOCKET_DIR="+p.socketDir)
}

// InstanceEnv is the variable that marks a plugin instance's processes.
const InstanceEnv = "TTHOST_PLUGIN_INSTANCE"

func (p *Plugin) instanceEnv() string { return InstanceEnv + "=" + p.instance }

// sweep kills every process that carries this instance's token: CLI
// processes a dead plugin could not stop (they run in process groups of
// their own, so killing the plugin's group does not reach them).
func (p *Plugin) sweep() {
	if left := procscan.KillByEnv(p.instanceEnv(), groupGoneTimeout); len(left) > 0 {
		p.log.Error("processes started by the plugin are still alive after SIGKILL", "pids", left)
	}
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

func socketDir() (string, error) {
	base := os.TempDir()
	if len(base) > 60 {
		base = "/tmp"
	}
	return os.MkdirTemp(base, wire.SocketDirPrefix)
}

func checkBinary(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: nothing at %s; install the plugin (`tthost plugin install`) or correct its path in the config", ErrNotFound, path)
	case err != nil:
		return fmt.Errorf("cannot read %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%w: %s is not a regular file (mode %v); point the config at the plugin binary itself", ErrNotExecutable, path, fi.Mode())
	case unix.Access(path, unix.X_OK) != nil:
		return fmt.Errorf("%w: %s has mode %v; make it executable with `chmod +x %s`", ErrNotExecutable, path, fi.Mode(), path)
	}
	return nil
}

func checksumMismatch(path string, want []byte) error {
	got, err := FileSHA256(path)
	if err != nil {
		return fmt.Errorf("%w: refusing to run it: %v", ErrChecksumMismatch, err)
	}
	return fmt.Errorf("%w: refusing to run it: its SHA-256 is %x but %x was recorded. "+
		"The file changed since it was installed: rebuild and reinstall the plugin (`tthost plugin install`) "+
		"if the change is yours, else find out who replaced it", ErrChecksumMismatch, got, want)
}

func newInstanceToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// dispense connects to the backend service of a started go-plugin client.
func (p *Plugin) dispense() error {
	rpcClient, err := p.gp.Client()
	if err != nil {
		return err
	}
	raw, err := rpcClient.Dispense(wire.PluginName)
	if err != nil {
		return err
	}
	p.rpc = raw.(backendv1.BackendClient)
	p.conn = rpcClient.(*plugin.GRPCClient).Conn
	return nil
}

// FileSHA256 returns the SHA-256 of a file: the checksum the host records
// for a plugin binary and verifies at every launch.
func FileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// abort kills the plugin's group, waits until go-plugin let go of it, and
// returns a LaunchError that explain builds from what is known by then.
func (p *Plugin) abort(explain func(startFacts) (stage string, err error)) error {
	if err := p.kill(); err != nil {
		p.log.Error("could not clean up after a failed launch", "error", err)
	}
	stage, err := explain(startFacts{exit: p.ExitState(), stderrTail: p.stderr.String()})
	return &LaunchError{Path: p.cfg.Path, Stage: stage, Err: err}
}

// reap runs once the process exits: it takes the rest of the process group
// down with the leader, lets go-plugin collect the process and its
// goroutines, records how the process ended, and waits for the group to
// empty. The group is signalled only here and while the leader lives:
// once the group is empty, the kernel may give its id to a new group.
func (p *Plugin) reap() {
	<-p.exit
	if p.isDetached() {
		// A successor host owns the plugin now (or nobody does, until its
		// window passes): only collect go-plugin's goroutines and the exit
		// status of our child.
		p.gp.Kill()
		p.exitState = p.cmd.ProcessState
		close(p.reaped)
		return
	}
	if err := signalGroup(p.pid, syscall.SIGKILL); err != nil {
		p.log.Warn("could not kill the plugin's process group", "pgid", p.pid, "error", err)
	}
	p.gp.Kill() // the process is gone: this only collects goroutines and the exit status
	p.exitState = p.cmd.ProcessState
	if left := waitGroupGone(p.pid, groupGoneTimeout); len(left) > 0 {
		p.groupErr = fmt.Errorf("plugin %s: process group %d still has live processes %v after SIGKILL", p.name, p.pid, left)
	}
	p.sweep()
	p.finish()
}

func (p *Plugin) finish() {
	_ = os.RemoveAll(p.socketDir)
	p.cancel()
	close(p.reaped)
}

// kill ends the whole group at once and waits until it is gone.
func (p *Plugin) kill() error {
	if !p.exited() && p.pid > 0 {
		if err := signalGroup(p.pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("kill plugin group %d: %w", p.pid, err)
		}
	}
	// reap kills what is left of the group when the leader exits.
	t := time.NewTimer(reapTimeout + groupGoneTimeout)
	defer t.Stop()
	select {
	case <-p.reaped:
		return p.groupErr
	case <-t.C:
		return fmt.Errorf("plugin %s (pid %d) was not reaped within %v of SIGKILL", p.name, p.pid, reapTimeout)
	}
}

func wasKilledByHost(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// Description is what the plugin answered to Describe at launch.
func (p *Plugin) Description() sdk.Description { return p.desc }

// Pid is the plugin process's id; it is also its process group id.
func (p *Plugin) Pid() int { return p.pid }

// Done is closed when the plugin process has exited, for whatever reason,
// or when the host detached from it (Detach).
func (p *Plugin) Done() <-chan struct{} { return p.done }

// ExitState says how the plugin process ended, once it ended and was
// reaped (shortly after Done is closed); nil before.
func (p *Plugin) ExitState() *os.ProcessState {
	select {
	case <-p.reaped:
		return p.exitState
	default:
		return nil
	}
}

func (p *Plugin) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends the plugin: it asks go-plugin's controller to shut the plugin
// down (the SDK then closes every session and exits) and sends SIGTERM to
// the plugin's process group, waits up to grace for the plugin to exit,
// then SIGKILLs the group. When Stop returns nil, nothing of the group is
// alive. It is safe to call more than once and concurrently.
//
// A plugin from Attach is not stopped: Stop closes the sessions this host
// opened (immediately, within grace) and disconnects. A plugin from
// Reattach is stopped like a launched one. After Detach, Stop does
// nothing.
func (p *Plugin) Stop(grace time.Duration) error {
	p.stopOnce.Do(func() {
		if p.debug {
			p.stopErr = p.stopAttached(grace)
			return
		}
		p.stopErr = p.stop(grace)
	})
	return p.stopErr
}

func (p *Plugin) stop(grace time.Duration) error {
	if !p.exited() {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		// The controller's Shutdown is what go-plugin's Kill sends; plugins
		// in other languages implement it too. It runs beside the signal so
		// that a plugin with a wedged gRPC server still gets SIGTERM.
		var wg sync.WaitGroup
		if p.conn != nil {
			wg.Go(func() {
				_ = p.conn.Invoke(ctx, "/plugin.GRPCController/Shutdown", &emptypb.Empty{}, &emptypb.Empty{})
			})
		}
		if err := signalGroup(p.pid, syscall.SIGTERM); err != nil {
			p.log.Warn("could not signal the plugin's process group", "pgid", p.pid, "error", err)
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			p.log.Warn("plugin did not stop within its grace period; killing it", "grace", grace)
		}
		cancel()
		wg.Wait()
	}
	return p.kill()
}

// mapErr turns a gRPC error from the plugin into the sdk sentinel it
// stands for, keeping the plugin's message, so errors.Is works.
func (p *Plugin) mapErr(ctx context.Context, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if ctx.Err() != nil && (st.Code() == codes.Canceled || st.Code() == codes.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", st.Message(), ctx.Err())
	}
	sentinel := convert.SentinelOf(st)
	if sentinel == nil && (st.Code() == codes.Unavailable || st.Code() == codes.Canceled) && p.diedSoon() {
		return p.exitedErr()
	}
	if sentinel == nil {
		if p.exited() {
			return p.exitedErr()
		}
		return fmt.Errorf("plugin %s: %s", p.name, st.Message())
	}
	return &remoteError{sentinel: sentinel, msg: st.Message()}
}

// diedSoon tells a broken connection from a dying plugin: the connection
// breaks a moment before the exit is seen, so wait for it briefly.
func (p *Plugin) diedSoon() bool {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

func (p *Plugin) exitedErr() error {
	if p.isDetached() && !p.debug {
		return fmt.Errorf("plugin %s (pid %d): %w", p.name, p.pid, ErrDetached)
	}
	return fmt.Errorf("plugin %s (pid %d): %w", p.name, p.pid, sdk.ErrPluginExited)
}

// remoteError is an error the plugin returned: its text is the plugin's
// message, and it unwraps to the sentinel its gRPC code stands for.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// HostLostAfter is how long after its host stops answering a plugin built
// with this SDK cancels the host's running turns: a worker that takes an
// agent over from a frozen one waits this long (plus the stop grace)
// before it delivers the agent's in-flight messages again.
const HostLostAfter = wire.HostLostAfter
