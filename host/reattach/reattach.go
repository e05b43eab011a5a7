// Package reattach keeps the file a tthost host writes so that its
// successor can reattach to the backend plugins it leaves running.
//
// A host (`tthost serve`, an agent loop) that launched its plugins with a
// reattach window writes, before it exits or detaches, which plugins run
// (their client.ReattachState: pid, socket, checksum, mTLS identity) and
// which agent sessions live in them. The next host of the same owner
// loads the file, calls client.Reattach for each plugin and
// client.Plugin.ResumeSession for each session, and removes the file once
// it took over. The file holds the host's private TLS key: it is written
// 0600 in a 0700 directory, and Load refuses a file anyone else could
// read or have written.
package reattach

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tthost/tthost/sdk/client"
)

// Version is the version of the file's format this package writes and
// reads.
const Version = 1

// maxFileBytes bounds what Load reads: a state file holds a few plugins
// and sessions.
const maxFileBytes = 16 << 20

// State is what a host leaves for its successor.
type State struct {
	// Version is the file format's version (Version).
	Version int `json:"version"`
	// Owner names the host role whose successor may use the file, e.g.
	// "serve:<host-id>" or "agent-loop:<agent-id>".
	Owner string `json:"owner"`
	// HostPID is the pid of the host that wrote the file.
	HostPID int `json:"host_pid"`
	// Written is when the file was written.
	Written time.Time `json:"written"`
	// Plugins are the running plugins by instance key (the host's name
	// for one running plugin; sessions refer to it).
	Plugins map[string]client.ReattachState `json:"plugins"`
	// Sessions are the agent sessions open in those plugins.
	Sessions []Session `json:"sessions"`
}

// Session is one agent's session in a running plugin.
type Session struct {
	AgentID   string `json:"agent_id"`
	AgentName string `json:"agent_name"`
	// Instance is the key of the session's plugin in State.Plugins.
	Instance string `json:"instance"`
	// Backend is the plugin's backend name (its ReattachState's Backend).
	Backend   string `json:"backend"`
	SessionID string `json:"session_id"`
	// LastSeq is the seq of the last event the host read from the
	// session: the successor resumes after it (ResumeSession). Written
	// after Detach, it is final.
	LastSeq uint64 `json:"last_seq"`
}

// Path is where the host role owner keeps its state in the town at
// townDir: <townDir>/.tt/tthost/reattach/<owner>.json, the owner made
// safe for a file name (anything but letters, digits, '-' and '_'
// becomes '_', and a short hash of the owner keeps such names apart).
func Path(townDir, owner string) string {
	return filepath.Join(townDir, ".tt", "tthost", "reattach", fileName(owner)+".json")
}

func fileName(owner string) string {
	var b strings.Builder
	for _, r := range owner {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name != owner || name == "" {
		sum := sha256.Sum256([]byte(owner))
		name += "-" + hex.EncodeToString(sum[:4])
	}
	return name
}

// Save writes st to path atomically (a temp file, fsync, rename): a
// reader sees the old file or the new one, never a part. The directory is
// created 0700 and the file is 0600.
func Save(path string, st State) error {
	if err := st.Validate(); err != nil {
		return fmt.Errorf("save the reattach state %s: %w", path, err)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save the reattach state %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save the reattach state: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil { // a directory made before, more open
		return fmt.Errorf("save the reattach state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // created 0600
	if err != nil {
		return fmt.Errorf("save the reattach state: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("save the reattach state %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("save the reattach state %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("save the reattach state %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save the reattach state %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save the reattach state %s: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil { // make the rename durable
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Load reads and validates the state at path. A missing file is an error
// wrapping fs.ErrNotExist (the predecessor left nothing to reattach). A
// file that is not a regular file owned by this user, or that group or
// others may read or write, is refused: it holds a private key, and a
// file someone else could have written could point the host at their
// process.
func Load(path string) (State, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return State{}, fmt.Errorf("the reattach state %s is a symbolic link; refusing it: remove it (the host then launches its plugins anew)", path)
		}
		return State{}, fmt.Errorf("the reattach state: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return State{}, fmt.Errorf("the reattach state: %w", err)
	}
	if err := checkFile(path, fi, os.Getuid()); err != nil {
		return State{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return State{}, fmt.Errorf("read the reattach state %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return State{}, fmt.Errorf("the reattach state %s is larger than %d bytes; it is not one this host wrote: remove it", path, maxFileBytes)
	}
	st, err := ParseState(data)
	if err != nil {
		return State{}, fmt.Errorf("the reattach state %s: %w; remove it (the host then launches its plugins anew, "+
			"and plugins left running stop when their reattach window passes)", path, err)
	}
	return st, nil
}

// checkFile refuses a state file that is not a regular file owned by uid
// and private to it.
func checkFile(path string, fi fs.FileInfo, uid int) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("the reattach state %s is not a regular file (%v); remove it", path, fi.Mode().Type())
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != uid {
		return fmt.Errorf("the reattach state %s is owned by user %d, not by this user (%d); refusing it: "+
			"remove it, and run every tthost host of this town as one user", path, sys.Uid, uid)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("the reattach state %s has mode %v: group or others may read or write it, and it holds a private key; "+
			"refusing it: remove it (the host then launches its plugins anew), and find out who changed its mode", path, perm)
	}
	return nil
}

// Remove deletes the state at path; a missing file is not an error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the reattach state: %w", err)
	}
	return nil
}

// ParseState parses a state file's contents and validates every field.
func ParseState(data []byte) (State, error) {
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, fmt.Errorf("not valid JSON: %v", err)
	}
	if err := st.Validate(); err != nil {
		return State{}, err
	}
	if st.Plugins == nil {
		st.Plugins = map[string]client.ReattachState{}
	}
	return st, nil
}

// Validate checks every field: the version, the owner, the host's pid,
// the time, every plugin's ReattachState, and that every session names a
// plugin of the file and its backend.
func (st State) Validate() error {
	switch {
	case st.Version != Version:
		return fmt.Errorf("version %d; this host reads version %d (the file was written by another tthost release)", st.Version, Version)
	case st.Owner == "" || len(st.Owner) > 256:
		return fmt.Errorf("owner %q: want 1 to 256 bytes", st.Owner)
	case st.HostPID <= 0:
		return fmt.Errorf("host_pid %d", st.HostPID)
	case st.Written.IsZero():
		return errors.New("no written time")
	}
	for key, p := range st.Plugins {
		if key == "" {
			return errors.New("a plugin with an empty instance key")
		}
		if err := p.Validate(); err != nil {
			return fmt.Errorf("plugin %q: %w", key, err)
		}
	}
	for i, s := range st.Sessions {
		if s.AgentID == "" || s.AgentName == "" || s.SessionID == "" || s.Instance == "" || s.Backend == "" {
			return fmt.Errorf("session %d (%+v): agent_id, agent_name, instance, backend and session_id are all required", i, s)
		}
		p, ok := st.Plugins[s.Instance]
		if !ok {
			return fmt.Errorf("session %d (agent %s) names plugin %q, which the file does not list", i, s.AgentName, s.Instance)
		}
		if p.Backend != s.Backend {
			return fmt.Errorf("session %d (agent %s) names backend %q, but plugin %q is %q", i, s.AgentName, s.Backend, s.Instance, p.Backend)
		}
	}
	return nil
}
