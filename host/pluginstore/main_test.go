package pluginstore

import (
	"path/filepath"
	"testing"

	"github.com/tthost/tthost/sdk/sdktest"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

// pluginDir builds the one-shot plugin into a fresh directory with a
// checksum manifest: the built-in directory of the install tests.
func pluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	oneshot := sdktest.Build(t, "github.com/tthost/tthost/plugins/oneshot", "plugins/tthost-backend-oneshot")
	sdktest.CopyFile(t, oneshot, filepath.Join(dir, "tthost-backend-oneshot"), 0o755)
	sdktest.WriteChecksums(t, dir, ChecksumFile, "tthost-backend-oneshot")
	return dir
}
