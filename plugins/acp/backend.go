package main

import (
	"context"

	"github.com/tthost/tthost/plugins/internal/buildinfo"
	"github.com/tthost/tthost/sdk"
)

// backend holds no state of its own: every session owns its agent, and
// the SDK closes all sessions before the plugin exits (no Shutdowner).
type backend struct{}

func newBackend() *backend { return &backend{} }

var capabilities = []sdk.Capability{
	sdk.CapPersistent, sdk.CapSteer, sdk.CapInterrupt, sdk.CapResume, sdk.CapApprovals, sdk.CapUsage,
}

func buildVersion() string { return buildinfo.Version }

// optionsSchema documents SessionConfig.Options for the host (draft
// 2020-12). Unknown keys are refused (additionalProperties false).
const optionsSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "properties": {
    "steer_mode": {
      "description": "ACP v1 has no mid-turn steer, so urgent input is emulated within the running turn. queue: prompted right after the agent's running prompt ends (the turn ends after its answer). restart: the running prompt is cancelled and prompted again with the turn's text and the urgent text merged. The delivery receipt and SessionReady say which (steer_mode).",
      "type": "string",
      "enum": ["queue", "restart"],
      "default": "queue"
    },
    "auth_method": {
      "description": "The ACP auth method to authenticate with (an id of the agent's authMethods, e.g. gemini-api-key). Empty: authenticate only when the agent asks, with the method whose credential the environment provides (GEMINI_API_KEY for gemini-api-key, ...).",
      "type": "string",
      "default": ""
    },
    "permission": {
      "description": "The answer to session/request_permission. allow: the agent's allow_once option (else allow_always); allow_always: allow_always (else allow_once); reject: reject_once (else reject_always). The default allows, as Tinytown's workers never asked, so an autonomous worker never stalls.",
      "type": "string",
      "enum": ["allow", "allow_always", "reject"],
      "default": "allow"
    },
    "approval_timeout_ms": {
      "description": "How long producing a permission decision may take; when it passes, the safe answer (a reject option, else cancelled) is sent and the Approval event says timed_out.",
      "type": "string",
      "pattern": "^[1-9][0-9]*$",
      "default": "30000"
    },
    "request_timeout_ms": {
      "description": "The deadline of every JSON-RPC request to the agent but session/prompt (initialize, authenticate, session/new, session/load).",
      "type": "string",
      "pattern": "^[1-9][0-9]*$",
      "default": "60000"
    },
    "stall_timeout_ms": {
      "description": "A turn during which the agent sends nothing for this long is cancelled; if the agent does not answer the cancel either (within this bound, at most 10 s), it is killed and restarted. The turn fails with an Error turn_stalled.",
      "type": "string",
      "pattern": "^[1-9][0-9]*$",
      "default": "600000"
    }
  },
  "additionalProperties": false
}`

func (b *backend) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		Name:    "acp",
		Version: buildinfo.Version,
		Summary: "keeps one live Agent Client Protocol agent per session (gemini --acp, claude-code-acp, codex-acp, ...): turns, emulated steering, interrupts, resume, approvals, usage",
		CLIs: []sdk.CLI{
			{Name: cliGemini, Capabilities: capabilities},
			// Any other CLI whose configured command speaks ACP, when the
			// town chooses this backend for it (backend = "acp").
			{Name: sdk.AnyCLI, Capabilities: capabilities},
		},
		OptionsSchema: optionsSchema,
	}, nil
}

// OpenSession validates the request and returns at once; the agent starts
// in the background and SessionReady reports the outcome.
func (b *backend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	s, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	return openSession(s, events, nil), nil
}
