package townredis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// MinVersion is the oldest Redis tthost and tt accept (LMOVE, XADD MAXLEN ~
// and the Lua they use need 7.0).
const MinVersion = "7.0"

// Connect opens a client for rawURL, checks that the server answers PING
// and, when INFO reports redis_version, that it is at least MinVersion.
// The embedded server reports no version and is accepted.
//
// rawURL is redis://[[user]:password@]host:port[/db], rediss://… (TLS),
// unix:///path/to/socket, or a Sentinel URL (IsSentinelURL, the form is
// SentinelURLForm), for which the client asks the sentinels where the
// master is and follows it through a failover. Either way the result is a
// *redis.Client, so callers do not care which. Errors never show a
// password (RedactURL).
func Connect(ctx context.Context, rawURL string) (*redis.Client, error) {
	shown := RedactURL(rawURL)
	var c *redis.Client
	var hint string
	if IsSentinelURL(rawURL) {
		fo, err := ParseSentinelURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("bad Redis Sentinel URL %s: %w (use %s)", shown, err, SentinelURLForm)
		}
		// The failover client retries an unreachable sentinel or an
		// unknown master name for half a minute and more (retries of
		// dials of retries); asking each sentinel once fails fast and
		// says which one said what.
		if err := askSentinels(ctx, fo); err != nil {
			return nil, fmt.Errorf("Redis Sentinel at %s: %w (%s)", shown, err, sentinelHint(fo))
		}
		c = redis.NewFailoverClient(fo)
		hint = sentinelHint(fo)
	} else {
		if err := sentinelSchemeMistake(rawURL); err != nil {
			return nil, fmt.Errorf("bad Redis URL %s: %w", shown, err)
		}
		opts, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("bad Redis URL %s: %w (use redis://[:password@]host:port, rediss://…, unix:///path/to/socket or, for Sentinel, %s)",
				shown, withoutURL(err), SentinelURLForm)
		}
		c = redis.NewClient(opts)
		hint = connectHint(opts)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("Redis at %s does not answer PING: %w (%s)", shown, err, hint)
	}
	// An error here (the embedded server has no server section, an ACL may
	// forbid INFO) only means the version is unknown.
	if info, err := c.Info(ctx, "server").Result(); err == nil {
		if v := infoField(info, "redis_version"); v != "" && !versionAtLeast(v, MinVersion) {
			c.Close()
			return nil, fmt.Errorf("Redis at %s is version %s; tthost needs %s or newer (upgrade it, or let tthost start a private one by unsetting REDIS_URL and [redis].url)",
				shown, v, MinVersion)
		}
	}
	return c, nil
}

// SentinelURLForm is the Sentinel URL tthost accepts, for messages and
// docs. It is go-redis's own form (redis.ParseFailoverURL): the URL's host
// is a sentinel, each addr= adds another one, its user info is the
// sentinels' login and username=/password= are the master's.
const SentinelURLForm = "redis://[[SENTINEL_USER]:SENTINEL_PASSWORD@]SENTINEL_HOST:PORT[/DB]?master_name=NAME[&addr=HOST2:PORT…][&username=USER][&password=PASSWORD] (rediss:// for TLS)"

// IsSentinelURL reports whether rawURL is a Sentinel URL: redis:// or
// rediss:// with a master_name parameter, which a plain Redis URL never
// has (redis.ParseURL refuses it).
func IsSentinelURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return false
	}
	return u.Query().Has("master_name")
}

