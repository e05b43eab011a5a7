package townredis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/notify"
)

// Server kinds.
const (
	KindRedisServer = "redis-server" // a real redis-server with an append-only file
	KindEmbedded    = "embedded"     // the in-memory embedded server
	KindExternal    = "external"     // a server tthost did not start and does not manage
)

// DefaultStartTimeout bounds the wait for a started server to answer PING,
// as tt waits.
const DefaultStartTimeout = 10 * time.Second

// EnsureOptions say what Ensure may start.
type EnsureOptions struct {
	// RedisServer says what to start, as [tthost] redis_server does:
	// config.RedisServerAuto (also ""), config.RedisServerReal or
	// config.RedisServerEmbedded.
	RedisServer string
	// RedisServerPath is the redis-server binary; "" looks in ~/.tt/bin,
	// then PATH, as tt does.
	RedisServerPath string
	// Executable and EmbeddedArgs run the embedded server (tthost passes its
	// own executable and hidden subcommand). Ensure appends EmbeddedFlag,
	// --unixsocket and --pidfile; see ParseEmbeddedArgs.
	Executable   string
	EmbeddedArgs []string
	// Env is added to the environment of a server Ensure starts.
	Env []string
	// StartTimeout bounds the wait for PING; DefaultStartTimeout when 0.
	StartTimeout time.Duration
}

// Server is the Redis a town uses, as Ensure found or started it.
type Server struct {
	Kind     string // KindRedisServer, KindEmbedded or KindExternal
	Endpoint Endpoint
	// Pid of the town-private server, from its pidfile; 0 when unknown.
	Pid int
	// Started is true when this Ensure started the server.
	Started bool
	// Notice is a line for the user ("" when there is nothing to say).
	Notice string
}

// townFiles are the private server's files in the town's .tt/ directory.
type townFiles struct {
	dir, pid, lock, log, embeddedLog string
}

func filesOf(townDir string) (townFiles, error) {
	root, err := filepath.Abs(townDir)
	if err != nil {
		return townFiles{}, err
	}
	dir := filepath.Join(root, ".tt")
	return townFiles{
		dir:         dir,
		pid:         filepath.Join(dir, "redis.pid"),
		lock:        filepath.Join(dir, "redis.lock"),
		log:         filepath.Join(dir, "redis.log"),
		embeddedLog: filepath.Join(dir, "logs", "redis-embedded.log"),
	}, nil
}

// Ensure makes the town's Redis answer. An endpoint that is not Managed is
// only connected to. For the town socket: a server that answers is used; a
// socket file nobody listens on is removed; otherwise Ensure starts a
// private server (see EnsureOptions.RedisServer) and waits until it answers PING.
// A lock file (.tt/redis.lock) makes concurrent callers, in this process or
// others, start one server between them.
func Ensure(ctx context.Context, ep Endpoint, townDir string, opts EnsureOptions) (Server, error) {
	if !ep.Managed {
		c, err := ep.Connect(ctx)
		if err != nil {
			return Server{}, err
		}
		c.Close()
		return Server{Kind: KindExternal, Endpoint: ep}, nil
	}
	f, err := filesOf(townDir)
	if err != nil {
		return Server{}, err
	}
	for _, d := range []string{filepath.Dir(f.embeddedLog), filepath.Dir(ep.SocketPath)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return Server{}, fmt.Errorf("create %s: %w", d, err)
		}
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}

	unlock, err := lockFile(ctx, f.lock)
	if err != nil {
		return Server{}, fmt.Errorf("lock %s: %w", f.lock, err)
	}
	defer unlock()

	state := probeSocket(ep.SocketPath)
	if state == socketUp || state == socketUnknown {
		// Someone listens (or may): it may still be loading its data, so
		// wait for PING rather than start a second server on the same files.
		err := waitReady(ctx, ep.SocketPath, timeout, nil, true)
		if err == nil {
			return found(ep, f), nil
		}
		if !errors.Is(err, errSocketGone) {
			return Server{}, fmt.Errorf("the town's Redis socket %s exists but the server does not answer: %w", ep.SocketPath, err)
		}
		// The server died while we waited: recover as from a crash.
		state = probeSocket(ep.SocketPath)
	}
	switch state {
	case socketStale:
		if err := os.Remove(ep.SocketPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Server{}, fmt.Errorf("remove stale socket %s: %w", ep.SocketPath, err)
		}
	case socketNotSocket:
		return Server{}, fmt.Errorf("%s exists and is not a socket: move it away, or set [redis].socket_path", ep.SocketPath)
	}
	if st, _ := Status(townDir); st.Running {
		// Our server runs but has no socket yet, or lost it.
		if err := waitReady(ctx, ep.SocketPath, timeout, nil, false); err != nil {
			return Server{}, fmt.Errorf("the town's Redis (pid %d) runs but does not answer on %s: stop it and try again: %w",
				st.Pid, ep.SocketPath, err)
		}
		return found(ep, f), nil
	}

	kind, bin, err := chooseServer(opts)
	if err != nil {
		return Server{}, err
	}
	var s Server
	if kind == KindRedisServer {
		s, err = startRedisServer(ctx, ep, f, bin, opts, timeout)
	} else {
		s, err = startEmbedded(ctx, ep, f, opts, timeout)
	}
	if err != nil {
		return Server{}, err
	}
	s.Started = true
	return s, nil
}

