package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tthost/tthost/plugins/internal/sessioncfg"
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
)

// Option keys (SessionConfig.Options). optionsSchema in backend.go
// documents them for the host; keep the two in step.
const (
	optSteerMode       = "steer_mode"
	optAuthMethod      = "auth_method"
	optPermission      = "permission"
	optApprovalTimeout = "approval_timeout_ms"
	optRequestTimeout  = "request_timeout_ms"
	optStallTimeout    = "stall_timeout_ms"
)

// Steer modes: ACP v1 has no steer, so urgent input is emulated.
const (
	steerQueue   = "queue"   // prompted right after the running prompt, in the same turn
	steerRestart = "restart" // the running prompt is cancelled and prompted again, merged
)

// Permission answers, mapped to the option kinds the agent offers.
const (
	permAllow       = "allow"        // allow_once (else allow_always)
	permAllowAlways = "allow_always" // allow_always (else allow_once)
	permReject      = "reject"       // reject_once (else reject_always)
)

var (
	steerModes  = []string{steerQueue, steerRestart}
	permissions = []string{permAllow, permAllowAlways, permReject}
)

const (
	defaultRequestTimeout = 60 * time.Second // gemini takes 2-3 s to initialize, more on a busy machine
	defaultApproval       = 30 * time.Second
	defaultStall          = 10 * time.Minute
	logFileSuffix         = ".acp.log"
)

// cliGemini is the CLI this backend serves by name; any other CLI is
// served when the town's config chooses the backend for it.
const cliGemini = "gemini"

// settings is a validated SessionConfig, ready to run.
type settings struct {
	cliName   string
	argv      []string // the agent's command line (sh -c for anything but a plain one)
	gemini    bool     // the agent is Gemini CLI (its quirks apply)
	claudeACP bool     // the agent is claude-code-acp (its quirks apply)
	workdir   string
	env       map[string]string // SessionConfig.Env
	extraEnv  []string          // added on top (GEMINI_CLI_NO_RELAUNCH, IS_SANDBOX)
	// rootNote, when not empty, is said once per session as a non-fatal
	// root_sandbox notice (claudeACPRoot); sandboxSet: IS_SANDBOX=1 was
	// added for claude-code-acp.
	rootNote   string
	sandboxSet bool
	logPath    string
	resumeID   string

	steerMode       string
	authMethod      string
	permission      string
	approvalTimeout time.Duration
	requestTimeout  time.Duration
	stallTimeout    time.Duration
}

func validate(cfg sdk.SessionConfig) (settings, error) {
	if strings.TrimSpace(cfg.CLIName) == "" {
		return settings{}, fmt.Errorf("%w: no CLI name: the ACP backend needs the CLI the agent is registered with", sdk.ErrInvalidConfig)
	}
	if strings.TrimSpace(cfg.Command) == "" {
		return settings{}, fmt.Errorf("%w: the command for CLI %q is empty: configure the ACP agent's command (e.g. `gemini --acp`, `claude-code-acp`)", sdk.ErrInvalidConfig, cfg.CLIName)
	}
	// Absolute: ACP requires an absolute cwd in session/new and
	// session/load.
	workdir, err := sessioncfg.Workdir(cfg.Workdir, "the agent")
	if err != nil {
		return settings{}, err
	}
	argv, agent := agentCommand(cfg.CLIName, cfg.Command)
	s := settings{cliName: cfg.CLIName, argv: argv, gemini: agent == agentGemini, claudeACP: agent == agentClaudeACP,
		workdir: workdir, env: cfg.Env, resumeID: cfg.ResumeID}
	switch agent {
	case agentGemini:
		// Without it gemini re-execs itself as a child node process; the
		// group kill reaches it anyway, but one process is simpler.
		s.extraEnv = append(s.extraEnv, "GEMINI_CLI_NO_RELAUNCH=true")
	case agentClaudeACP:
		s.sandboxSet, s.rootNote = claudeACPRoot(os.Geteuid(), cfg.Env)
		if s.sandboxSet {
			s.extraEnv = append(s.extraEnv, "IS_SANDBOX=1")
		}
	}
	if err := s.applyOptions(cfg.Options); err != nil {
		return settings{}, err
	}
	// Built here, so that an entry exec cannot pass is refused at once.
	if _, err := s.process().Environ(); err != nil {
		return settings{}, err
	}
	s.logPath = sessioncfg.LogPath(cfg, logFileSuffix)
	return s, nil
}

