package client

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/go-plugin"

	"github.com/tthost/tthost/sdk/internal/testhooks"
	"github.com/tthost/tthost/sdk/internal/wire"
)

// Why a launch failed. A *LaunchError wraps exactly one of these, so callers
// test with errors.Is; the error's text says what happened and what to do.
var (
	// ErrNotFound: there is no file at the configured path.
	ErrNotFound = errors.New("plugin binary not found")
	// ErrNotExecutable: the file cannot be run (mode, directory, format).
	ErrNotExecutable = errors.New("plugin binary is not executable")
	// ErrNoChecksum: the launch was asked without a recorded SHA-256.
	ErrNoChecksum = errors.New("no checksum recorded for the plugin binary")
	// ErrChecksumMismatch: the binary is not the one that was installed.
	ErrChecksumMismatch = errors.New("plugin binary does not match its recorded checksum")
	// ErrStdoutPollution: the plugin printed something before go-plugin's
	// handshake line, which must be the first line on its stdout.
	ErrStdoutPollution = errors.New("plugin printed to stdout before its handshake")
	// ErrNotAPlugin: the binary ran but never spoke the tthost handshake.
	ErrNotAPlugin = errors.New("binary is not a tthost backend plugin")
	// ErrProtocolMismatch: host and plugin share no backend protocol version.
	ErrProtocolMismatch = errors.New("plugin speaks another backend protocol version")
	// ErrStartTimeout: the plugin did not finish its handshake in time.
	ErrStartTimeout = errors.New("plugin did not complete its handshake in time")
	// ErrDescribeTimeout: the plugin did not answer Describe in time.
	ErrDescribeTimeout = errors.New("plugin did not answer Describe in time")
)

// ExitEventsLost is the Exited reason the client reports when the plugin
// can no longer replay a session's events (it lost the session, or the
// events the client missed are out of its buffer).
const ExitEventsLost = "events_lost"

// LaunchError is what Launch returns: which binary, at which stage
// ("check", "verify", "start", "handshake", "describe"), and why.
type LaunchError struct {
	Path  string
	Stage string
	Err   error
}

func (e *LaunchError) Error() string {
	return fmt.Sprintf("plugin %s: %s failed: %v", e.Path, e.Stage, e.Err)
}

func (e *LaunchError) Unwrap() error { return e.Err }

// startFacts is what the host learned about a plugin that failed to start:
// how its process ended (nil while it ran) and the tail of its stderr.
type startFacts struct {
	exit       *os.ProcessState
	stderrTail string
}

func (f startFacts) exitedOnItsOwn() bool {
	return f.exit != nil && f.exit.Exited()
}

// status describes the process's end for a message.
func (f startFacts) status() string {
	switch {
	case f.exit == nil:
		return "it was still running"
	case f.exit.Exited():
		return fmt.Sprintf("it exited with status %d", f.exit.ExitCode())
	default:
		if ws, ok := f.exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("it was ended by signal %v", ws.Signal())
		}
		return "it ended: " + f.exit.String()
	}
}

func (f startFacts) stderr() string {
	if t := strings.TrimSpace(f.stderrTail); t != "" {
		return "; the end of its stderr:\n" + indent(t)
	}
	return "; it wrote nothing to stderr"
}

var pluginVersionRE = regexp.MustCompile(`Plugin version: (\d+)`)

// classifyStart turns go-plugin's start errors, which are plain strings,
// into the sentinels above with advice. go-plugin v1.8.0 is pinned, so the
// strings matched here are known.
func classifyStart(err error, f startFacts) (stage string, out error) {
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.ENOEXEC):
		return "start", fmt.Errorf("%w: the system cannot run it (%v): it is not a program for this machine "+
			"(wrong architecture, or a script without #! line); rebuild or reinstall it", ErrNotExecutable, err)
	case errors.Is(err, syscall.EACCES):
		return "start", fmt.Errorf("%w: permission denied (%v); make it executable with chmod +x", ErrNotExecutable, err)
	case strings.HasPrefix(msg, "Unrecognized remote plugin message: "):
		line, _, _ := strings.Cut(strings.TrimPrefix(msg, "Unrecognized remote plugin message: "), "\n")
		line = truncate(strings.TrimSpace(line), 200)
		if line == "" || f.exitedOnItsOwn() {
			return "handshake", notAPlugin(f, line)
		}
		return "handshake", fmt.Errorf("%w: it printed %q where go-plugin's handshake line was expected. "+
			"Plugins must not write to stdout: log with plugin.Logger() or write to stderr "+
			"(the SDK sets stdout aside for the plugin's own code, but a library that prints in its init can run first). "+
			"If the binary is not a tthost plugin at all, correct the configured path%s",
			ErrStdoutPollution, line, f.stderr())
	case strings.Contains(msg, "plugin exited before we could connect"):
		return "handshake", notAPlugin(f, "")
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		return "handshake", fmt.Errorf("%w: no handshake within the start timeout; it was killed. "+
			"Is it a tthost backend plugin (built with github.com/tthost/tthost/sdk)?%s", ErrStartTimeout, f.stderr())
	case strings.Contains(msg, "incompatible API version with plugin"):
		return "handshake", protocolMismatch(msg)
	case strings.Contains(msg, "incompatible core API version"), strings.Contains(msg, "unsupported plugin protocol"):
		return "handshake", fmt.Errorf("%w: %s; tthost plugins serve gRPC with go-plugin's core protocol %d: "+
			"rebuild the plugin with the tthost SDK", ErrProtocolMismatch, firstLine(msg), plugin.CoreProtocolVersion)
	}
	return "start", err
}

func notAPlugin(f startFacts, printed string) error {
	what := "without printing the handshake line"
	if printed != "" {
		what = fmt.Sprintf("after printing %q instead of the handshake line", printed)
	}
	return fmt.Errorf("%w: %s %s. tthost plugins are built with github.com/tthost/tthost/sdk and call plugin.Serve; "+
		"check the configured path%s", ErrNotAPlugin, f.status(), what, f.stderr())
}

func protocolMismatch(msg string) error {
	host := hostVersions()
	m := pluginVersionRE.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Errorf("%w: %s (this host speaks %v)", ErrProtocolMismatch, firstLine(msg), host)
	}
	pv, _ := strconv.Atoi(m[1])
	advice := fmt.Sprintf("upgrade tthost to a release that speaks protocol %d, or install a release of the plugin built for protocol %d", pv, slices.Max(host))
	if pv < slices.Min(host) {
		advice = fmt.Sprintf("rebuild or upgrade the plugin with a tthost SDK that speaks protocol %d", slices.Max(host))
	}
	return fmt.Errorf("%w: the plugin speaks backend protocol version %d but this host speaks version %s: %s",
		ErrProtocolMismatch, pv, joinInts(host), advice)
}

// hostVersions are the backend protocol versions this host speaks,
// ascending: every version the SDK supports.
func hostVersions() []int {
	vs := wire.Versions
	if testhooks.ClientProtocolVersions != nil {
		vs = testhooks.ClientProtocolVersions
	}
	return slices.Sorted(slices.Values(vs))
}

func joinInts(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ", ")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
