package testenv

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/tthost/tthost/sdk/sdktest"
)

var manifestOnce sync.Once

// Binaries builds tthost and the built-in plugins side by side, with the
// checksum manifest the host verifies plugins against: what `make build`
// puts in bin/. It builds once per test process (sdktest.Build) and
// returns the directory.
func Binaries(t testing.TB) string {
	t.Helper()
	tt := sdktest.Build(t, "github.com/tthost/tthost/cmd/tthost", "bin/tthost")
	sdktest.Build(t, "github.com/tthost/tthost/plugins/oneshot", "bin/tthost-backend-oneshot")
	sdktest.Build(t, "github.com/tthost/tthost/plugins/codex", "bin/tthost-backend-codex")
	sdktest.Build(t, "github.com/tthost/tthost/plugins/claude", "bin/tthost-backend-claude")
	sdktest.Build(t, "github.com/tthost/tthost/plugins/acp", "bin/tthost-backend-acp")
	dir := filepath.Dir(tt)
	manifestOnce.Do(func() {
		sdktest.WriteChecksums(t, dir, "tthost-plugins.sha256", "tthost-backend-oneshot", "tthost-backend-codex", "tthost-backend-claude", "tthost-backend-acp")
	})
	return dir
}
