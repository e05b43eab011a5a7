// Package townredis finds the Redis a town uses and, when that is the
// town-private socket in .tt/, starts and stops it.
//
// Resolve applies tt's rules, in tt's order, to say where Redis is;
// Connect opens a client and checks the server; Ensure makes the town's
// private server run: a real redis-server with an append-only file when one
// is installed, else an embedded in-memory server (ServeEmbedded, run by
// tthost's own executable); Stop and Status act on the server Ensure
// started, identified by its pidfile and verified by its command line.
// Both servers start with keyspace notifications on (notify.RequiredFlags),
// the embedded one by emulating them (embedded_keyspace.go).
package townredis

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tthost/tthost/host/config"
)

// MaxSocketPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const MaxSocketPath = 107

// Endpoint is where a town's Redis is and why.
type Endpoint struct {
	// URL is redis://, rediss:// or unix://. It may hold a password: log
	// Redacted() instead.
	URL string
	// Source says in words where the URL came from, for messages:
	// "REDIS_URL", "[redis].url in tinytown.toml", "town socket" or
	// "tcp host/port".
	Source string
	// Managed is true for the town-private socket: tthost may start it.
	Managed bool
	// SocketPath is the absolute socket path when Managed.
	SocketPath string
}

// Sources of an Endpoint.
const (
	SourceEnv        = "REDIS_URL"
	SourceConfigURL  = "[redis].url in tinytown.toml"
	SourceTownSocket = "town socket"
	SourceTCP        = "tcp host/port"
)

// Redacted returns the URL with any password replaced by "****".
func (e Endpoint) Redacted() string { return RedactURL(e.URL) }

// Resolve says where the town's Redis is, in tt's order: REDIS_URL when not
// blank, then [redis].url, then the town socket when use_socket, else TCP
// host and port with the password from TINYTOWN_REDIS_PASSWORD or
// [redis].password. getenv is os.Getenv when nil; an empty variable counts
// as unset.
func Resolve(cfg *config.Config, townDir string, getenv func(string) string) (Endpoint, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if u := strings.TrimSpace(getenv("REDIS_URL")); u != "" {
		return Endpoint{URL: u, Source: SourceEnv}, nil
	}
	r := cfg.Redis
	if u := strings.TrimSpace(r.URL); u != "" {
		return Endpoint{URL: u, Source: SourceConfigURL}, nil
	}
	if r.UseSocket {
		root, err := filepath.Abs(townDir)
		if err != nil {
			return Endpoint{}, fmt.Errorf("town directory %s: %w", townDir, err)
		}
		sock := r.SocketPath
		if !filepath.IsAbs(sock) {
			sock = filepath.Join(root, sock)
		}
		if len(sock) > MaxSocketPath {
			return Endpoint{}, fmt.Errorf("the town's Redis socket path is %d bytes, longer than the %d a unix socket allows: %s\n"+
				"move the town to a shorter path, set [redis].socket_path to a shorter (absolute) path, or set [redis].url",
				len(sock), MaxSocketPath, sock)
		}
		// No password: tt starts a socket-mode server without requirepass.
		return Endpoint{URL: "unix://" + sock, Source: SourceTownSocket, Managed: true, SocketPath: sock}, nil
	}
	u := url.URL{Scheme: "redis", Host: net.JoinHostPort(r.Host, strconv.Itoa(r.Port))}
	if r.TLSEnabled {
		u.Scheme = "rediss"
	}
	pw := getenv("TINYTOWN_REDIS_PASSWORD")
	if pw == "" {
		pw = r.Password
	}
	if pw != "" {
		// tt writes the password as is; escaping gives the same URL for
		// its generated hex passwords and a parseable one for any other.
		u.User = url.UserPassword("", pw)
	}
	return Endpoint{URL: u.String(), Source: SourceTCP}, nil
}

// RedactURL hides the password in a Redis URL.
func RedactURL(raw string) string {
	raw = redactQueryPasswords(raw) // a Sentinel URL's master password= and sentinel_password=
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if err != nil && strings.Contains(raw, "@") {
			return "(unparseable Redis URL)"
		}
		return raw
	}
	if _, has := u.User.Password(); !has {
		return raw
	}
	// url.URL would escape the stars; splice them in by hand.
	user := url.User(u.User.Username()).String()
	u.User = nil
	return u.Scheme + "://" + user + ":****@" + strings.TrimPrefix(u.String(), u.Scheme+"://")
}
