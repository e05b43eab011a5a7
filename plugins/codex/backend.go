package main

import (
	"context"

	"github.com/tthost/tthost/plugins/internal/buildinfo"
	"github.com/tthost/tthost/sdk"
)

// backend holds no state of its own: every session owns its app-server,
// and the SDK closes all sessions before the plugin exits (no Shutdowner).
type backend struct{}

func newBackend() *backend { return &backend{} }

var capabilities = []sdk.Capability{
	sdk.CapPersistent, sdk.CapSteer, sdk.CapInterrupt, sdk.CapResume, sdk.CapApprovals, sdk.CapUsage,
}

// optionsSchema documents SessionConfig.Options for the host (draft
// 2020-12). Unknown keys are refused (additionalProperties false).
const optionsSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "codex_home": {
      "description": "CODEX_HOME for the app-server (threads, sessions, config.toml); a relative path is taken from the workdir. Empty inherits the plugin's environment, else codex's default ~/.codex. Resuming a thread needs the same CODEX_HOME it was started with.",
      "type": "string",
      "default": ""
    },
    "approval_policy": {
      "description": "When codex asks before running a command (thread/start and turn/start approvalPolicy). The default never asks, as Tinytown did, so an autonomous worker never stalls.",
      "type": "string",
      "enum": ["untrusted", "on-request", "never"],
      "default": "never"
    },
    "sandbox": {
      "description": "The sandbox codex runs commands in (thread/start sandbox; turn/start sends the matching sandboxPolicy object).",
      "type": "string",
      "enum": ["read-only", "workspace-write", "danger-full-access"],
      "default": "danger-full-access"
    },
    "command_approval": {
      "description": "The answer to codex's command approval requests.",
      "type": "string",
      "enum": ["accept", "acceptForSession", "decline", "cancel"],
      "default": "accept"
    },
    "file_change_approval": {
      "description": "The answer to codex's file change approval requests.",
      "type": "string",
      "enum": ["accept", "acceptForSession", "decline", "cancel"],
      "default": "accept"
    },
    "permissions_approval": {
      "description": "The answer to codex's requests for extra permissions (network, file system): grant what was asked for this turn, or deny.",
      "type": "string",
      "enum": ["grant", "deny"],
      "default": "grant"
    },
    "approval_timeout_ms": {
      "description": "How long producing an approval decision may take; when it passes, the safe answer (decline, deny) is sent and the Approval event says timed_out.",
      "type": "string",
      "pattern": "^[1-9][0-9]*$",
      "default": "30000"
    },
    "model": {
      "description": "The model for the thread and its turns. Default: gpt-5.4-mini for the CLI codex-mini, codex's own configuration for codex.",
      "type": "string"
    },
    "effort": {
      "description": "The reasoning effort (e.g. low, medium, high). Default: medium for the CLI codex-mini, codex's own configuration for codex.",
      "type": "string"
    },
    "request_timeout_ms": {
      "description": "The deadline of every JSON-RPC request to the app-server (initialize, thread/start, turn/start, turn/steer, turn/interrupt, ...).",
      "type": "string",
      "pattern": "^[1-9][0-9]*$",
      "default": "30000"
    }
  },
  "additionalProperties": false
}`

func (b *backend) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		Name:    "codex",
		Version: buildinfo.Version,
		Summary: "keeps one live `codex app-server` per agent: turns, steering, interrupts, resume, approvals, usage",
		CLIs: []sdk.CLI{
			{Name: cliCodex, Capabilities: capabilities},
			{Name: cliCodexMini, Capabilities: capabilities},
		},
		OptionsSchema: optionsSchema,
	}, nil
}

// OpenSession validates the request and returns at once; the app-server
// starts in the background and SessionReady reports the outcome.
func (b *backend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	s, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	return openSession(s, events, nil), nil
}
