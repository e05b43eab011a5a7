package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tthost/tthost/plugins/internal/sessioncfg"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

// Option keys (SessionConfig.Options). optionsSchema in backend.go
// documents them for the host; keep the two in step.
const (
	optModel           = "model"
	optPermissionMode  = "permission_mode"
	optToolApproval    = "tool_approval"
	optApprovalTimeout = "approval_timeout_ms"
	optStallTimeout    = "stall_timeout_secs"
)

const (
	cliClaude     = "claude"
	logFileSuffix = ".claude.log"

	permBypass = "bypass"
	permPrompt = "prompt"

	defaultApprovalTimeout = 30 * time.Second
	// defaultStallTimeout is how long a turn may go without a line from
	// claude before it is taken for hung: 11 minutes, a minute more than
	// the longest a Bash tool call may run silently (its maximum timeout,
	// 10 minutes). While the model streams, or claude retries the API,
	// lines keep coming, so only a real hang stays silent that long.
	defaultStallTimeout = 660 * time.Second
)

var (
	permissionModes = []string{permBypass, permPrompt}
	toolApprovals   = []string{"allow", "deny"}
)

// settings is a validated SessionConfig, ready to run.
type settings struct {
	launch     launchSpec
	workdir    string
	sessionEnv map[string]string
	extraEnv   []string // the command's assignments, then the backend's variables
	logPath    string
	resumeID   string

	model           string
	permissionMode  string
	toolApproval    string
	approvalTimeout time.Duration
	stallTimeout    time.Duration
	// sandboxed: running as root with bypass, IS_SANDBOX=1 was set.
	sandboxed bool
}

func validate(cfg sdk.SessionConfig) (settings, error) {
	if cfg.CLIName != cliClaude {
		return settings{}, fmt.Errorf("%w: the claude backend serves the CLI %q, not %q", sdk.ErrInvalidConfig, cliClaude, cfg.CLIName)
	}
	if strings.TrimSpace(cfg.Command) == "" {
		return settings{}, fmt.Errorf("%w: the command for CLI %q is empty: configure the CLI's command", sdk.ErrInvalidConfig, cfg.CLIName)
	}
	launch, err := deriveLaunch(cfg.Command)
	if err != nil {
		return settings{}, fmt.Errorf("%w: command %q: %v", sdk.ErrInvalidConfig, cfg.Command, err)
	}
	// Absolute: claude keeps its transcripts by working directory, so a
	// resume needs the very same one.
	workdir, err := sessioncfg.Workdir(cfg.Workdir, "claude")
	if err != nil {
		return settings{}, err
	}
	s := settings{launch: launch, workdir: workdir, resumeID: cfg.ResumeID, sessionEnv: cfg.Env, model: launch.model}
	if err := s.applyOptions(cfg.Options); err != nil {
		return settings{}, err
	}
	s.sandboxed = s.permissionMode == permBypass && os.Geteuid() == 0
	s.extraEnv = append(append([]string(nil), launch.env...), cliEnv(s.sandboxed)...)
	// Checked here, so that an entry exec cannot pass is refused at once.
	if _, err := s.process().Environ(); err != nil {
		return settings{}, err
	}
	s.logPath = sessioncfg.LogPath(cfg, logFileSuffix)
	return s, nil
}

// cliEnv is what claude gets on top of the plugin's environment and the
// session's (which can override none of it, being earlier):
//
//   - DISABLE_TELEMETRY=1, DISABLE_AUTOUPDATER=1 and
//     CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1: a worker sends nothing
//     but its model requests (no telemetry, error reports or update
//     checks) and never updates itself under a running session;
//   - CLAUDE_CODE_ENTRYPOINT=sdk-tthost: claude's own tag for the program
//     driving it, as Anthropic's SDKs set it (sdk-py, sdk-ts);
//   - IS_SANDBOX=1 when running as root with permission_mode bypass:
//     claude refuses --dangerously-skip-permissions as root otherwise
//     (docs/protocol.md, "The Claude backend").
func cliEnv(sandboxed bool) []string {
	env := []string{"DISABLE_TELEMETRY=1", "DISABLE_AUTOUPDATER=1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
		"CLAUDE_CODE_ENTRYPOINT=sdk-tthost"}
	if sandboxed {
		env = append(env, "IS_SANDBOX=1")
	}
	return env
}

// applyOptions reads SessionConfig.Options over the defaults.
func (s *settings) applyOptions(opts map[string]string) error {
	s.permissionMode, s.toolApproval = permBypass, "allow"
	s.approvalTimeout, s.stallTimeout = defaultApprovalTimeout, defaultStallTimeout
	return sessioncfg.Options(opts, optionKeys(), func(k, v string) (err error) {
		switch k {
		case optModel:
			if v = strings.TrimSpace(v); v != "" {
				s.model = v
			}
		case optPermissionMode:
			s.permissionMode, err = sessioncfg.OneOf(v, permissionModes)
		case optToolApproval:
			s.toolApproval, err = sessioncfg.OneOf(v, toolApprovals)
		case optApprovalTimeout:
			s.approvalTimeout, err = sessioncfg.Whole(v, time.Millisecond)
		case optStallTimeout:
			s.stallTimeout, err = sessioncfg.Whole(v, time.Second)
		}
		return err
	})
}

func optionKeys() []string {
	return []string{optApprovalTimeout, optModel, optPermissionMode, optStallTimeout, optToolApproval}
}

// args are the flags a session adds to the launch: permissions and the
// model; the session flag is added per start.
func (s settings) args() []string {
	var a []string
	switch s.permissionMode {
	case permBypass:
		a = append(a, "--dangerously-skip-permissions")
	case permPrompt:
		a = append(a, "--permission-prompt-tool", "stdio")
	}
	if s.model != "" {
		a = append(a, "--model="+s.model)
	}
	return a
}

// process is how claude is started with the session flag given.
func (s settings) process(sessionFlag ...string) plugin.ProcessConfig {
	return plugin.ProcessConfig{
		Args:     s.launch.argv(append(s.args(), sessionFlag...)...),
		Dir:      s.workdir,
		Env:      s.sessionEnv,
		ExtraEnv: s.extraEnv,
		// A claude that stopped reading its stdin cannot block a steer or
		// an interrupt for long.
		WriteTimeout: writeTimeout,
		Grace:        exitGrace,
	}
}
