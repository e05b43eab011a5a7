package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/town"
	"github.com/tthost/tthost/host/townredis"
)

// Factory gives commands what they share: IO, the town's config and its
// Redis store, each loaded once and only when a command needs it.
type Factory struct {
	IO *IOStreams
	// TownDir and Verbose are the global flags.
	TownDir string
	Verbose bool
	// Getenv reads the environment (tests replace it).
	Getenv func(string) string
	// Executable is this tthost binary (for spawning agent loops and the
	// embedded Redis server).
	Executable func() (string, error)
	// Env is added to the environment of the processes commands start
	// (agent loops, the town-private Redis server); tests put their
	// process-tracking marker here.
	Env []string

	mu     sync.Mutex
	cfg    *config.Config
	rdb    *redis.Client
	store  *town.Store
	server townredis.Server
}

// NewFactory returns a factory over io and the process environment.
func NewFactory(io *IOStreams) *Factory {
	return &Factory{IO: io, TownDir: ".", Getenv: os.Getenv, Executable: os.Executable}
}

// TownRoot is the absolute town directory.
func (f *Factory) TownRoot() (string, error) {
	abs, err := filepath.Abs(f.TownDir)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return abs, nil
}

// Config loads tinytown.toml once, printing its warnings to stderr.
func (f *Factory) Config() (*config.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cfg != nil {
		return f.cfg, nil
	}
	root, err := f.TownRoot()
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(root)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(f.IO.ErrOut, "warning: %s\n", w)
	}
	f.cfg = cfg
	return cfg, nil
}

// Store connects to the town's Redis once, starting the town-private
// server when the town uses one and it is not running.
func (f *Factory) Store(ctx context.Context) (*town.Store, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.store != nil {
		return f.store, nil
	}
	root, err := f.TownRoot()
	if err != nil {
		return nil, err
	}
	srv, rdb, err := f.ensureRedis(ctx, cfg, root)
	if err != nil {
		return nil, err
	}
	f.server, f.rdb = srv, rdb
	f.store = town.New(rdb, cfg.Name)
	return f.store, nil
}

// ensureRedis resolves the town's Redis and starts the town-private server
// when needed.
func (f *Factory) ensureRedis(ctx context.Context, cfg *config.Config, root string) (townredis.Server, *redis.Client, error) {
	ep, err := townredis.Resolve(cfg, root, f.Getenv)
	if err != nil {
		return townredis.Server{}, nil, err
	}
	var exe string
	if ep.Managed { // only the town-private server may need it (embedded)
		if exe, err = f.Executable(); err != nil {
			return townredis.Server{}, nil, fmt.Errorf("find the tthost executable: %w", err)
		}
	}
	srv, err := townredis.Ensure(ctx, ep, root, townredis.EnsureOptions{
		RedisServer:  cfg.TTHost.RedisServer,
		Executable:   exe,
		EmbeddedArgs: []string{"--town", root, "redis", "serve-embedded"},
		Env:          f.Env,
	})
	if err != nil {
		return townredis.Server{}, nil, err
	}
	rdb, err := townredis.Connect(ctx, ep.URL)
	if err != nil {
		return townredis.Server{}, nil, err
	}
	return srv, rdb, nil
}

// Town is what most commands need first: the config, the store and the
// town root.
func (f *Factory) Town(ctx context.Context) (*config.Config, *town.Store, string, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, nil, "", err
	}
	store, err := f.Store(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	root, err := f.TownRoot()
	if err != nil {
		return nil, nil, "", err
	}
	return cfg, store, root, nil
}

// Endpoint resolves where the town's Redis is, without connecting.
func (f *Factory) Endpoint() (townredis.Endpoint, string, error) {
	cfg, err := f.Config()
	if err != nil {
		return townredis.Endpoint{}, "", err
	}
	root, err := f.TownRoot()
	if err != nil {
		return townredis.Endpoint{}, "", err
	}
	ep, err := townredis.Resolve(cfg, root, f.Getenv)
	return ep, root, err
}

// PluginDirEnv overrides the plugin directory.
const PluginDirEnv = "TTHOST_PLUGIN_DIR"

// PluginDir is where `tthost plugin install` puts plugins and where the
// host looks for installed ones: $TTHOST_PLUGIN_DIR, else [tthost]
// plugin_dir of the town (relative to the town root), else
// $XDG_DATA_HOME/tthost/plugins (~/.local/share/tthost/plugins). A command
// run outside a town uses the environment or the default.
func (f *Factory) PluginDir() (string, error) {
	if d := f.Getenv(PluginDirEnv); d != "" {
		return filepath.Abs(d)
	}
	if cfg, err := f.Config(); err == nil && cfg.TTHost.PluginDir != "" {
		d := cfg.TTHost.PluginDir
		if !filepath.IsAbs(d) {
			root, err := f.TownRoot()
			if err != nil {
				return "", err
			}
			d = filepath.Join(root, d)
		}
		return d, nil
	} else if err != nil && !errors.Is(err, config.ErrNotInitialized) {
		return "", err
	}
	if x := f.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "tthost", "plugins"), nil
	}
	home := f.Getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("no plugin directory: set %s or HOME: %w", PluginDirEnv, err)
		}
	}
	return filepath.Join(home, ".local", "share", "tthost", "plugins"), nil
}

// PluginDirs are the directories searched for backend plugins, in order:
// the built-in plugins next to the tthost executable, then PluginDir.
func (f *Factory) PluginDirs() ([]string, error) {
	exe, err := f.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the tthost executable: %w", err)
	}
	pd, err := f.PluginDir()
	if err != nil {
		return nil, err
	}
	return []string{filepath.Dir(exe), pd}, nil
}

// Server is the Redis server the store connected to (after Store).
func (f *Factory) Server() townredis.Server {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.server
}

// Logger returns the structured logger for the host's own logs (stderr).
func (f *Factory) Logger(name string) hclog.Logger {
	level := hclog.Info
	if f.Verbose {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: f.IO.ErrOut})
}

// Close releases the Redis connection.
func (f *Factory) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rdb != nil {
		_ = f.rdb.Close()
		f.rdb = nil
	}
}