// found describes a server that already answers on the town socket.
func found(ep Endpoint, f townFiles) Server {
	s := Server{Kind: KindExternal, Endpoint: ep}
	pid, _ := readPidfile(f.pid)
	if pid == 0 {
		return s
	}
	if kind, _, ok := identify(pid); ok {
		s.Kind, s.Pid = kind, pid
		if kind == KindEmbedded {
			s.Notice = EmbeddedNotice
		}
	}
	return s
}

// chooseServer picks what to start for opts.RedisServer.
func chooseServer(opts EnsureOptions) (kind, bin string, err error) {
	switch opts.RedisServer {
	case "", config.RedisServerAuto:
		bin, err := usableRedisServer(opts)
		if err == nil {
			return KindRedisServer, bin, nil
		}
		if opts.Executable == "" {
			return "", "", fmt.Errorf("%w, and no embedded server is available: "+
				"install redis-server (`sudo apt-get install redis-server`) or set [redis].url", err)
		}
		return KindEmbedded, "", nil
	case config.RedisServerReal:
		bin, err := usableRedisServer(opts)
		if err != nil {
			return "", "", fmt.Errorf("[tthost] redis_server = %q but %w: install it with `sudo apt-get install redis-server`, "+
				"or set redis_server = %q", config.RedisServerReal, err, config.RedisServerAuto)
		}
		return KindRedisServer, bin, nil
	case config.RedisServerEmbedded:
		if opts.Executable == "" {
			return "", "", errors.New("the embedded Redis needs an executable to run it (EnsureOptions.Executable)")
		}
		return KindEmbedded, "", nil
	}
	return "", "", fmt.Errorf("unknown redis_server %q: use %q, %q or %q", opts.RedisServer,
		config.RedisServerAuto, config.RedisServerReal, config.RedisServerEmbedded)
}

// usableRedisServer finds redis-server and checks that it is at least
// MinVersion, which Connect would otherwise refuse after starting it.
func usableRedisServer(opts EnsureOptions) (string, error) {
	bin, err := findRedisServer(opts.RedisServerPath)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "--version")
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s --version failed: %w", bin, err)
	}
	// "Redis server v=7.0.15 sha=… malloc=… bits=64 build=…"
	for f := range strings.FieldsSeq(string(out)) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			if !versionAtLeast(v, MinVersion) {
				return "", fmt.Errorf("%s is version %s, older than the %s tthost needs", bin, v, MinVersion)
			}
			return bin, nil
		}
	}
	return "", fmt.Errorf("%s --version printed no version: %q", bin, strings.TrimSpace(string(out)))
}

// findRedisServer returns the binary to run: explicit, else tt's
// bootstrapped ~/.tt/bin/redis-server, else PATH.
func findRedisServer(explicit string) (string, error) {
	if explicit != "" {
		if _, err := exec.LookPath(explicit); err != nil {
			return "", fmt.Errorf("redis-server %s is not usable: %w", explicit, err)
		}
		return explicit, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".tt", "bin", "redis-server")
		if _, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server is not installed (not in ~/.tt/bin or PATH)")
	}
	return p, nil
}

