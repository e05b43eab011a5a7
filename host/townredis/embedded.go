package townredis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// EmbeddedFlag marks the command line of an embedded server. Ensure appends
// it, with the socket and pidfile, after EnsureOptions.EmbeddedArgs; Stop
// and Status look for it before they signal a process.
const EmbeddedFlag = "--tthost-embedded-redis"

// EmbeddedNotice is what Ensure tells the user about an embedded server.
const EmbeddedNotice = "the town's Redis is the embedded in-memory server: its data is lost when it stops " +
	"(install redis-server, e.g. `sudo apt-get install redis-server`, to keep it)"

// embeddedArgs are the arguments Ensure appends for the embedded server.
func embeddedArgs(socketPath, pidFile string) []string {
	return []string{EmbeddedFlag, "--unixsocket", socketPath, "--pidfile", pidFile}
}

// ParseEmbeddedArgs finds the socket and pidfile in the arguments of an
// embedded server started by Ensure (what follows EmbeddedFlag), for the
// main function that calls ServeEmbedded.
func ParseEmbeddedArgs(args []string) (socketPath, pidFile string, err error) {
	i := 0
	for i < len(args) && args[i] != EmbeddedFlag {
		i++
	}
	if i == len(args) {
		return "", "", fmt.Errorf("missing %s: the embedded Redis is started by tthost, not by hand", EmbeddedFlag)
	}
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		if j+1 >= len(rest) {
			return "", "", fmt.Errorf("%s needs a value", rest[j])
		}
		switch rest[j] {
		case "--unixsocket":
			socketPath = rest[j+1]
		case "--pidfile":
			pidFile = rest[j+1]
		default:
			return "", "", fmt.Errorf("unknown embedded Redis argument %q", rest[j])
		}
		j++
	}
	if socketPath == "" || pidFile == "" {
		return "", "", errors.New("the embedded Redis needs --unixsocket and --pidfile")
	}
	return socketPath, pidFile, nil
}

// ServeEmbedded runs the embedded in-memory Redis (miniredis) on a unix
// socket until ctx is done: the main loop of the embedded server process.
// It writes pidFile once it listens and removes the socket and pidFile when
// it returns. The caller cancels ctx on SIGTERM and SIGINT and ignores
// SIGHUP, as redis-server does: the data is in memory only.
func ServeEmbedded(ctx context.Context, socketPath, pidFile string) error {
	s, err := StartEmbedded(socketPath)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := writePidfile(pidFile); err != nil {
		return err
	}
	defer func() {
		if pid, _ := readPidfile(pidFile); pid == os.Getpid() {
			os.Remove(pidFile)
		}
	}()
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.acceptErr:
		return fmt.Errorf("embedded Redis stopped accepting connections: %w", err)
	}
}

// EmbeddedServer is the embedded Redis serving a unix socket in this
// process, with keyspace notifications (see keyspaceEvents).
type EmbeddedServer struct {
	socketPath string
	sockInfo   os.FileInfo
	l          *net.UnixListener
	m          *miniredis.Miniredis
	events     *keyspaceEvents
	acceptErr  chan error    // why the accept loop ended, unless Close ended it
	accepting  chan struct{} // closed when the accept loop returned
	once       sync.Once
}

