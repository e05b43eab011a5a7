package pluginstore

import (
	"path/filepath"
	"strings"
	"testing"
)

const goodEntry = `{"name":"aider","version":"1.2.0","protocol":1,"os":"linux","arch":"amd64",
 "path":"aider/1.2.0/tthost-backend-aider_v1.2.0_p1_linux_amd64",
 "sha256":"7C6DF4E242F72483FF4604C575791000B60D40DCA6170F2E81BFAA1042579219","sdk_version":"0.1.0",
 "clis":[{"name":"aider","capabilities":["persistent"]},{"name":"*","capabilities":null}],
 "installed_at":"2026-01-02T03:04:05Z","source":"/tmp/tthost-backend-aider"}`

// FuzzParseLock: the lock file is outside input (anyone may edit it). Any
// content parses to entries that are safe to use, or fails with an error
// naming the file; it never panics.
func FuzzParseLock(f *testing.F) {
	f.Add(`{"format":1,"plugins":[` + goodEntry + `]}`)
	f.Add(`{"format":1,"plugins":[]}`)
	f.Add(`{"format":2}`)
	f.Add(`{"format":1,"plugins":[{"name":"x","path":"../../etc/passwd"}]}`)
	f.Add("")
	f.Add("{\n\"format\": 1,\n\"plugins\": [,]}")
	f.Add(`[1,2,3]`)
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join("/srv/plugins", LockFile)
		l, err := parseLock(path, []byte(content))
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the lock file: %v", err)
			}
			return
		}
		for _, e := range l.Plugins {
			if !ValidName(e.Name) || !filepath.IsLocal(e.Path) || len(e.Checksum()) != 32 || e.Protocol < 1 ||
				!strings.HasPrefix(filepath.Base(e.Path), BinaryPrefix) {
				t.Fatalf("accepted an unsafe entry %+v", e)
			}
		}
	})
}

func TestParseLockExplainsWhatIsWrong(t *testing.T) {
	path := filepath.Join("/srv/plugins", LockFile)
	entry := func(replace, with string) string {
		return `{"format":1,"plugins":[` + strings.Replace(goodEntry, replace, with, 1) + `]}`
	}
	cases := []struct {
		name, content, says string
	}{
		{"broken JSON names the line", "{\n\"format\": 1,\n\"plugins\": [,]}", "line 3"},
		{"a newer format", `{"format":2,"plugins":[]}`, "upgrade tthost"},
		{"no format", `{"plugins":[]}`, `no "format"`},
		{"a path out of the directory", entry(`"path":"aider/`, `"path":"../`), "inside the plugin directory"},
		{"an absolute path", entry(`"path":"aider/`, `"path":"/`), "inside the plugin directory"},
		{"a path to another kind of file", entry(`tthost-backend-aider_v1.2.0`, `evil`), "does not name a tthost-backend-"},
		{"a short checksum", entry(`"sha256":"7C6D`, `"sha256":"`), "64 hex digits"},
		{"a bad name", entry(`"name":"aider"`, `"name":"Aider"`), "invalid plugin name"},
		{"a version with a v", entry(`"version":"1.2.0"`, `"version":"v1.2.0"`), "semantic version"},
		{"no protocol", entry(`"protocol":1`, `"protocol":0`), "invalid protocol"},
		{"the same version twice", `{"format":1,"plugins":[` + goodEntry + "," + goodEntry + `]}`, "listed twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseLock(path, []byte(c.content))
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err = %v; want one naming %s and saying %q", err, path, c.says)
			}
		})
	}
	l, err := parseLock(path, []byte(`{"format":1,"plugins":[`+goodEntry+`]}`))
	if err != nil || len(l.Plugins) != 1 || l.Plugins[0].SHA256 != strings.ToLower(l.Plugins[0].SHA256) {
		t.Fatalf("a good lock: %+v, %v", l, err)
	}
	if d := l.Plugins[0].Description(); d.Name != "aider" || len(d.CLIs) != 2 || !d.CLIs[0].Has("persistent") {
		t.Errorf("description from the lock: %+v", d)
	}
}

func TestVersionsSortTheSemanticWay(t *testing.T) {
	ordered := []string{"0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0", "10.0.0"}
	for i := range ordered {
		for j := range ordered {
			want := cmpInt(i, j)
			if got := compareVersions(ordered[i], ordered[j]); got != want {
				t.Errorf("compare(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	if compareVersions("1.0.0+build.1", "1.0.0+build.2") != 0 {
		t.Error("build metadata counted")
	}
	for _, bad := range []string{"", "dev", "1.2", "01.2.3", "1.2.3-", "1.2.3/../x", "v"} {
		if _, err := NormalizeVersion(bad); err == nil {
			t.Errorf("NormalizeVersion(%q) accepted", bad)
		}
	}
	if v, err := NormalizeVersion("v1.2.3-rc.1+git.abc"); err != nil || v != "1.2.3-rc.1+git.abc" {
		t.Errorf("NormalizeVersion = %q, %v", v, err)
	}
}
