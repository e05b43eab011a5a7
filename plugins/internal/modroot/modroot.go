// Package modroot finds the module root (the directory holding go.mod) for
// the plugins' test helpers, which find the pinned CLIs under its .tools/.
package modroot

import (
	"fmt"
	"os"
	"path/filepath"
)

// Find returns the directory holding go.mod, found by walking up from the
// working directory (a test's working directory is its package).
func Find() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod in %s or any parent", wd)
		}
	}
}
