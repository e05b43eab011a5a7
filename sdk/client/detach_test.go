package client_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
	"github.com/tthost/tthost/sdk/sdktest"
)

// echoCopy copies the echo test plugin into a directory of the test's
// own, so that a test may replace the file.
func echoCopy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tthost-backend-echo")
	sdktest.CopyFile(t, build(t, "echo"), bin, 0o755)
	return bin
}

// launchWindow launches bin with a reattach window; the cleanup stops it
// unless the test detached from it.
func (e *env) launchWindow(bin string) *client.Plugin {
	e.t.Helper()
	cfg := e.config(bin)
	cfg.ReattachWindow = time.Minute
	cfg.DetachedLog = filepath.Join(e.t.TempDir(), "detached.log")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := client.Launch(ctx, cfg)
	if err != nil {
		e.t.Fatalf("launch %s with a reattach window: %v", bin, err)
	}
	e.t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil {
			e.t.Errorf("stop: %v", err)
		}
	})
	return p
}

func (e *env) reattach(st client.ReattachState, bin string) *client.Plugin {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := client.Reattach(ctx, st, e.config(bin))
	if err != nil {
		e.t.Fatalf("reattach: %v", err)
	}
	e.t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil {
			e.t.Errorf("stop the reattached plugin: %v", err)
		}
	})
	return p
}

func reattachState(t *testing.T, p *client.Plugin) client.ReattachState {
	t.Helper()
	st, ok := p.ReattachState()
	if !ok {
		t.Fatal("a plugin launched with a reattach window has no ReattachState")
	}
	return st
}

