package plugin

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/tthost/tthost/sdk"
)

// ChildEnv is the environment for a process a backend starts, the CLI
// above all: the plugin's own environment without its internal variables
// (CleanEnv), then extra, usually SessionConfig.Env, in name order. os/exec
// keeps the last of duplicate names, so extra wins. A name that is empty
// or holds '=' or NUL, or a value with NUL, is an sdk.ErrInvalidConfig:
// return it from OpenSession.
//
//	env, err := plugin.ChildEnv(cfg.Env)
//	if err != nil {
//		return nil, err
//	}
//	cmd.Env = append(env, tag.Env())
func ChildEnv(extra map[string]string) ([]string, error) {
	env := sdk.CleanEnv(os.Environ())
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		v := extra[k]
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(v, "\x00") {
			return nil, fmt.Errorf("%w: environment variable %q: names must be non-empty without '=' or NUL, values without NUL", sdk.ErrInvalidConfig, k)
		}
		env = append(env, k+"="+v)
	}
	return env, nil
}
