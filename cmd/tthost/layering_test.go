package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The layering docs/plugin-authoring.md promises, checked on the import
// graph: the host links the SDK's contract and host side only, never the
// plugin-side server, its stdout guard or test code; the built-in plugins
// are built like third-party ones, against the SDK alone.

// imports maps each package in the dependencies of pkgs to its imports.
func imports(t *testing.T, args ...string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		deps[f[0]] = f[1:]
	}
	return deps
}

func TestHostLinksNoPluginSideOrTestCode(t *testing.T) {
	deps := imports(t, "./cmd/tthost")
	for _, forbidden := range []string{
		"github.com/tthost/tthost/sdk/plugin",
		"github.com/tthost/tthost/sdk/internal/stdoutguard",
		"github.com/tthost/tthost/sdk/sdktest",
		"github.com/tthost/tthost/sdk/conformance",
	} {
		if _, ok := deps[forbidden]; ok {
			t.Errorf("cmd/tthost links %s", forbidden)
		}
	}
	if _, ok := deps["github.com/tthost/tthost/sdk/client"]; !ok {
		t.Errorf("cmd/tthost does not link sdk/client: the test no longer sees the host side")
	}
	// go-plugin's own testing.go imports testing; no package of ours may.
	for pkg, imps := range deps {
		if strings.HasPrefix(pkg, "github.com/tthost/") {
			for _, imp := range imps {
				if imp == "testing" {
					t.Errorf("%s (linked into cmd/tthost) imports testing", pkg)
				}
			}
		}
	}
}

func TestPluginsImportNothingOfTheHost(t *testing.T) {
	deps := imports(t, "-test", "./plugins/...")
	for pkg := range deps {
		if strings.HasPrefix(pkg, "github.com/tthost/tthost/host/") {
			t.Errorf("a package under plugins/ (or its tests) depends on %s", pkg)
		}
	}
}

// goSumModules reads the module paths a go.sum holds checksums for.
func goSumModules(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mods := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			mods[f[0]+" "+strings.TrimSuffix(f[1], "/go.mod")] = true
		}
	}
	return mods
}

// TestPluginModuleNeedsOnlyTheSDKsDependencies: the tutorial plugin, a
// module of its own like a third party's, needs checksums for nothing but
// the SDK module's dependency graph: nothing of the host's (Redis, TOML,
// cobra, miniredis).
func TestPluginModuleNeedsOnlyTheSDKsDependencies(t *testing.T) {
	sdkSum := goSumModules(t, "../../sdk/go.sum")
	tutorial := goSumModules(t, "../../docs/tutorial/go.sum")
	if len(tutorial) == 0 {
		t.Fatal("docs/tutorial/go.sum is empty")
	}
	for mod := range tutorial {
		if !sdkSum[mod] {
			t.Errorf("docs/tutorial/go.sum holds %s, which is not in the SDK's dependency graph (sdk/go.sum)", mod)
		}
	}
	for _, host := range []string{"github.com/redis/go-redis/v9", "github.com/pelletier/go-toml/v2", "github.com/spf13/cobra", "github.com/alicebob/miniredis/v2"} {
		for mod := range sdkSum {
			if strings.HasPrefix(mod, host+" ") {
				t.Errorf("sdk/go.sum holds the host's dependency %s", mod)
			}
		}
	}
}