// drain reads the events left on a session's channel until it closes.
func drain(t *testing.T, s *client.Session) []sdk.Event {
	t.Helper()
	return readUntil(t, s, func(sdk.Event) bool { return false })
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// environ returns the plugin process's environment entries.
func environ(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\x00")
}

func TestASuccessorHostReattachesAndResumesSessions(t *testing.T) {
	e := newEnv(t)
	bin := echoCopy(t)
	p := e.launchWindow(bin)
	st := reattachState(t, p)
	if st.Pid != p.Pid() || st.Backend != "echo" || st.Path != bin || st.Network != "unix" ||
		st.Checksum != hex.EncodeToString(sdktest.SHA256File(t, bin)) || st.WindowMS != time.Minute.Milliseconds() {
		t.Errorf("reattach state %+v does not describe the plugin (pid %d, %s)", st, p.Pid(), bin)
	}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if parsed, err := client.ParseReattachState(raw); err != nil || !reflect.DeepEqual(parsed, st) {
		t.Fatalf("the state does not survive JSON: %v\n%+v\n%+v", err, parsed, st)
	}
	env := environ(t, st.Pid)
	if !slices.ContainsFunc(env, func(kv string) bool {
		return strings.HasPrefix(kv, sdk.DetachedLogEnv+"=/") && strings.HasSuffix(kv, "/detached.log")
	}) {
		t.Errorf("the plugin's environment lacks %s", sdk.DetachedLogEnv)
	}
	for _, want := range []string{sdk.ReattachWindowEnv + "=60000", "PLUGIN_CLIENT_CERT=" + st.ClientCertPEM} {
		if !slices.Contains(env, want) {
			t.Errorf("the plugin's environment lacks %.60q", want)
		}
	}

	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	readUntil(t, s, is(sdk.EventSessionReady))
	send(t, s, sdk.InputTurn, "before the restart")
	readUntil(t, s, turnDone())
	// A turn runs on while no host is attached.
	send(t, s, sdk.InputTurn, "SLEEP_MS=200")
	seen := readUntil(t, s, is(sdk.EventTurnStarted))

	if err := p.Detach(); err != nil {
		t.Fatalf("detach: %v", err)
	}
	seen = append(seen, drain(t, s)...)
	last := seen[len(seen)-1]
	if last.Kind == sdk.EventExited {
		t.Fatalf("detach ended the session's events with Exited %+v: the session is not over", last.Exited)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done is open after Detach")
	}
	if _, err := p.OpenSession(context.Background(), sdk.SessionConfig{CLIName: "echo"}); !errors.Is(err, client.ErrDetached) {
		t.Errorf("open session after detach: %v, want ErrDetached", err)
	}
	if _, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "x"}); !errors.Is(err, client.ErrDetached) {
		t.Errorf("send after detach: %v, want ErrDetached", err)
	}
	if err := p.Stop(time.Second); err != nil {
		t.Errorf("stop after detach: %v", err)
	}
	if !alive(st.Pid) {
		t.Fatal("the plugin died when its host detached")
	}
	if _, err := os.Stat(st.Addr); err != nil {
		t.Fatalf("the plugin's socket is gone after detach: %v", err)
	}

	// The successor.
	p2 := e.reattach(st, bin)
	if p2.Pid() != st.Pid || p2.Description().Name != "echo" {
		t.Errorf("reattached to pid %d (%s), want pid %d (echo)", p2.Pid(), p2.Description().Name, st.Pid)
	}
	if st2, ok := p2.ReattachState(); !ok || !reflect.DeepEqual(st2, st) {
		t.Errorf("the reattached plugin's state %+v (%v), want the same identity %+v", st2, ok, st)
	}
	resumed, err := p2.ResumeSession(context.Background(), s.ID(), last.Seq)
	if err != nil {
		t.Fatalf("resume session: %v", err)
	}
	after := readUntil(t, resumed, turnDone())
	checkSeqs(t, after, last.Seq+1) // nothing doubled, nothing lost
	for _, ev := range after {
		if ev.Kind == sdk.EventError {
			t.Errorf("unexpected error event %+v", ev.Error)
		}
	}
	send(t, resumed, sdk.InputTurn, "after the restart")
	second := readUntil(t, resumed, turnDone())
	if text, _ := deltaText(second); text != "after the restart" {
		t.Errorf("turn output of the resumed session %q", text)
	}
	fresh := e.open(p2, sdk.SessionConfig{CLIName: "echo"})
	readUntil(t, fresh, is(sdk.EventSessionReady))
	send(t, fresh, sdk.InputTurn, "new session")
	if text, _ := deltaText(readUntil(t, fresh, turnDone())); text != "new session" {
		t.Errorf("turn output of a new session %q", text)
	}
	if _, err := p2.ResumeSession(context.Background(), "no-such-session", 0); !errors.Is(err, sdk.ErrSessionNotFound) {
		t.Errorf("resume an unknown session: %v, want ErrSessionNotFound", err)
	}

	// A third host takes over from the second.
	lastSeq := second[len(second)-1].Seq
	if err := p2.Detach(); err != nil {
		t.Fatalf("detach the reattached plugin: %v", err)
	}
	for _, ev := range drain(t, resumed) {
		lastSeq = ev.Seq
	}
	p3 := e.reattach(st, bin)
	again, err := p3.ResumeSession(context.Background(), s.ID(), lastSeq)
	if err != nil {
		t.Fatalf("resume in the third host: %v", err)
	}
	send(t, again, sdk.InputTurn, "third host")
	evs := readUntil(t, again, turnDone())
	checkSeqs(t, evs, lastSeq+1)
	if text, _ := deltaText(evs); text != "third host" {
		t.Errorf("turn output in the third host %q", text)
	}

	// Stop ends the plugin it did not launch, and everything of it.
	if err := p3.Stop(5 * time.Second); err != nil {
		t.Fatalf("stop the reattached plugin: %v", err)
	}
	if evs := readUntil(t, again, is(sdk.EventExited)); evs[len(evs)-1].Kind != sdk.EventExited {
		t.Errorf("the session did not end with Exited after Stop: %v", kinds(evs))
	}
	if left := e.procs.WaitGone(5 * time.Second); len(left) > 0 {
		t.Errorf("processes left after stopping the reattached plugin: %v", left)
	}
	if p3.ExitState() != nil {
		t.Error("ExitState of a plugin that is not our child is set")
	}
	if _, err := os.Stat(st.SocketDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket directory %s is left: %v", st.SocketDir, err)
	}
}

