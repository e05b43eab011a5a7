package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

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
	maxTimeout            = 24 * time.Hour
	logFileSuffix         = ".acp.log"
)

// cliGemini is the CLI this backend serves by name; any other CLI is
// served when the town's config chooses the backend for it.
const cliGemini = "gemini"

// settings is a validated SessionConfig, ready to run.
type settings struct {
	cliName  string
	argv     []string // the agent's command line (sh -c for anything but a plain one)
	gemini   bool     // the agent is Gemini CLI (its quirks apply)
	workdir  string
	env      map[string]string // SessionConfig.Env
	extraEnv []string          // added on top (GEMINI_CLI_NO_RELAUNCH)
	logPath  string
	resumeID string

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
	if cfg.Workdir == "" {
		return settings{}, fmt.Errorf("%w: workdir is empty: give the directory the agent runs in", sdk.ErrInvalidConfig)
	}
	// Absolute: ACP requires an absolute cwd in session/new and
	// session/load.
	workdir, err := filepath.Abs(cfg.Workdir)
	if err != nil {
		return settings{}, fmt.Errorf("%w: workdir %q: %v", sdk.ErrInvalidConfig, cfg.Workdir, err)
	}
	if fi, err := os.Stat(workdir); err != nil {
		return settings{}, fmt.Errorf("%w: workdir: %v", sdk.ErrInvalidConfig, err)
	} else if !fi.IsDir() {
		return settings{}, fmt.Errorf("%w: workdir %s is not a directory", sdk.ErrInvalidConfig, workdir)
	}
	argv, gemini := agentCommand(cfg.CLIName, cfg.Command)
	s := settings{cliName: cfg.CLIName, argv: argv, gemini: gemini, workdir: workdir, env: cfg.Env, resumeID: cfg.ResumeID}
	if gemini {
		// Without it gemini re-execs itself as a child node process; the
		// group kill reaches it anyway, but one process is simpler.
		s.extraEnv = append(s.extraEnv, "GEMINI_CLI_NO_RELAUNCH=true")
	}
	if err := s.applyOptions(cfg.Options); err != nil {
		return settings{}, err
	}
	// Built here, so that an entry exec cannot pass is refused at once.
	if _, err := s.process().Environ(); err != nil {
		return settings{}, err
	}
	if cfg.LogDir != "" {
		s.logPath = filepath.Join(cfg.LogDir, logName(cfg)+logFileSuffix)
	}
	return s, nil
}

// agentCommand is the agent's command line: the configured command, run
// by sh -c, with `--acp` added for Gemini CLI when the command is
// Tinytown's preset (`gemini` and its flags, without --acp or the
// deprecated --experimental-acp). gemini reports whether the agent is
// Gemini CLI.
func agentCommand(cli, command string) (argv []string, gemini bool) {
	words := strings.Fields(command)
	first := ""
	for _, w := range words {
		if !strings.Contains(w, "=") || strings.HasPrefix(w, "-") {
			first = w
			break
		}
	}
	gemini = filepath.Base(first) == "gemini"
	if gemini && cli == cliGemini && !slices.Contains(words, "--acp") && !slices.Contains(words, "--experimental-acp") {
		command += " --acp"
	}
	if !strings.ContainsAny(command, ";&|\n") {
		// The agent itself leads the process group, not a shell.
		command = "exec " + command
	}
	return []string{"sh", "-c", command}, gemini
}

// applyOptions reads SessionConfig.Options over the defaults.
func (s *settings) applyOptions(opts map[string]string) error {
	s.steerMode, s.permission = steerQueue, permAllow
	s.approvalTimeout, s.requestTimeout, s.stallTimeout = defaultApproval, defaultRequestTimeout, defaultStall
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		v := opts[k]
		var err error
		switch k {
		case optSteerMode:
			s.steerMode, err = oneOf(v, steerModes)
		case optAuthMethod:
			s.authMethod = strings.TrimSpace(v)
		case optPermission:
			s.permission, err = oneOf(v, permissions)
		case optApprovalTimeout:
			s.approvalTimeout, err = millis(v)
		case optRequestTimeout:
			s.requestTimeout, err = millis(v)
		case optStallTimeout:
			s.stallTimeout, err = millis(v)
		default:
			return fmt.Errorf("%w: unknown option %q (known: %s)", sdk.ErrInvalidConfig, k, strings.Join(optionKeys(), ", "))
		}
		if err != nil {
			return fmt.Errorf("%w: option %s: %v", sdk.ErrInvalidConfig, k, err)
		}
	}
	return nil
}

func optionKeys() []string {
	return []string{optApprovalTimeout, optAuthMethod, optPermission, optRequestTimeout, optStallTimeout, optSteerMode}
}

func oneOf(v string, allowed []string) (string, error) {
	if slices.Contains(allowed, v) {
		return v, nil
	}
	return "", fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

func millis(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 || time.Duration(n)*time.Millisecond > maxTimeout {
		return 0, fmt.Errorf("%q is not a whole number of milliseconds between 1 and %d", v, maxTimeout.Milliseconds())
	}
	return time.Duration(n) * time.Millisecond, nil
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

// logName names the session's stderr log after its agent.
func logName(cfg sdk.SessionConfig) string {
	name := cfg.AgentName
	if name == "" {
		name = cfg.AgentID
	}
	if name == "" {
		name = "session"
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, name)
}