// ParseSentinelURL parses a Sentinel URL (SentinelURLForm) into options for
// redis.NewFailoverClient. On top of redis.ParseFailoverURL it insists on
// what go-redis would otherwise default or turn into a panic: a master
// name, an explicit sentinel host and port (go-redis would dial
// localhost:6379, Redis's port, not a sentinel's), and no option that
// sends commands to replicas (tthost writes) or that NewFailoverClient
// refuses (route_by_latency, route_randomly). Errors show no part of the
// URL (the caller adds the redacted URL).
func ParseSentinelURL(rawURL string) (*redis.FailoverOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, withoutURL(err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("the scheme is %q: a Sentinel URL is redis:// or rediss://", u.Scheme)
	}
	if !u.Query().Has("master_name") {
		return nil, errors.New("no master name: add ?master_name=NAME, the name the sentinels monitor (`sentinel monitor NAME …` in their configuration)")
	}
	if u.Hostname() == "" {
		return nil, errors.New("no sentinel address: the URL's host is the first sentinel, e.g. redis://sentinel-1:26379?master_name=NAME&addr=sentinel-2:26379")
	}
	if u.Port() == "" {
		return nil, fmt.Errorf("the sentinel address %s has no port (sentinels usually listen on 26379)", u.Hostname())
	}
	fo, err := redis.ParseFailoverURL(rawURL)
	if err != nil {
		return nil, withoutURL(err)
	}
	if strings.TrimSpace(fo.MasterName) == "" {
		return nil, errors.New("master_name is empty: give the name the sentinels monitor")
	}
	switch {
	case fo.RouteByLatency, fo.RouteRandomly:
		return nil, errors.New("route_by_latency and route_randomly spread reads over replicas, which tthost cannot use: leave them out")
	case fo.ReplicaOnly:
		return nil, errors.New("replica_only sends every command to a replica, but tthost writes: leave it out")
	}
	return fo, nil
}

// askSentinels asks each sentinel once, without retries, for the address
// of the master; nil as soon as one gives it.
func askSentinels(ctx context.Context, fo *redis.FailoverOptions) error {
	var errs []error
	for _, addr := range fo.SentinelAddrs {
		sc := redis.NewSentinelClient(&redis.Options{
			Addr:          addr,
			Username:      fo.SentinelUsername,
			Password:      fo.SentinelPassword,
			TLSConfig:     fo.TLSConfig,
			DialTimeout:   fo.DialTimeout,
			ReadTimeout:   fo.ReadTimeout,
			WriteTimeout:  fo.WriteTimeout,
			MaxRetries:    -1,
			DialerRetries: 1,
		})
		_, err := sc.GetMasterAddrByName(ctx, fo.MasterName).Result()
		_ = sc.Close()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, redis.Nil):
			errs = append(errs, fmt.Errorf("the sentinel at %s monitors no master named %q", addr, fo.MasterName))
		default:
			errs = append(errs, fmt.Errorf("the sentinel at %s: %w", addr, err))
		}
	}
	return fmt.Errorf("no sentinel gave the address of master %q: %w", fo.MasterName, errors.Join(errs...))
}

// sentinelSchemeMistake explains the Sentinel URL schemes other tools use.
func sentinelSchemeMistake(rawURL string) error {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil
	}
	switch strings.ToLower(scheme) {
	case "redis+sentinel", "rediss+sentinel", "redis-sentinel", "sentinel", "sentinels":
		return fmt.Errorf("tthost does not read %s:// URLs; write a Sentinel URL as %s", scheme, SentinelURLForm)
	}
	return nil
}

// withoutURL drops the URL that net/url puts in its parse errors (it may
// hold a password) and keeps the reason.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("the URL does not parse: %w", ue.Err)
	}
	return err
}

// redactQueryPasswords replaces the value of each password-like query
// parameter with "****", leaving the rest of rawURL as written.
func redactQueryPasswords(rawURL string) string {
	rest, _, hasFrag := strings.Cut(rawURL, "#")
	base, query, hasQuery := strings.Cut(rest, "?")
	if !hasQuery {
		return rawURL
	}
	parts := strings.Split(query, "&")
	changed := false
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			key = k
		}
		if isPasswordParam(key) {
			parts[i] = k + "=****"
			changed = true
		}
	}
	if !changed {
		return rawURL
	}
	out := base + "?" + strings.Join(parts, "&")
	if hasFrag {
		// An unescaped # in a password cuts it here: the fragment may be
		// the password's tail.
		out += "#****"
	}
	return out
}

func isPasswordParam(key string) bool {
	k := strings.ToLower(strings.TrimSpace(key))
	return k == "password" || k == "sentinel_password"
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

// sentinelHint says what to check when no master answers through the
// sentinels.
func sentinelHint(o *redis.FailoverOptions) string {
	return fmt.Sprintf("check that a sentinel answers at %s and monitors a master named %q "+
		"(redis-cli -h HOST -p PORT SENTINEL get-master-addr-by-name %s), and the passwords: "+
		"the URL's [user:]password@ is the sentinels' login, its username= and password= parameters the master's",
		strings.Join(o.SentinelAddrs, ", "), o.MasterName, o.MasterName)
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
