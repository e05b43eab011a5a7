package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/tthost/tthost/sdk/plugin"

	"github.com/tthost/tthost/plugins/internal/buildinfo"
	"github.com/tthost/tthost/plugins/internal/sessioncfg"
	"github.com/tthost/tthost/sdk"
)

// backend is stateless: every session owns its turns and processes, and the
// SDK closes all sessions before the plugin exits, so there is nothing to
// shut down beyond them (no sdk.Shutdowner).
type backend struct{}

func newBackend() *backend { return &backend{} }

// optionsSchema documents SessionConfig.Options for the host (draft 2020-12).
const optionsSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "prompt_mode": {
      "description": "How the prompt reaches the CLI. auto: auggie gets --instruction-file, aider gets --message-file, every other CLI reads it on stdin.",
      "type": "string",
      "enum": ["auto", "stdin", "instruction-file", "message-file"],
      "default": "auto"
    }
  },
  "additionalProperties": false
}`

func (b *backend) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		Name:    "oneshot",
		Version: buildinfo.Version,
		Summary: "runs any coding CLI once per turn (sh -c), the fallback for CLIs without a persistent backend",
		CLIs: []sdk.CLI{
			{Name: sdk.AnyCLI, Capabilities: []sdk.Capability{sdk.CapInterrupt}},
		},
		OptionsSchema: optionsSchema,
	}, nil
}

func (b *backend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	s, err := newSession(cfg, events)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// sessionSettings is a validated SessionConfig, ready for turns.
type sessionSettings struct {
	cliName string
	command string
	workdir string
	env     map[string]string // SessionConfig.Env, checked (and IS_SANDBOX, see rootSandbox)
	notice  string            // said once per session: why the env was changed
	prompt  promptMode        // resolved: never modeAuto
}

func validate(cfg sdk.SessionConfig) (sessionSettings, error) {
	if strings.TrimSpace(cfg.Command) == "" {
		return sessionSettings{}, fmt.Errorf("%w: the command for CLI %q is empty: configure the CLI's command", sdk.ErrInvalidConfig, cfg.CLIName)
	}
	// Absolute, so a later change of the plugin's own directory cannot move
	// the CLI.
	workdir, err := sessioncfg.Workdir(cfg.Workdir, "the CLI")
	if err != nil {
		return sessionSettings{}, err
	}
	mode, err := parseOptions(cfg.Options)
	if err != nil {
		return sessionSettings{}, err
	}
	// Each turn's CLI gets plugin.ChildEnv(cfg.Env): checked here, so that
	// an entry exec cannot pass is refused at once.
	if _, err := plugin.ChildEnv(cfg.Env); err != nil {
		return sessionSettings{}, err
	}
	env, notice := rootSandbox(os.Geteuid(), cfg.Command, cfg.Env)
	return sessionSettings{
		cliName: cfg.CLIName,
		command: cfg.Command,
		workdir: workdir,
		env:     env,
		notice:  notice,
		prompt:  mode.resolve(cfg.CLIName),
	}, nil
}