// Agents whose quirks the backend knows (agentCommand).
const (
	agentOther     = ""
	agentGemini    = "gemini"          // Gemini CLI
	agentClaudeACP = "claude-code-acp" // Zed's claude-code-acp (also published as claude-agent-acp)
)

// agentCommand is the agent's command line: the configured command, run
// by sh -c, with `--acp` added for Gemini CLI when the command is
// Tinytown's preset (`gemini` and its flags, without --acp or the
// deprecated --experimental-acp). agent says which known agent it is:
// the program (the first word that is not a variable assignment) named
// gemini is Gemini CLI; a word naming claude-code-acp or claude-agent-acp
// (a path, or an npm package such as @zed-industries/claude-code-acp@0.16.2
// after npx) is claude-code-acp.
func agentCommand(cli, command string) (argv []string, agent string) {
	words := strings.Fields(command)
	first := ""
	for _, w := range words {
		if !strings.Contains(w, "=") || strings.HasPrefix(w, "-") {
			first = w
			break
		}
	}
	switch {
	case filepath.Base(first) == "gemini":
		agent = agentGemini
	case slices.ContainsFunc(words, isClaudeACP):
		agent = agentClaudeACP
	}
	if agent == agentGemini && cli == cliGemini && !slices.Contains(words, "--acp") && !slices.Contains(words, "--experimental-acp") {
		command += " --acp"
	}
	if !strings.ContainsAny(command, ";&|\n") {
		// The agent itself leads the process group, not a shell.
		command = "exec " + command
	}
	return []string{"sh", "-c", command}, agent
}

// isClaudeACP reports whether a command word names claude-code-acp: its
// launcher (by any path) or its npm package, with or without a version.
func isClaudeACP(word string) bool {
	name, _, _ := strings.Cut(filepath.Base(word), "@")
	return name == "claude-code-acp" || name == "claude-agent-acp"
}

// applyOptions reads SessionConfig.Options over the defaults.
func (s *settings) applyOptions(opts map[string]string) error {
	s.steerMode, s.permission = steerQueue, permAllow
	s.approvalTimeout, s.requestTimeout, s.stallTimeout = defaultApproval, defaultRequestTimeout, defaultStall
	return sessioncfg.Options(opts, optionKeys(), func(k, v string) (err error) {
		switch k {
		case optSteerMode:
			s.steerMode, err = sessioncfg.OneOf(v, steerModes)
		case optAuthMethod:
			s.authMethod = strings.TrimSpace(v)
		case optPermission:
			s.permission, err = sessioncfg.OneOf(v, permissions)
		case optApprovalTimeout:
			s.approvalTimeout, err = sessioncfg.Whole(v, time.Millisecond)
		case optRequestTimeout:
			s.requestTimeout, err = sessioncfg.Whole(v, time.Millisecond)
		case optStallTimeout:
			s.stallTimeout, err = sessioncfg.Whole(v, time.Millisecond)
		}
		return err
	})
}

func optionKeys() []string {
	return []string{optApprovalTimeout, optAuthMethod, optPermission, optRequestTimeout, optStallTimeout, optSteerMode}
}

// process is how the agent is started (startAgent adds its stderr).
func (s settings) process() plugin.ProcessConfig {
	return plugin.ProcessConfig{
		Args:     s.argv,
		Dir:      s.workdir,
		Env:      s.env,
		ExtraEnv: s.extraEnv,
		// A wedged agent (one that stopped reading its stdin) cannot block
		// a request for longer than its deadline.
		WriteTimeout: s.requestTimeout,
		Grace:        exitGrace,
	}
}

// getenv is a variable of the agent's environment: the session's Env,
// else the plugin's own (which the agent inherits).
func (s settings) getenv(key string) string {
	if v, ok := s.env[key]; ok {
		return v
	}
	return os.Getenv(key)
}