func TestReattachRefusesWhatItCannotTrust(t *testing.T) {
	e := newEnv(t)
	bin := echoCopy(t)
	p := e.launchWindow(bin)
	st := reattachState(t, p)
	other := reattachState(t, e.launchWindow(echoCopy(t)))
	sum := sdktest.SHA256File(t, bin)

	try := func(st client.ReattachState, checksum []byte) error {
		t.Helper()
		cfg := e.config(bin)
		cfg.Checksum = checksum
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		p, err := client.Reattach(ctx, st, cfg)
		if err == nil {
			_ = p.Detach()
			t.Fatal("reattach succeeded")
		}
		t.Log(err)
		return err
	}
	untouched := func() {
		t.Helper()
		if !alive(st.Pid) {
			t.Fatal("the plugin died")
		}
		s := e.open(p, sdk.SessionConfig{CLIName: "echo"})
		readUntil(t, s, is(sdk.EventSessionReady))
	}

	t.Run("another checksum recorded now", func(t *testing.T) {
		wrong := append([]byte(nil), sum...)
		wrong[0] ^= 0xff
		if err := try(st, wrong); !errors.Is(err, client.ErrChecksumMismatch) {
			t.Errorf("got %v, want ErrChecksumMismatch", err)
		}
		if err := try(st, nil); !errors.Is(err, client.ErrNoChecksum) {
			t.Errorf("no checksum: got %v, want ErrNoChecksum", err)
		}
	})
	t.Run("a pid reused by another process", func(t *testing.T) {
		bad := st
		bad.StartTime++
		if err := try(bad, sum); !errors.Is(err, client.ErrNotOurs) {
			t.Errorf("got %v, want ErrNotOurs", err)
		}
		untouched()
	})
	t.Run("another instance token", func(t *testing.T) {
		bad := st
		bad.Instance = other.Instance
		if err := try(bad, sum); !errors.Is(err, client.ErrNotOurs) {
			t.Errorf("got %v, want ErrNotOurs", err)
		}
		untouched()
	})
	t.Run("another client key", func(t *testing.T) {
		bad := st
		bad.ClientCertPEM, bad.ClientKeyPEM = other.ClientCertPEM, other.ClientKeyPEM
		// The plugin ends the TLS handshake: the client sees the alert or,
		// when the server's close wins, a broken connection.
		err := try(bad, sum)
		var le *client.LaunchError
		if !errors.As(err, &le) || le.Stage != "describe" || errors.Is(err, client.ErrNotOurs) {
			t.Errorf("got %v, want the connection refused at the describe stage", err)
		}
		untouched()
		// The recorded identity is accepted: the key made the difference.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ok, err := client.Reattach(ctx, st, e.config(bin))
		if err != nil {
			t.Fatalf("reattach with the recorded identity: %v", err)
		}
		if err := ok.Detach(); err != nil {
			t.Error(err)
		}
	})
	t.Run("another server certificate", func(t *testing.T) {
		bad := st
		bad.ServerCertDER = other.ServerCertDER
		if err := try(bad, sum); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("got %v, want a certificate failure", err)
		}
		untouched()
	})
	t.Run("a running image that is not the recorded binary", func(t *testing.T) {
		// The file and both records agree, but the process runs another
		// binary: the file was replaced and the record rewritten.
		tamper(t, other.Path)
		otherSum := sdktest.SHA256File(t, other.Path)
		bad := st
		bad.Path = other.Path
		bad.Checksum = hex.EncodeToString(otherSum)
		err := try(bad, otherSum)
		if !errors.Is(err, client.ErrChecksumMismatch) || !strings.Contains(err.Error(), "running plugin") {
			t.Errorf("got %v, want ErrChecksumMismatch about the running image", err)
		}
		untouched()
	})
	t.Run("a binary replaced since the launch", func(t *testing.T) {
		tamper(t, bin)
		err := try(st, sum)
		var le *client.LaunchError
		if !errors.Is(err, client.ErrChecksumMismatch) || !errors.As(err, &le) || le.Stage != "verify" {
			t.Errorf("got %v, want ErrChecksumMismatch at the verify stage (before connecting)", err)
		}
		untouched()
	})
	t.Run("a binary upgraded through the store since the launch", func(t *testing.T) {
		// The file was replaced (above) and the store records its new
		// checksum: an upgrade. The running plugin is still the binary
		// verified at its launch, so it is reattached, as an older version.
		newSum := sdktest.SHA256File(t, bin)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cfg := e.config(bin)
		cfg.Checksum = newSum
		old, err := client.Reattach(ctx, st, cfg)
		if err != nil {
			t.Fatalf("reattach after an upgrade: %v", err)
		}
		if !old.Upgraded() {
			t.Error("Upgraded() is false for a plugin whose installed binary is newer")
		}
		if err := old.Detach(); err != nil {
			t.Error(err)
		}
		untouched()
	})
}

