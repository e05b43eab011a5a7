package town

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store reads and writes one town in Redis. It is safe for concurrent use;
// it holds no state besides the client, the town name and the clock.
type Store struct {
	rdb  redis.UniversalClient
	town string
	keys Keys
	now  func() time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithClock replaces time.Now (tests use a fixed clock for golden records).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns the store of town on rdb. Only standalone Redis (or a single
// primary) is supported, like tt: the scripts touch several keys that have
// no common hash tag.
func New(rdb redis.UniversalClient, town string, opts ...Option) *Store {
	s := &Store{rdb: rdb, town: town, keys: NewKeys(town), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Town is the town name; Keys builds its key names; Client is the Redis
// client (for callers that need a command the store does not wrap).
func (s *Store) Town() string                  { return s.town }
func (s *Store) Keys() Keys                    { return s.keys }
func (s *Store) Client() redis.UniversalClient { return s.rdb }

func (s *Store) nowUTC() time.Time { return s.now().UTC() }

// scripts are every Lua script the store runs. Each runs with EVALSHA and
// falls back to EVAL (which caches it) on NOSCRIPT, so after the first use,
// or after Preload, every call is one round trip.
var scripts = []*redis.Script{hashUpdateScript, createHashScript, intakeScript, requeueScript,
	deadLetterScript, ackScript, rerouteScript, leaseAcquireScript, leaseRefreshScript, leaseReleaseScript,
	completeScript, claimScript, removeScript}

// Preload loads every script into the server's script cache (SCRIPT LOAD),
// so even the first Intake is a single EVALSHA. Optional: a flushed cache
// (SCRIPT FLUSH, a restarted server) is handled by the EVAL fallback.
func (s *Store) Preload(ctx context.Context) error {
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("load scripts: %w", err)
		}
	}
	return nil
}

// hashUpdateScript changes single fields of a hash that must already exist,
// so that an update racing with a delete (tt prune, tt reset) never leaves a
// partial hash without its id field behind (tt would skip it, but every
// other reader would trip on it). It also gives tthost atomic
// compare-and-set, which tt's whole-record rewrites lack.
//
// ARGV: mode ("", "in" or "notin"), condition field, k, k values, then
// triples (op, field, value). The condition holds when the field's current
// value is (in) or is not (notin) one of the values; mode "" means it always
// holds. Ops: s = HSET, d = HDEL, i = HINCRBY, and c / x = HSET / HDEL only
// when the condition holds.
// Returns {exists, held}.
var hashUpdateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local mode, field, k = ARGV[1], ARGV[2], tonumber(ARGV[3])
local held = 1
if mode ~= '' then
  local cur = redis.call('HGET', KEYS[1], field)
  local found = false
  if cur then
    for i = 1, k do
      if ARGV[3 + i] == cur then found = true break end
    end
  end
  if (mode == 'in') ~= found then held = 0 end
end
local i = 4 + k
while i + 2 <= #ARGV do
  local op, f, v = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if op == 's' or (op == 'c' and held == 1) then
    redis.call('HSET', KEYS[1], f, v)
  elseif op == 'd' or (op == 'x' and held == 1) then
    redis.call('HDEL', KEYS[1], f)
  elseif op == 'i' then
    -- A corrupt counter reads as 0 in tt; restart it rather than fail
    -- halfway through the update (scripts do not roll back).
    local r = redis.pcall('HINCRBY', KEYS[1], f, v)
    if type(r) == 'table' and r.err then redis.call('HSET', KEYS[1], f, v) end
  end
  i = i + 3
end
return {1, held}
`)

type hashOp struct{ op, field, value string }

func set(field, value string) hashOp    { return hashOp{"s", field, value} }
func del(field string) hashOp           { return hashOp{"d", field, ""} }
func incr(field string, n int64) hashOp { return hashOp{"i", field, fmt.Sprint(n)} }

// hashCond is the optional condition of updateHash.
type hashCond struct {
	field  string
	notIn  bool
	values []string
}

// updateHash runs hashUpdateScript. exists is false when the hash is
// missing (nothing was written); held reports the condition.
func (s *Store) updateHash(ctx context.Context, key string, cond *hashCond, ops ...hashOp) (exists, held bool, err error) {
	args := make([]any, 0, 3+3*len(ops))
	if cond == nil {
		args = append(args, "", "", 0)
	} else {
		mode := "in"
		if cond.notIn {
			mode = "notin"
		}
		args = append(args, mode, cond.field, len(cond.values))
		for _, v := range cond.values {
			args = append(args, v)
		}
	}
	for _, o := range ops {
		args = append(args, o.op, o.field, o.value)
	}
	res, err := hashUpdateScript.Run(ctx, s.rdb, []string{key}, args...).Int64Slice()
	if err != nil {
		return false, false, err
	}
	if len(res) != 2 {
		return false, false, fmt.Errorf("hash update of %s: unexpected reply %v", key, res)
	}
	return res[0] == 1, res[1] == 1, nil
}

// createHashScript writes a whole new hash unless the key exists, so a
// create never merges into someone else's record. Returns 1 when created.
var createHashScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`)

// field is one hash field in write order. tt's order is kept so HGETALL
// of a tthost-written record lists fields like a tt-written one.
type field struct{ name, value string }

func (s *Store) createHash(ctx context.Context, key string, fields []field) (bool, error) {
	args := make([]any, 0, 2*len(fields))
	for _, f := range fields {
		args = append(args, f.name, f.value)
	}
	n, err := createHashScript.Run(ctx, s.rdb, []string{key}, args...).Int64()
	return n == 1, err
}

// scanKeys returns every key matching pattern (SCAN, never KEYS: KEYS blocks
// the server on a large database).
func (s *Store) scanKeys(ctx context.Context, pattern string) ([]string, error) {
	var out []string
	iter := s.rdb.Scan(ctx, 0, pattern, 100).Iterator()
	seen := map[string]bool{}
	for iter.Next(ctx) {
		k := iter.Val()
		// SCAN may return a key more than once.
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out, iter.Err()
}

// hgetallMany loads many hashes in one pipeline. A key that is missing or is
// not a hash yields a nil map (tt's listing fails outright on WRONGTYPE;
// tthost skips the key).
func (s *Store) hgetallMany(ctx context.Context, keys []string) ([]map[string]string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HGetAll(ctx, k)
		}
		return nil
	})
	out := make([]map[string]string, len(keys))
	for i, c := range cmds {
		m, cerr := c.Result()
		if cerr != nil {
			if isWrongType(cerr) {
				continue
			}
			return nil, cerr
		}
		if len(m) > 0 {
			out[i] = m
		}
	}
	// err is the first command error; only non-WRONGTYPE errors reach here
	// through the loop above, so a remaining err is a connection failure.
	if err != nil && !isWrongType(err) {
		return nil, err
	}
	return out, nil
}

func isWrongType(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE")
}
