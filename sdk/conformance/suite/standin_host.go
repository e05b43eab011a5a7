package suite

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
)

// The stand-in host is what no_process_after_host_kill kills. It has to be
// a process of its own, and the suite runs where no Go toolchain may be
// (`tthost plugin conformance`), so it is this very executable started
// again with standInHostEnv set: any binary that imports this package (a
// plugin's test binary, tthost) turns into the stand-in host at init.
const standInHostEnv = "TTHOST_CONFORMANCE_STAND_IN_HOST"

// What the stand-in host prints on stdout: "READY <plugin pid>" once the
// plugin runs a long turn, or "FAILED <why>".
const (
	hostReady  = "READY"
	hostFailed = "FAILED"
)

// hostConfig is the stand-in host's job, as JSON in standInHostEnv.
type hostConfig struct {
	Plugin    string
	Checksum  string // hex
	PluginEnv []string
	Session   sdk.SessionConfig
	Prompt    string
	Timeout   time.Duration
}

func init() {
	if job, ok := os.LookupEnv(standInHostEnv); ok {
		// Not for the plugin and its children: they must not become hosts.
		_ = os.Unsetenv(standInHostEnv)
		os.Exit(standInHost(job, os.Stdout, os.Stderr))
	}
}

// standInHost launches the plugin, opens a session, starts a long turn,
// says READY and waits to be killed. It returns the exit status.
func standInHost(job string, out, errOut io.Writer) int {
	var cfg hostConfig
	if err := json.Unmarshal([]byte(job), &cfg); err != nil {
		fmt.Fprintf(out, "%s bad job %s: %v\n", hostFailed, standInHostEnv, err)
		return 2
	}
	sum, err := hex.DecodeString(cfg.Checksum)
	if err != nil {
		fmt.Fprintf(out, "%s bad checksum: %v\n", hostFailed, err)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "stand-in-host", Output: errOut, Level: hclog.Info})
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	p, err := client.Launch(ctx, client.Config{Path: cfg.Plugin, Checksum: sum, Env: cfg.PluginEnv, Logger: log, HostVersion: "conformance-stand-in"})
	if err != nil {
		fmt.Fprintf(out, "%s %v\n", hostFailed, oneLine(err))
		return 1
	}
	if err := startLongTurn(ctx, p, cfg); err != nil {
		fmt.Fprintf(out, "%s %s\n", hostFailed, oneLine(err))
		_ = p.Stop(stopGrace)
		return 1
	}
	fmt.Fprintf(out, "%s %d\n", hostReady, p.Pid())
	// The suite SIGKILLs this process; a polite stop is for a suite that
	// is itself interrupted.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	_ = p.Stop(stopGrace)
	return 0
}

func startLongTurn(ctx context.Context, p *client.Plugin, cfg hostConfig) error {
	s, err := p.OpenSession(ctx, cfg.Session)
	if err != nil {
		return fmt.Errorf("OpenSession: %w", err)
	}
	if err := awaitEvent(ctx, s, sdk.EventSessionReady, ""); err != nil {
		return err
	}
	d, err := s.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: cfg.Prompt})
	if err != nil {
		return fmt.Errorf("Send(long turn): %w", err)
	}
	return awaitEvent(ctx, s, sdk.EventTurnStarted, d.TurnID)
}

func awaitEvent(ctx context.Context, s *client.Session, kind sdk.EventKind, turnID string) error {
	for {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				return fmt.Errorf("the session's events ended before %s", kind)
			}
			if ev.Kind == kind && (turnID == "" || ev.TurnID == turnID) {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("no %s: %w", kind, ctx.Err())
		}
	}
}

func oneLine(err error) string {
	b, _ := json.Marshal(err.Error())
	return string(b)
}
