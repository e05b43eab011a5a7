package codextest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCodexBinaryFromEnv(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "codex")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(BinEnv, fake)
	if got := CodexBinary(t); got != fake {
		t.Errorf("CodexBinary = %q, want $%s = %q", got, BinEnv, fake)
	}
}

func TestCodexBinaryMissingFailsWithHowToInstall(t *testing.T) {
	tests := []struct {
		name string
		env  string // TTHOST_CODEX_BIN
		want []string
	}{
		{name: "nothing installed in the module", want: []string{
			".tools/codex/node_modules/@openai/codex-linux-x64", "make test",
			"npm install --no-audit --no-fund --prefix .tools/codex @openai/codex@" + Version,
		}},
		{name: "TTHOST_CODEX_BIN names no file", env: "/nonexistent/codex", want: []string{BinEnv + "=/nonexistent/codex", "make test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A module of its own, without .tools.
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Chdir(dir)
			t.Setenv(BinEnv, tt.env)
			msg := fatalOf(t, func(tb testing.TB) { CodexBinary(tb) })
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("failure %q does not say %q", msg, w)
				}
			}
		})
	}
}

// A missing codex fails the test with the install hint, never skips it, so
// `make test` can never pass without running codex.
func TestAMissingCodexFailsTheTest(t *testing.T) {
	dir := t.TempDir() // a module of its own, without .tools
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	t.Setenv(BinEnv, "")
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		CodexBinary(f)
	}()
	<-done
	if f.skipped != "" || !strings.Contains(f.fatal, InstallHint) {
		t.Errorf("skipped %q, fatal %q; want a failure with the install hint", f.skipped, f.fatal)
	}
}

func TestModuleRootIsFoundFromASubdirectory(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	if got := ModuleRoot(t); got != dir {
		t.Errorf("ModuleRoot = %q, want %q", got, dir)
	}
}

func TestNewCodexHome(t *testing.T) {
	var home string
	t.Run("during the test", func(t *testing.T) {
		mock := NewMockModel(t, nil)
		home = NewCodexHome(t, mock)
		if tmp := os.TempDir(); strings.HasPrefix(home, tmp+string(filepath.Separator)) {
			t.Errorf("CODEX_HOME %s is under %s, where codex refuses its helper aliases", home, tmp)
		}
		cfg, err := os.ReadFile(filepath.Join(home, "config.toml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`model_provider = "mock"`, `model = "mock-model"`, `base_url = "` + mock.BaseURL() + `"`,
			`wire_api = "responses"`, `env_key = "MOCK_API_KEY"`, "request_max_retries = 0", "stream_max_retries = 0",
			"supports_websockets = false", "check_for_update_on_startup = false", "[analytics]\nenabled = false",
			"plugins = false", "apps = false", "remote_plugin = false", "unbounded_connection_retries = false"} {
			if !strings.Contains(string(cfg), want) {
				t.Errorf("config.toml lacks %q:\n%s", want, cfg)
			}
		}
		env := Env(home)
		user := filepath.Join(filepath.Dir(home), "home")
		for _, want := range []string{"CODEX_HOME=" + home, "MOCK_API_KEY=dummy-key", "HOME=" + user,
			"HTTPS_PROXY=" + mock.URL(), "https_proxy=" + mock.URL(), "NO_PROXY=127.0.0.1,localhost,::1"} {
			if !slices.Contains(env, want) {
				t.Errorf("Env lacks %q: %q", want, env)
			}
		}
		if fi, err := os.Stat(user); err != nil || !fi.IsDir() {
			t.Errorf("HOME %s: %v", user, err)
		}
	})
	if _, err := os.Stat(filepath.Dir(home)); !os.IsNotExist(err) {
		t.Errorf("the CODEX_HOME is still there after the test: %v", err)
	}
	if env := Env(home); len(env) != 3 {
		t.Errorf("Env of a forgotten home %q, want only CODEX_HOME, the key and NO_COLOR", env)
	}
}
