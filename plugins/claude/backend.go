package main

import (
	"context"

	"github.com/tthost/tthost/plugins/internal/buildinfo"
	"github.com/tthost/tthost/sdk"
)

// backend holds no state of its own: every session owns its claude, and
// the SDK closes all sessions before the plugin exits.
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
    "model": {
      "description": "The model (claude --model). Default: the configured command's --model, else claude's own default.",
      "type": "string"
    },
    "permission_mode": {
      "description": "bypass: claude never asks (--dangerously-skip-permissions, as Tinytown ran it; as root, IS_SANDBOX=1 is set, which claude requires). prompt: claude asks before each tool call that needs permission (--permission-prompt-tool stdio) and tool_approval answers it, with an Approval event.",
      "type": "string",
      "enum": ["bypass", "prompt"],
      "default": "bypass"
    },
    "tool_approval": {
      "description": "With permission_mode prompt: the answer to claude's permission requests.",
      "type": "string",
      "enum": ["allow", "deny"],
      "default": "allow"
    },
    "approval_timeout_ms": {
      "description": "How long producing an approval decision may take; when it passes, deny is sent and the Approval event says timed_out.",
      "type": "string",
      "pattern": "^[1-9][0-9]*$",
      "default": "30000"
    },
    "stall_timeout_secs": {
      "description": "A turn with no output line from claude for this long is taken for hung: it is interrupted (claude restarted with --resume when it does not answer) and ends failed with an Error turn_stalled, so the host delivers it again. The default is a minute more than the longest a Bash tool call runs silently.",
      "type": "string",
      "pattern": "^[1-9][0-9]*$",
      "default": "660"
    }
  },
  "additionalProperties": false
}`

func (b *backend) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		Name:          "claude",
		Version:       buildinfo.Version,
		Summary:       "keeps one live Claude Code (stream-json) per agent: turns, steering, interrupts, resume, approvals, usage",
		CLIs:          []sdk.CLI{{Name: cliClaude, Capabilities: capabilities}},
		OptionsSchema: optionsSchema,
	}, nil
}

// OpenSession validates the request and returns at once; claude starts in
// the background and SessionReady reports the outcome.
func (b *backend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	s, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	return openSession(s, events, nil), nil
}
