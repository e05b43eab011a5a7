package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tthost/tthost/host/config"
	"github.com/tthost/tthost/host/internal/testenv"
	"github.com/tthost/tthost/host/townredis"
)

func TestInitWritesTheTownAndSaysItUsesREDIS_URL(t *testing.T) {
	tt := newBareTown(t)
	r := testenv.StartRedis(t, tt.procs.Env())
	tt.env["REDIS_URL"] = r.URL
	// A .gitignore without a final newline: init appends on a new line.
	if err := os.WriteFile(filepath.Join(tt.dir, ".gitignore"), []byte("node_modules"), 0o644); err != nil {
		t.Fatal(err)
	}

	out := tt.run("init", "--name", "demo").ok(t)
	mustContain(t, out, `Initialized town "demo"`, r.URL, "from REDIS_URL", "Next steps", "tthost spawn")

	cfg, err := config.Load(tt.dir)
	if err != nil {
		t.Fatalf("init wrote a config that does not load: %v", err)
	}
	if cfg.Name != "demo" || !cfg.Redis.UseSocket || len(cfg.AgentCLIs) == 0 {
		t.Errorf("config: name %q use_socket %v %d CLIs; want demo, true and the presets", cfg.Name, cfg.Redis.UseSocket, len(cfg.AgentCLIs))
	}
	for _, d := range []string{".tt", ".tt/agents", ".tt/logs", ".tt/tasks"} {
		if fi, err := os.Stat(filepath.Join(tt.dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s is not a directory: %v", d, err)
		}
	}
	gi, err := os.ReadFile(filepath.Join(tt.dir, ".gitignore"))
	if err != nil || string(gi) != "node_modules\n.tt\n" {
		t.Errorf(".gitignore = %q (%v), want node_modules and .tt", gi, err)
	}

	before, _ := os.ReadFile(filepath.Join(tt.dir, config.FileName))
	tt.run("init", "--name", "other").fails(t, "already exists", `town "demo"`, "never overwrites")
	after, _ := os.ReadFile(filepath.Join(tt.dir, config.FileName))
	if string(before) != string(after) {
		t.Error("a second init changed tinytown.toml")
	}
	gi2, _ := os.ReadFile(filepath.Join(tt.dir, ".gitignore"))
	if string(gi2) != string(gi) {
		t.Errorf(".gitignore changed to %q", gi2)
	}
}

func TestInitStartsTheTownsOwnRedisServer(t *testing.T) {
	tt := newBareTown(t)
	// redis-server is installed, so the embedded server (which would run
	// this executable) must not be chosen.
	tt.exe = filepath.Join(tt.dir, "not-started")
	t.Cleanup(func() {
		if err := townredis.Stop(context.Background(), tt.dir); err != nil {
			t.Errorf("stop the town's redis-server: %v", err)
		}
	})

	out := tt.run("init").ok(t)
	mustContain(t, out, "town's private redis-server", "started now", "append-only file under .tt/",
		filepath.Join(tt.dir, ".tt", "redis.sock"), "no REDIS_URL or [redis].url is set")
	st, err := townredis.Status(tt.dir)
	if err != nil || !st.Running || st.Kind != townredis.KindRedisServer {
		t.Fatalf("status after init: %+v, %v; want a running redis-server", st, err)
	}

	// Every later command reuses the running server.
	out = tt.run("status").ok(t)
	mustContain(t, out, "town-private redis-server")
	out = tt.run("redis", "status").ok(t)
	mustContain(t, out, "the town's redis-server", "pid", "town socket")

	out = tt.run("redis", "stop").ok(t)
	mustContain(t, out, "Stopped the town's redis-server")
	if st, _ := townredis.Status(tt.dir); st.Running {
		t.Errorf("redis-server still runs after redis stop: %+v", st)
	}
	mustContain(t, tt.run("redis", "stop").ok(t), "was not running")
	mustContain(t, tt.run("redis", "status").ok(t), "not running")
}

func TestTownNameComesFromTheGitRepository(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, base string) string // returns the town dir
		want  string
	}{
		{"a branch with slashes", func(t *testing.T, base string) string {
			repo := filepath.Join(base, "myrepo")
			writeFile(t, filepath.Join(repo, ".git", "HEAD"), "ref: refs/heads/feature/x\n")
			return repo
		}, "myrepo-feature-x"},
		{"a subdirectory of the repository", func(t *testing.T, base string) string {
			repo := filepath.Join(base, "app")
			writeFile(t, filepath.Join(repo, ".git", "HEAD"), "ref: refs/heads/main\n")
			sub := filepath.Join(repo, "svc")
			mustMkdir(t, sub)
			return sub
		}, "app-main"},
		{"a detached HEAD", func(t *testing.T, base string) string {
			repo := filepath.Join(base, "detached")
			writeFile(t, filepath.Join(repo, ".git", "HEAD"), "0123456789abcdef0123456789abcdef01234567\n")
			return repo
		}, "detached"},
		{"a worktree's .git file", func(t *testing.T, base string) string {
			gitdir := filepath.Join(base, "main", ".git", "worktrees", "wt")
			writeFile(t, filepath.Join(gitdir, "HEAD"), "ref: refs/heads/fix\n")
			wt := filepath.Join(base, "wt")
			writeFile(t, filepath.Join(wt, ".git"), "gitdir: "+gitdir+"\n")
			return wt
		}, "wt-fix"},
		{"no repository", func(t *testing.T, base string) string {
			d := filepath.Join(base, "plain")
			mustMkdir(t, d)
			return d
		}, "plain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := c.setup(t, t.TempDir())
			if got := detectTownName(dir); got != c.want {
				t.Errorf("detectTownName = %q, want %q", got, c.want)
			}
		})
	}
	if got := detectTownName("/"); got != "tinytown" {
		t.Errorf("detectTownName(/) = %q, want tinytown", got)
	}
}

func TestGitignoreGetsTTOnlyWhereItBelongs(t *testing.T) {
	cases := []struct {
		name     string
		inRepo   bool
		existing string // "" for no .gitignore
		want     string // "" for no .gitignore afterwards
		added    bool
	}{
		{"a repository without .gitignore gets one", true, "", ".tt\n", true},
		{"a plain directory without .gitignore gets none", false, "", "", false},
		{"an existing .gitignore gets .tt appended", false, "bin/\n", "bin/\n.tt\n", true},
		{"an existing entry is kept as it is", true, "/.tt/\n", "/.tt/\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, ".gitignore")
			if c.existing != "" {
				writeFile(t, p, c.existing)
			}
			added, err := ensureGitignored(dir, c.inRepo)
			if err != nil || added != c.added {
				t.Fatalf("added %v, %v; want %v", added, err, c.added)
			}
			b, err := os.ReadFile(p)
			if c.want == "" {
				if err == nil {
					t.Errorf(".gitignore was created: %q", b)
				}
				return
			}
			if string(b) != c.want {
				t.Errorf(".gitignore = %q, want %q", b, c.want)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	mustMkdir(t, filepath.Dir(path))
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}
