package pluginstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tthost/tthost/sdk/sdktest"
)

// A worker discovers with DiscoverUsable: a plugin directory whose lock
// file does not parse loses its installed plugins, with a warning that
// names the file and the fix, instead of failing discovery (which would
// stop every worker of the town). The plugin commands, which use Discover
// and List, still fail on it.
func TestAnUnusableLockFileIsAWarningForWorkersAndAnErrorForCommands(t *testing.T) {
	cases := []struct {
		name, content, fix string
	}{
		{"broken JSON", "{\"format\": 1, \"plugins\": [", "remove it and install the plugins again"},
		{"a newer format", `{"format":9,"plugins":[]}`, "upgrade tthost"},
		{"an entry that escapes the directory", `{"format":1,"plugins":[` + strings.Replace(goodEntry, `"path":"aider/`, `"path":"../`, 1) + `]}`, "by hand"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			builtin, dir := t.TempDir(), t.TempDir()
			for _, d := range []string{builtin, dir} {
				if err := os.WriteFile(filepath.Join(d, "tthost-backend-"+filepath.Base(d)), []byte("#!/bin/sh\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				sdktest.WriteChecksums(t, d, ChecksumFile, "tthost-backend-"+filepath.Base(d))
			}
			lock := filepath.Join(dir, LockFile)
			if err := os.WriteFile(lock, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}

			cands, warnings, err := DiscoverUsable(builtin, dir)
			if err != nil {
				t.Fatalf("DiscoverUsable: %v; want the lock file as a warning", err)
			}
			if len(cands) != 2 {
				t.Errorf("candidates %+v; want the built-in binary and the directory's loose one (its own manifest vouches for it)", cands)
			}
			if len(warnings) != 1 {
				t.Fatalf("warnings %q; want one", warnings)
			}
			for _, want := range []string{lock, "not used", "built-in backends still serve", "tthost plugin verify", "tthost plugin install", c.fix} {
				if !strings.Contains(warnings[0], want) {
					t.Errorf("warning %q does not say %q", warnings[0], want)
				}
			}

			if _, err := Discover(builtin, dir); err == nil || !strings.Contains(err.Error(), lock) {
				t.Errorf("Discover: %v; want an error naming %s", err, lock)
			}
			if _, err := List(builtin, dir); err == nil || !strings.Contains(err.Error(), lock) {
				t.Errorf("List: %v; want an error naming %s", err, lock)
			}
		})
	}
}

// A plugin directory whose checksum manifest is corrupt is left out with a
// warning, like a bad lock file; the built-in directory's own manifest
// must still be good, since nothing could serve without it.
func TestACorruptManifestInThePluginDirectoryIsAWarningForWorkers(t *testing.T) {
	builtin, dir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(builtin, "tthost-backend-oneshot"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sdktest.WriteChecksums(t, builtin, ChecksumFile, "tthost-backend-oneshot")
	manifest := filepath.Join(dir, ChecksumFile)
	if err := os.WriteFile(manifest, []byte("not a checksum line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cands, warnings, err := DiscoverUsable(builtin, dir)
	if err != nil {
		t.Fatalf("DiscoverUsable: %v; want the bad manifest as a warning", err)
	}
	if len(cands) != 1 || cands[0].Name != "oneshot" {
		t.Errorf("candidates %+v; want the built-in one-shot backend", cands)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], dir) || !strings.Contains(warnings[0], "built-in backends still serve") {
		t.Errorf("warnings %q; want one naming %s", warnings, dir)
	}
	if _, _, err := DiscoverUsable(dir, builtin); err == nil {
		t.Error("a corrupt manifest in the built-in directory was tolerated")
	}
}
