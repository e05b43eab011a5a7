// Package modroot finds the module root (the directory holding go.mod) and
// the pinned CLIs under its .tools/ for the plugins' test helpers
// (plugins/codex/codextest, plugins/claude/claudetest,
// plugins/acp/acptest). The helpers add the install command (a make
// target) to Tool's error and fail the test with it; they never skip.
package modroot

import (
	"errors"
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

// Tool returns the path of a pinned CLI: the file the environment variable
// envVar names, when envVar is not empty and the variable is set; else the
// first of paths (relative to the module root, such as
// ".tools/claude/node_modules/.bin/claude") that is an executable file.
// The error names the variable or the first path and why it does not do;
// the caller adds how to install the CLI.
func Tool(envVar string, paths ...string) (string, error) {
	if envVar != "" {
		if p := os.Getenv(envVar); p != "" {
			if err := Executable(p); err != nil {
				return "", fmt.Errorf("%s=%s: %w", envVar, p, err)
			}
			return p, nil
		}
	}
	if len(paths) == 0 {
		return "", errors.New("modroot.Tool: no path to look at")
	}
	root, err := Find()
	if err != nil {
		return "", err
	}
	var first error
	for _, rel := range paths {
		p := filepath.Join(root, rel)
		err := Executable(p)
		if err == nil {
			return p, nil
		}
		if first == nil {
			first = fmt.Errorf("no executable at %s: %w", p, err)
		}
	}
	return "", first
}

// Executable returns nil when p is a file (or a link to one) with an
// execute bit, else why it is not.
func Executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}
