package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/tthost/tthost/plugins/internal/sessioncfg"
	"github.com/tthost/tthost/sdk/plugin"

	"github.com/tthost/tthost/sdk"
)

// Option keys (SessionConfig.Options). optionsSchema in backend.go
// documents them for the host; keep the two in step.
const (
	optCodexHome           = "codex_home"
	optApprovalPolicy      = "approval_policy"
	optSandbox             = "sandbox"
	optCommandApproval     = "command_approval"
	optFileChangeApproval  = "file_change_approval"
	optPermissionsApproval = "permissions_approval"
	optApprovalTimeout     = "approval_timeout_ms"
	optModel               = "model"
	optEffort              = "effort"
	optRequestTimeout      = "request_timeout_ms"
)

// Option values. The defaults keep Tinytown's behaviour (never ask, full
// access) so an autonomous worker never stalls on a question nobody answers.
var (
	approvalPolicies = []string{"untrusted", "on-request", "never"}
	sandboxModes     = []string{"read-only", "workspace-write", "danger-full-access"}
	reviewDecisions  = []string{"accept", "acceptForSession", "decline", "cancel"}
	grantDecisions   = []string{"grant", "deny"}
)

const (
	defaultApprovalPolicy = "never"
	defaultSandbox        = "danger-full-access"
	defaultReview         = "accept"
	defaultGrant          = "grant"
	defaultTimeout        = 30 * time.Second
)

// The CLIs this backend serves, and the model overrides Tinytown's
// codex-mini preset implies (`-m gpt-5.4-mini -c model_reasoning_effort="medium"`).
const (
	cliCodex      = "codex"
	cliCodexMini  = "codex-mini"
	miniModel     = "gpt-5.4-mini"
	miniEffort    = "medium"
	logFileSuffix = ".codex.log"
)

// settings is a validated SessionConfig, ready to run.
type settings struct {
	cliName string
	launch  launchSpec
	workdir string
	// env is the app-server's whole environment, as the plugin.Process
	// gives it: plugin.ChildEnv(sessionEnv), then extraEnv (the command's
	// assignments, CODEX_HOME).
	env        []string
	sessionEnv map[string]string
	extraEnv   []string
	logPath    string // "" discards the app-server's stderr
	resumeID   string
	codexHome  string // "" inherits the plugin's CODEX_HOME (or codex's ~/.codex)

	approvalPolicy  string
	sandbox         string // thread/start's kebab-case mode
	commandDecision string
	fileDecision    string
	permissions     string
	approvalTimeout time.Duration
	requestTimeout  time.Duration
	model           string // "" leaves the model to codex's config
	effort          string
}

func validate(cfg sdk.SessionConfig) (settings, error) {
	if cfg.CLIName != cliCodex && cfg.CLIName != cliCodexMini {
		return settings{}, fmt.Errorf("%w: the codex backend serves the CLIs %q and %q, not %q", sdk.ErrInvalidConfig, cliCodex, cliCodexMini, cfg.CLIName)
	}
	if strings.TrimSpace(cfg.Command) == "" {
		return settings{}, fmt.Errorf("%w: the command for CLI %q is empty: configure the CLI's command", sdk.ErrInvalidConfig, cfg.CLIName)
	}
	launch, err := deriveLaunch(cfg.Command)
	if err != nil {
		return settings{}, fmt.Errorf("%w: command %q: %v", sdk.ErrInvalidConfig, cfg.Command, err)
	}
	// Absolute: codex takes it as thread and turn cwd, and a later change
	// of the plugin's own directory must not move it.
	workdir, err := sessioncfg.Workdir(cfg.Workdir, "codex")
	if err != nil {
		return settings{}, err
	}
	s := settings{cliName: cfg.CLIName, launch: launch, workdir: workdir, resumeID: cfg.ResumeID}
	if err := s.applyOptions(cfg.Options); err != nil {
		return settings{}, err
	}
	s.sessionEnv, s.extraEnv = cfg.Env, appServerEnv(launch.env, s.codexHome)
	// Built here, so that an entry exec cannot pass is refused at once.
	if s.env, err = s.process().Environ(); err != nil {
		return settings{}, err
	}
	s.logPath = sessioncfg.LogPath(cfg, logFileSuffix)
	return s, nil
}

