package townredis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// MinVersion is the oldest Redis tthost and tt accept (LMOVE, XADD MAXLEN ~
// and the Lua they use need 7.0).
const MinVersion = "7.0"

// Connect opens a client for url (redis://, rediss:// or unix://), checks
// that the server answers PING and, when INFO reports redis_version, that
// it is at least MinVersion. The embedded server reports no version and is
// accepted.
func Connect(ctx context.Context, rawURL string) (*redis.Client, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bad Redis URL %s: %w (use redis://[:password@]host:port, rediss://… or unix:///path/to/socket)",
			RedactURL(rawURL), err)
	}
	c := redis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("Redis at %s does not answer PING: %w (%s)", RedactURL(rawURL), err, connectHint(opts))
	}
	// An error here (the embedded server has no server section, an ACL may
	// forbid INFO) only means the version is unknown.
	if info, err := c.Info(ctx, "server").Result(); err == nil {
		if v := infoField(info, "redis_version"); v != "" && !versionAtLeast(v, MinVersion) {
			c.Close()
			return nil, fmt.Errorf("Redis at %s is version %s; tthost needs %s or newer (upgrade it, or let tthost start a private one by unsetting REDIS_URL and [redis].url)",
				RedactURL(rawURL), v, MinVersion)
		}
	}
	return c, nil
}

// Connect opens a client for the endpoint; errors also say where the URL
// came from.
func (e Endpoint) Connect(ctx context.Context) (*redis.Client, error) {
	c, err := Connect(ctx, e.URL)
	if err != nil {
		return nil, fmt.Errorf("%w [the URL comes from %s]", err, e.Source)
	}
	return c, nil
}

func connectHint(o *redis.Options) string {
	if o.Network == "unix" {
		return "no server listens on that socket: start the town's Redis, or check [redis].socket_path"
	}
	return "check that Redis runs at " + o.Addr + " and that the password (TINYTOWN_REDIS_PASSWORD or [redis].password) is right"
}

// infoField returns a "key:value" field of an INFO reply.
func infoField(info, key string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return v
		}
	}
	return ""
}

// versionAtLeast compares dotted numeric versions ("7.0.15" >= "7.0").
func versionAtLeast(v, min string) bool {
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := range max(len(a), len(b)) {
		var x, y int
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		if i < len(b) {
			y, _ = strconv.Atoi(b[i])
		}
		if x != y {
			return x > y
		}
	}
	return true
}