// StartEmbedded starts the embedded server on socketPath, which must not
// be served already (a stale socket file is replaced). It accepts
// connections when StartEmbedded returns; Close stops it.
func StartEmbedded(socketPath string) (*EmbeddedServer, error) {
	if len(socketPath) > MaxSocketPath {
		return nil, fmt.Errorf("socket path %s is longer than %d bytes", socketPath, MaxSocketPath)
	}
	switch st := probeSocket(socketPath); st {
	case socketUp:
		return nil, fmt.Errorf("a server already listens on %s", socketPath)
	case socketStale:
		if err := os.Remove(socketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	case socketNotSocket:
		return nil, fmt.Errorf("%s exists and is not a socket", socketPath)
	}

	l, err := listenPrivate(socketPath)
	if err != nil {
		return nil, err
	}
	sockInfo, err := os.Stat(socketPath)
	if err != nil {
		l.Close()
		return nil, err
	}

	m := miniredis.NewMiniRedis()
	// miniredis only counts TTLs down when told to; a real server expires
	// keys as wall-clock time passes, and SETEX heartbeats rely on it.
	m.ClockTTL(true)
	// Dial starts the server without a TCP listener (miniredis has no unix
	// listener API); this first in-memory connection is not needed.
	boot, err := m.Dial()
	if err != nil {
		l.Close()
		os.Remove(socketPath)
		return nil, fmt.Errorf("start embedded Redis: %w", err)
	}
	boot.Close()
	s := &EmbeddedServer{
		socketPath: socketPath, sockInfo: sockInfo, l: l, m: m,
		events:    newKeyspaceEvents(m),
		acceptErr: make(chan error, 1),
		accepting: make(chan struct{}),
	}
	srv := m.Server()
	go func() {
		defer close(s.accepting)
		for {
			conn, err := l.Accept()
			if err != nil {
				s.acceptErr <- err
				return
			}
			srv.ServeConn(conn)
		}
	}()
	return s, nil
}

// Close stops accepting, closes every client (waking blocked commands),
// and removes the socket while it is still this server's. Later calls do
// nothing.
func (s *EmbeddedServer) Close() {
	s.once.Do(func() {
		s.l.Close()
		<-s.accepting
		s.m.Close()
		s.events.close()
		if fi, err := os.Stat(s.socketPath); err == nil && os.SameFile(fi, s.sockInfo) {
			os.Remove(s.socketPath)
		}
	})
}

// listenPrivate listens on a unix socket that only the owner can use. It
// binds a temporary name, makes it 0700 and renames it into place, so the
// socket is never reachable with looser permissions; when the temporary
// name would be too long it binds in place and chmods at once.
func listenPrivate(socketPath string) (*net.UnixListener, error) {
	tmp := filepath.Join(filepath.Dir(socketPath), ".rs"+strconv.Itoa(os.Getpid()))
	bindPath := tmp
	if len(tmp) > MaxSocketPath {
		bindPath = socketPath
	}
	os.Remove(tmp) // a leftover of an earlier process with our pid
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: bindPath, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", socketPath, err)
	}
	// We remove the socket ourselves, by its final name.
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(bindPath, 0o700); err != nil {
		l.Close()
		os.Remove(bindPath)
		return nil, fmt.Errorf("chmod %s: %w", bindPath, err)
	}
	if bindPath != socketPath {
		if err := os.Rename(bindPath, socketPath); err != nil {
			l.Close()
			os.Remove(bindPath)
			return nil, fmt.Errorf("place socket at %s: %w", socketPath, err)
		}
	}
	return l, nil
}

// writePidfile writes our pid the way redis-server does ("PID\n"),
// atomically so a reader never sees an empty file.
func writePidfile(path string) error {
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("write pidfile: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write pidfile: %w", err)
	}
	return nil
}

// readPidfile returns the pid in a pidfile, 0 when there is no file.
func readPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s does not hold a pid: %q", path, b)
	}
	return pid, nil
}

type socketState int

const (
	socketAbsent    socketState = iota // no file
	socketUp                           // something accepts connections
	socketStale                        // a socket file nobody listens on
	socketNotSocket                    // a file that is not a socket: never removed
	socketUnknown                      // a connect error that proves nothing
)

// probeSocket tells a live socket from a stale one. Only "connection
// refused" proves that nobody listens; other errors leave the file alone.
func probeSocket(path string) socketState {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return socketAbsent
	}
	if err != nil {
		return socketUnknown
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return socketNotSocket
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return socketUp
	}
	if isConnRefused(err) {
		return socketStale
	}
	if errors.Is(err, os.ErrNotExist) {
		return socketAbsent
	}
	return socketUnknown
}
