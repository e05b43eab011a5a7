package pluginstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrUnsafePermissions: a plugin binary, its directory or the lock file
// could be changed by someone other than the user who runs tthost, so the
// recorded checksum would protect nothing worth having (whoever may write
// the file may write the lock file's checksum next to it, or race the
// check before exec).
var ErrUnsafePermissions = errors.New("unsafe permissions")

// getuid is os.Getuid; tests that are not root replace it to see a file as
// another user's.
var getuid = os.Getuid

// checkPrivate refuses a path that a user other than the current one (or
// root, who can change anything anyway) could modify: writable by group or
// others, or owned by another user. follow says whether a symbolic link is
// followed (the plugin directory itself may be a link; nothing inside the
// install layout may be one).
func checkPrivate(path string, follow bool) error {
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%w: %s is a symbolic link; tthost installs real files only: reinstall the plugin (`tthost plugin install`)",
			ErrUnsafePermissions, path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by its group or by others (mode %v), so they could replace the plugin: fix it with `chmod go-w %s`",
			ErrUnsafePermissions, path, fi.Mode().Perm(), path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		me := getuid()
		if owner := int(st.Uid); owner != me && owner != 0 {
			return fmt.Errorf("%w: %s is owned by uid %d, not by you (uid %d), so that user could replace the plugin: "+
				"fix it with `chown %d %s` (as root), or remove it and install the plugin again",
				ErrUnsafePermissions, path, owner, me, me, path)
		}
	}
	return nil
}

// checkInstalledPath checks an installed plugin's binary and every
// directory from the plugin directory down to it, and the lock file that
// records its checksum.
func checkInstalledPath(dir, rel string) error {
	if err := checkPrivate(dir, true); err != nil {
		return err
	}
	if err := checkLockFilePerms(dir); err != nil {
		return err
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	p := dir
	for _, part := range parts {
		p = filepath.Join(p, part)
		if err := checkPrivate(p, false); err != nil {
			return err
		}
	}
	return nil
}

// checkLockFilePerms checks the lock file when there is one.
func checkLockFilePerms(dir string) error {
	err := checkPrivate(filepath.Join(dir, LockFile), false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// CheckSafe refuses to run an installed plugin that someone else could
// have replaced (ErrUnsafePermissions, with the command that fixes it).
// Loose binaries listed in a checksum manifest (the built-in plugins next
// to tthost) are not checked: they sit wherever tthost itself was
// installed, with its permissions.
func (c Candidate) CheckSafe() error {
	if c.Installed == nil {
		return nil
	}
	err := checkInstalledPath(c.Dir, c.Installed.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // Launch explains a missing binary better
	}
	if err != nil {
		return fmt.Errorf("refusing to run plugin %s %s: %w", c.Name, c.Installed.Version, err)
	}
	return nil
}