// applyOptions reads SessionConfig.Options over the defaults.
func (s *settings) applyOptions(opts map[string]string) error {
	s.approvalPolicy, s.sandbox = defaultApprovalPolicy, defaultSandbox
	s.commandDecision, s.fileDecision, s.permissions = defaultReview, defaultReview, defaultGrant
	s.approvalTimeout, s.requestTimeout = defaultTimeout, defaultTimeout
	if s.cliName == cliCodexMini {
		s.model, s.effort = miniModel, miniEffort
	}
	return sessioncfg.Options(opts, optionKeys(), func(k, v string) (err error) {
		switch k {
		case optCodexHome:
			s.codexHome, err = codexHome(v, s.workdir)
		case optApprovalPolicy:
			s.approvalPolicy, err = sessioncfg.OneOf(v, approvalPolicies)
		case optSandbox:
			s.sandbox, err = sessioncfg.OneOf(v, sandboxModes)
		case optCommandApproval:
			s.commandDecision, err = sessioncfg.OneOf(v, reviewDecisions)
		case optFileChangeApproval:
			s.fileDecision, err = sessioncfg.OneOf(v, reviewDecisions)
		case optPermissionsApproval:
			s.permissions, err = sessioncfg.OneOf(v, grantDecisions)
		case optApprovalTimeout:
			s.approvalTimeout, err = sessioncfg.Whole(v, time.Millisecond)
		case optRequestTimeout:
			s.requestTimeout, err = sessioncfg.Whole(v, time.Millisecond)
		case optModel:
			if v = strings.TrimSpace(v); v != "" {
				s.model = v
			}
		case optEffort:
			if v = strings.TrimSpace(v); v != "" {
				s.effort = v
			}
		}
		return err
	})
}

func optionKeys() []string {
	return []string{optApprovalPolicy, optApprovalTimeout, optCodexHome, optCommandApproval, optEffort,
		optFileChangeApproval, optModel, optPermissionsApproval, optRequestTimeout, optSandbox}
}

// codexHome resolves a codex_home option; a relative path is taken from the
// workdir (the town root), where the town's other paths live too.
func codexHome(v, workdir string) (string, error) {
	if v == "" {
		return "", nil
	}
	if strings.ContainsRune(v, 0) {
		return "", fmt.Errorf("contains NUL")
	}
	if !filepath.IsAbs(v) {
		v = filepath.Join(workdir, v)
	}
	return filepath.Clean(v), nil
}

// process is how the app-server is started (startAppServer adds its
// stderr).
func (s settings) process() plugin.ProcessConfig {
	return plugin.ProcessConfig{
		Args:     s.launch.argv,
		Dir:      s.workdir,
		Env:      s.sessionEnv,
		ExtraEnv: s.extraEnv,
		// A wedged app-server (one that stopped reading its stdin) cannot
		// block a request for longer than its deadline.
		WriteTimeout: s.requestTimeout,
		// An app-server that closed its stdout, or was asked to stop, may
		// take this long to exit before its group is killed.
		Grace: exitGrace,
	}
}

// appServerEnv is what the app-server gets on top of plugin.ChildEnv
// (the plugin's environment without its internal variables, then
// SessionConfig.Env): the assignments written before codex in the command,
// then CODEX_HOME. os/exec keeps the last of duplicate keys, so later
// sources win.
func appServerEnv(fromCommand []string, codexHome string) []string {
	env := append([]string(nil), fromCommand...)
	if codexHome != "" {
		env = append(env, "CODEX_HOME="+codexHome)
	}
	return env
}

// sandboxPolicy is turn/start's sandboxPolicy: a camelCase tagged object,
// unlike thread/start's kebab-case sandbox string (Tinytown sent the string
// here and every real turn/start would be refused:
// docs/compatibility.md#d3).
func sandboxPolicy(mode string) map[string]any {
	switch mode {
	case "read-only":
		return map[string]any{"type": "readOnly", "networkAccess": false}
	case "workspace-write":
		return map[string]any{"type": "workspaceWrite", "writableRoots": []string{}, "networkAccess": false}
	}
	return map[string]any{"type": "dangerFullAccess"}
}