// startRedisServer starts a daemonized redis-server on the town socket
// with its append-only file in .tt/, as tt's per-town socket mode does.
func startRedisServer(ctx context.Context, ep Endpoint, f townFiles, bin string, opts EnsureOptions, timeout time.Duration) (Server, error) {
	cmd := exec.Command(bin,
		"--port", "0",
		"--unixsocket", ep.SocketPath,
		"--unixsocketperm", "700",
		"--daemonize", "yes",
		"--pidfile", f.pid,
		"--dir", f.dir,
		"--appendonly", "yes",
		"--appendfilename", "redis.aof",
		"--logfile", f.log,
		// Without this redis-server overwrites its argv and environment with
		// a process title: Stop then still finds "redis-server" but no
		// --unixsocket, and nothing can see the environment it was given.
		"--set-proc-title", "no",
		// Workers see tt's writes (which send no wake signal) through
		// keyspace events; see host/notify for why these classes only.
		"--notify-keyspace-events", notify.RequiredFlags,
	)
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The daemon closes its copy of our pipe when it detaches; should it
	// not, Wait gives up on the pipe instead of hanging.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		return Server{}, fmt.Errorf("start redis-server: %w\n%s%s", err, strings.TrimSpace(out.String()), logTail(f.log))
	}
	if err := waitReady(ctx, ep.SocketPath, timeout, nil, false); err != nil {
		return Server{}, fmt.Errorf("redis-server started but does not answer on %s: %w%s", ep.SocketPath, err, logTail(f.log))
	}
	pid, _ := readPidfile(f.pid)
	return Server{Kind: KindRedisServer, Endpoint: ep, Pid: pid}, nil
}

// startEmbedded starts the embedded server as a detached process in its
// own session, logging to .tt/logs/redis-embedded.log.
func startEmbedded(ctx context.Context, ep Endpoint, f townFiles, opts EnsureOptions, timeout time.Duration) (Server, error) {
	logf, err := os.OpenFile(f.embeddedLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return Server{}, fmt.Errorf("open %s: %w", f.embeddedLog, err)
	}
	args := append(append([]string{}, opts.EmbeddedArgs...), embeddedArgs(ep.SocketPath, f.pid)...)
	cmd := exec.Command(opts.Executable, args...)
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf // stdin stays /dev/null
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logf.Close() // the child has its own descriptor
	if err != nil {
		return Server{}, fmt.Errorf("start embedded Redis %s: %w", opts.Executable, err)
	}
	// The server outlives this call; this goroutine's job is to reap it
	// when it exits, so it never lingers as a zombie while we run.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	if err := waitReady(ctx, ep.SocketPath, timeout, exited, false); err != nil {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its own session and group
			<-exited
		}
		return Server{}, fmt.Errorf("embedded Redis did not start: %w%s", err, logTail(f.embeddedLog))
	}
	return Server{Kind: KindEmbedded, Endpoint: ep, Pid: cmd.Process.Pid, Notice: EmbeddedNotice}, nil
}

// errSocketGone: the socket a server listened on is stale or removed.
var errSocketGone = errors.New("the server's socket went away")

// waitReady waits until the socket answers PING. A daemon gives no
// readiness event, so this polls with a short backoff. exited, when not
// nil, ends the wait early if the server process dies; with watchSocket the
// wait ends with errSocketGone once nobody listens on the socket any more.
func waitReady(ctx context.Context, sock string, timeout time.Duration, exited <-chan error, watchSocket bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := redis.NewClient(&redis.Options{
		Network: "unix", Addr: sock,
		MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second, PoolSize: 1,
		Protocol: 2, DisableIdentity: true,
	})
	defer c.Close()
	backoff := 5 * time.Millisecond
	var last error
	for {
		if last = c.Ping(ctx).Err(); last == nil {
			return nil
		}
		if watchSocket {
			if st := probeSocket(sock); st == socketStale || st == socketAbsent {
				return errSocketGone
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("no PING answer within %v (last: %v)", timeout, last)
		case err := <-exited:
			t.Stop()
			return fmt.Errorf("the server exited (%v)", err)
		case <-t.C:
		}
		if backoff < 100*time.Millisecond {
			backoff *= 2
		}
	}
}

// logTail returns the end of a log file for an error message.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "\n" + path + ":\n" + strings.TrimSpace(string(b))
}

// lockFile takes an exclusive flock on path, or gives up when ctx ends.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	got := make(chan error, 1)
	go func() {
		for {
			err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
			if err != unix.EINTR {
				got <- err
				return
			}
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return nil, err
		}
		// Closing the only descriptor releases the lock. Go opens files
		// close-on-exec, so a server we start does not inherit it.
		return func() { f.Close() }, nil
	case <-ctx.Done():
		// flock cannot be interrupted: let go of the lock once it comes.
		go func() { <-got; f.Close() }()
		return nil, ctx.Err()
	}
}

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
