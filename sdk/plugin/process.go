package plugin

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/tthost/tthost/sdk/internal/procscan"
)

// ProcessTag marks every process a backend starts for one session or turn,
// through an environment variable that children inherit. A CLI may start
// processes in sessions of their own (codex runs each tool command with
// setsid), which killing the CLI's process group does not reach; Kill
// finds them by the tag instead, so nothing outlives the session. A
// reused pid never carries the tag, so Kill cannot hit a stranger.
type ProcessTag struct{ entry string }

// ProcessTagEnv is the variable that carries a ProcessTag.
const ProcessTagEnv = "TTHOST_PROCESS_TAG"

// NewProcessTag returns a fresh tag.
func NewProcessTag() ProcessTag {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return ProcessTag{entry: ProcessTagEnv + "=" + hex.EncodeToString(b[:])}
}

// Env is the KEY=VALUE entry to add to the environment of the processes
// the tag marks.
func (t ProcessTag) Env() string { return t.entry }

// Alive lists the live processes carrying the tag.
func (t ProcessTag) Alive() []int { return procscan.FindByEnv(t.entry) }

// Kill SIGKILLs every process carrying the tag until none is left or
// timeout passes, and returns those still alive.
func (t ProcessTag) Kill(timeout time.Duration) []int {
	if t.entry == "" {
		return nil
	}
	return procscan.KillByEnv(t.entry, timeout)
}

// watch watches the tagged processes alive now, to wait for their exit.
func (t ProcessTag) watch() *procscan.Watch {
	if t.entry == "" {
		return procscan.WatchPids(nil, "")
	}
	return procscan.WatchByEnv(t.entry)
}
