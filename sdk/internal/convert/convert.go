// Package convert holds every wire conversion between the SDK's
// hand-written Go types and the generated tthost.backend.v1 messages, in
// both directions: what the host sends and the plugin receives, what the
// plugin answers and the host receives, and the errors that travel as gRPC
// statuses. Neither side's code touches generated code (the rule
// terraform-plugin-go follows), and each conversion has its reverse here,
// proved by the round-trip tests. FromProto functions reject what v1
// cannot mean.
package convert

import (
	"fmt"
	"maps"
	"time"

	"github.com/tthost/tthost/sdk"

	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
)

// DescriptionFromProto converts Describe's answer.
func DescriptionFromProto(p *backendv1.DescribeResponse) sdk.Description {
	d := sdk.Description{
		Name:            p.GetName(),
		Version:         p.GetVersion(),
		Summary:         p.GetSummary(),
		OptionsSchema:   p.GetOptionsSchema(),
		SDKVersion:      p.GetSdkVersion(),
		ProtocolVersion: int(p.GetProtocolVersion()),
	}
	for _, pc := range p.GetClis() {
		c := sdk.CLI{Name: pc.GetName()}
		for _, capability := range pc.GetCapabilities() {
			c.Capabilities = append(c.Capabilities, sdk.Capability(capability))
		}
		d.CLIs = append(d.CLIs, c)
	}
	return d
}

// SessionConfigToProto converts OpenSession's request.
func SessionConfigToProto(c sdk.SessionConfig) *backendv1.OpenSessionRequest {
	return &backendv1.OpenSessionRequest{
		CliName:   c.CLIName,
		Command:   c.Command,
		Workdir:   c.Workdir,
		Env:       maps.Clone(c.Env),
		ResumeId:  c.ResumeID,
		Options:   maps.Clone(c.Options),
		AgentId:   c.AgentID,
		AgentName: c.AgentName,
		LogDir:    c.LogDir,
	}
}

// InputToProto converts Send's input.
func InputToProto(in sdk.Input) *backendv1.Input {
	k := backendv1.Input_KIND_UNSPECIFIED
	switch in.Kind {
	case sdk.InputTurn:
		k = backendv1.Input_KIND_TURN
	case sdk.InputUrgent:
		k = backendv1.Input_KIND_URGENT
	case sdk.InputCancel:
		k = backendv1.Input_KIND_CANCEL
	}
	return &backendv1.Input{Kind: k, Text: in.Text, TranscriptPath: in.TranscriptPath}
}

// DeliveryFromProto converts Send's answer; an unknown kind is an error.
func DeliveryFromProto(p *backendv1.SendResponse) (sdk.Delivery, error) {
	d := sdk.Delivery{TurnID: p.GetTurnId(), SteerMode: SteerModeFromProto(p.GetSteerMode())}
	switch p.GetDelivery() {
	case backendv1.SendResponse_DELIVERY_STARTED:
		d.Kind = sdk.DeliveryStarted
	case backendv1.SendResponse_DELIVERY_STEERED:
		d.Kind = sdk.DeliverySteered
	case backendv1.SendResponse_DELIVERY_CANCELLED:
		d.Kind = sdk.DeliveryCancelled
	case backendv1.SendResponse_DELIVERY_NO_TURN:
		d.Kind = sdk.DeliveryNoTurn
	default:
		return sdk.Delivery{}, fmt.Errorf("unknown delivery kind %v", p.GetDelivery())
	}
	return d, nil
}

// SteerModeFromProto converts a steer mode; unset (or a newer mode this
// SDK does not know) is "".
func SteerModeFromProto(m backendv1.SteerMode) sdk.SteerMode {
	switch m {
	case backendv1.SteerMode_STEER_MODE_NATIVE:
		return sdk.SteerNative
	case backendv1.SteerMode_STEER_MODE_QUEUE:
		return sdk.SteerQueue
	case backendv1.SteerMode_STEER_MODE_RESTART:
		return sdk.SteerRestart
	}
	return ""
}

// CloseModeToProto converts CloseSession's mode.
func CloseModeToProto(m sdk.CloseMode) backendv1.CloseSessionRequest_Mode {
	switch m {
	case sdk.CloseGraceful:
		return backendv1.CloseSessionRequest_MODE_GRACEFUL
	case sdk.CloseImmediate:
		return backendv1.CloseSessionRequest_MODE_IMMEDIATE
	}
	return backendv1.CloseSessionRequest_MODE_UNSPECIFIED
}