// tamper replaces the file at path with different content, as an
// attacker (or a careless rebuild) would: a new file renamed over it.
func tamper(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, append(b, "tampered"...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestKillDetachedEndsThePluginAndEverythingItStarted(t *testing.T) {
	e := newEnv(t)
	p := e.launchWindow(echoCopy(t))
	st := reattachState(t, p)
	// Each echo session owns a child in a process group of its own: only
	// the instance token finds it.
	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	readUntil(t, s, is(sdk.EventSessionReady))
	send(t, s, sdk.InputTurn, "SLEEP_MS=60000")
	readUntil(t, s, is(sdk.EventTurnStarted))
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	drain(t, s)
	before := e.procs.Alive()
	if len(before) < 2 {
		t.Fatalf("want the plugin and its session's child alive, got %v", before)
	}

	bad := st
	bad.StartTime++
	if err := client.KillDetached(bad, time.Second); !errors.Is(err, client.ErrNotOurs) {
		t.Errorf("kill with a wrong start time: %v, want ErrNotOurs", err)
	}
	if !alive(st.Pid) {
		t.Fatal("KillDetached killed a process that did not match the record")
	}

	if err := client.KillDetached(st, 5*time.Second); err != nil {
		t.Fatalf("kill detached: %v", err)
	}
	if left := e.procs.WaitGone(5 * time.Second); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
	if _, err := os.Stat(st.SocketDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket directory %s is left: %v", st.SocketDir, err)
	}
	// Killing a plugin that is gone is not an error.
	if err := client.KillDetached(st, time.Second); err != nil {
		t.Errorf("kill a plugin that is gone: %v", err)
	}
	if _, err := client.Reattach(context.Background(), st, e.config(st.Path)); !errors.Is(err, sdk.ErrPluginExited) {
		t.Errorf("reattach to a plugin that was killed: %v, want ErrPluginExited", err)
	}
}

func TestDetachNeedsAReattachWindow(t *testing.T) {
	e := newEnv(t)
	p := e.launch(build(t, "echo"))
	if _, ok := p.ReattachState(); ok {
		t.Error("a plugin launched without a window has a ReattachState")
	}
	if err := p.Detach(); err == nil {
		t.Error("detached from a plugin that dies with its host")
	}
	for _, kv := range environ(t, p.Pid()) {
		if strings.HasPrefix(kv, sdk.ReattachWindowEnv+"=") || strings.HasPrefix(kv, sdk.DetachedLogEnv+"=") {
			t.Errorf("a plugin launched without a window got %s", kv)
		}
	}
	s := e.open(p, sdk.SessionConfig{CLIName: "echo"})
	readUntil(t, s, is(sdk.EventSessionReady))
}