// TimeFromProto converts an event time; 0 is the zero time.
func TimeFromProto(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func intPtrFromProto(v *int32) *int {
	if v == nil {
		return nil
	}
	x := int(*v)
	return &x
}

// EventFromProto converts an event from the Events stream. An event
// without a known payload (a newer plugin's additive kind) is an error the
// caller skips.
func EventFromProto(p *backendv1.Event) (sdk.Event, error) {
	e := sdk.Event{
		SessionID: p.GetSessionId(),
		Seq:       p.GetSeq(),
		Time:      TimeFromProto(p.GetUnixNano()),
		TurnID:    p.GetTurnId(),
	}
	switch k := p.GetKind().(type) {
	case *backendv1.Event_SessionReady:
		r := k.SessionReady
		e.Kind = sdk.EventSessionReady
		e.Ready = &sdk.SessionReady{
			RuntimeSessionID: r.GetRuntimeSessionId(), Resumed: r.GetResumed(), ContextLostReason: r.GetContextLostReason(),
			SteerMode: SteerModeFromProto(r.GetSteerMode()),
		}
	case *backendv1.Event_TurnStarted:
		e.Kind = sdk.EventTurnStarted
	case *backendv1.Event_AssistantDelta:
		e.Kind = sdk.EventAssistantDelta
		e.Text = k.AssistantDelta.GetText()
	case *backendv1.Event_ToolCall:
		t := k.ToolCall
		e.Kind = sdk.EventToolCall
		e.Tool = &sdk.ToolCall{
			ID: t.GetId(), Kind: t.GetKind(), Name: t.GetName(), Status: t.GetStatus(), ExitCode: intPtrFromProto(t.ExitCode),
		}
	case *backendv1.Event_Approval:
		a := k.Approval
		e.Kind = sdk.EventApproval
		e.Approval = &sdk.Approval{
			RequestID: a.GetRequestId(), Kind: a.GetKind(), Description: a.GetDescription(),
			Decision: a.GetDecision(), TimedOut: a.GetTimedOut(),
		}
	case *backendv1.Event_Usage:
		u := k.Usage
		e.Kind = sdk.EventUsage
		e.Usage = &sdk.Usage{
			InputTokens: u.GetInputTokens(), CachedInputTokens: u.GetCachedInputTokens(), OutputTokens: u.GetOutputTokens(),
			ReasoningOutputTokens: u.GetReasoningOutputTokens(), TotalTokens: u.GetTotalTokens(),
		}
	case *backendv1.Event_TurnCompleted:
		c := k.TurnCompleted
		e.Kind = sdk.EventTurnCompleted
		e.Completed = &sdk.TurnCompleted{
			Status: turnStatusFromProto(c.GetStatus()), Summary: c.GetSummary(), Error: c.GetError(),
			ExitCode: intPtrFromProto(c.ExitCode),
		}
	case *backendv1.Event_AwaitingInput:
		e.Kind = sdk.EventAwaitingInput
	case *backendv1.Event_Error:
		x := k.Error
		e.Kind = sdk.EventError
		e.Error = &sdk.ErrorInfo{Code: x.GetCode(), Message: x.GetMessage(), Fatal: x.GetFatal()}
	case *backendv1.Event_Exited:
		x := k.Exited
		e.Kind = sdk.EventExited
		e.Exited = &sdk.ExitInfo{ExitCode: intPtrFromProto(x.ExitCode), Signal: x.GetSignal(), Reason: x.GetReason()}
	default:
		return e, fmt.Errorf("event %d of session %q has no payload this host knows", p.GetSeq(), p.GetSessionId())
	}
	return e, nil
}

// turnStatusFromProto maps an unspecified or unknown status to failed: a
// turn whose outcome the host cannot read did not succeed.
func turnStatusFromProto(s backendv1.TurnCompleted_Status) sdk.TurnStatus {
	switch s {
	case backendv1.TurnCompleted_STATUS_COMPLETED:
		return sdk.StatusCompleted
	case backendv1.TurnCompleted_STATUS_INTERRUPTED:
		return sdk.StatusInterrupted
	}
	return sdk.StatusFailed
}
