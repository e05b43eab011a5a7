package convert

// The plugin side's half of the wire conversions: what the plugin sends
// (descriptions, deliveries, events) becomes tthost.backend.v1 messages.
// The host's half (the reverse directions) lives in sdk/internal/convert;
// the halves cannot share a package because that package would import sdk
// for its types while sdk imports it for the server.

import (
	"time"

	"github.com/tthost/tthost/sdk"

	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
)

// DescriptionToProto converts Describe's answer.
func DescriptionToProto(d sdk.Description) *backendv1.DescribeResponse {
	out := &backendv1.DescribeResponse{
		Name:            d.Name,
		Version:         d.Version,
		SdkVersion:      d.SDKVersion,
		ProtocolVersion: uint32(max(d.ProtocolVersion, 0)),
		OptionsSchema:   d.OptionsSchema,
		Summary:         d.Summary,
	}
	for _, c := range d.CLIs {
		pc := &backendv1.CLI{Name: c.Name}
		for _, capability := range c.Capabilities {
			pc.Capabilities = append(pc.Capabilities, string(capability))
		}
		out.Clis = append(out.Clis, pc)
	}
	return out
}

// DeliveryToProto converts Send's answer.
func DeliveryToProto(d sdk.Delivery) *backendv1.SendResponse {
	k := backendv1.SendResponse_DELIVERY_UNSPECIFIED
	switch d.Kind {
	case sdk.DeliveryStarted:
		k = backendv1.SendResponse_DELIVERY_STARTED
	case sdk.DeliverySteered:
		k = backendv1.SendResponse_DELIVERY_STEERED
	case sdk.DeliveryCancelled:
		k = backendv1.SendResponse_DELIVERY_CANCELLED
	case sdk.DeliveryNoTurn:
		k = backendv1.SendResponse_DELIVERY_NO_TURN
	}
	return &backendv1.SendResponse{Delivery: k, TurnId: d.TurnID, SteerMode: SteerModeToProto(d.SteerMode)}
}

// SteerModeToProto converts a steer mode; "" (or an unknown mode) is unset.
func SteerModeToProto(m sdk.SteerMode) backendv1.SteerMode {
	switch m {
	case sdk.SteerNative:
		return backendv1.SteerMode_STEER_MODE_NATIVE
	case sdk.SteerQueue:
		return backendv1.SteerMode_STEER_MODE_QUEUE
	case sdk.SteerRestart:
		return backendv1.SteerMode_STEER_MODE_RESTART
	}
	return backendv1.SteerMode_STEER_MODE_UNSPECIFIED
}

// TimeToProto converts an event time; the zero time is 0.
func TimeToProto(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func intPtrToProto(v *int) *int32 {
	if v == nil {
		return nil
	}
	x := int32(*v)
	return &x
}

// EventToProto converts an event for the Events stream. An event of an
// unknown kind converts to a message without a payload, which hosts skip.
func EventToProto(e sdk.Event) *backendv1.Event {
	p := &backendv1.Event{
		SessionId: e.SessionID,
		Seq:       e.Seq,
		UnixNano:  TimeToProto(e.Time),
		TurnId:    e.TurnID,
	}
	switch e.Kind {
	case sdk.EventSessionReady:
		r := deref(e.Ready)
		p.Kind = &backendv1.Event_SessionReady{SessionReady: &backendv1.SessionReady{
			RuntimeSessionId: r.RuntimeSessionID, Resumed: r.Resumed, ContextLostReason: r.ContextLostReason,
			SteerMode: SteerModeToProto(r.SteerMode),
		}}
	case sdk.EventTurnStarted:
		p.Kind = &backendv1.Event_TurnStarted{TurnStarted: &backendv1.TurnStarted{}}
	case sdk.EventAssistantDelta:
		p.Kind = &backendv1.Event_AssistantDelta{AssistantDelta: &backendv1.AssistantDelta{Text: e.Text}}
	case sdk.EventToolCall:
		t := deref(e.Tool)
		p.Kind = &backendv1.Event_ToolCall{ToolCall: &backendv1.ToolCall{
			Id: t.ID, Kind: t.Kind, Name: t.Name, Status: t.Status, ExitCode: intPtrToProto(t.ExitCode),
		}}
	case sdk.EventApproval:
		a := deref(e.Approval)
		p.Kind = &backendv1.Event_Approval{Approval: &backendv1.Approval{
			RequestId: a.RequestID, Kind: a.Kind, Description: a.Description, Decision: a.Decision, TimedOut: a.TimedOut,
		}}
	case sdk.EventUsage:
		u := deref(e.Usage)
		p.Kind = &backendv1.Event_Usage{Usage: &backendv1.Usage{
			InputTokens: u.InputTokens, CachedInputTokens: u.CachedInputTokens, OutputTokens: u.OutputTokens,
			ReasoningOutputTokens: u.ReasoningOutputTokens, TotalTokens: u.TotalTokens,
		}}
	case sdk.EventTurnCompleted:
		c := deref(e.Completed)
		p.Kind = &backendv1.Event_TurnCompleted{TurnCompleted: &backendv1.TurnCompleted{
			Status: turnStatusToProto(c.Status), Summary: c.Summary, Error: c.Error, ExitCode: intPtrToProto(c.ExitCode),
		}}
	case sdk.EventAwaitingInput:
		p.Kind = &backendv1.Event_AwaitingInput{AwaitingInput: &backendv1.AwaitingInput{}}
	case sdk.EventError:
		x := deref(e.Error)
		p.Kind = &backendv1.Event_Error{Error: &backendv1.Error{Code: x.Code, Message: x.Message, Fatal: x.Fatal}}
	case sdk.EventExited:
		x := deref(e.Exited)
		p.Kind = &backendv1.Event_Exited{Exited: &backendv1.Exited{
			ExitCode: intPtrToProto(x.ExitCode), Signal: x.Signal, Reason: x.Reason,
		}}
	}
	return p
}

func turnStatusToProto(s sdk.TurnStatus) backendv1.TurnCompleted_Status {
	switch s {
	case sdk.StatusCompleted:
		return backendv1.TurnCompleted_STATUS_COMPLETED
	case sdk.StatusInterrupted:
		return backendv1.TurnCompleted_STATUS_INTERRUPTED
	case sdk.StatusFailed:
		return backendv1.TurnCompleted_STATUS_FAILED
	}
	return backendv1.TurnCompleted_STATUS_UNSPECIFIED
}

// deref reads an optional payload; a missing one converts as its zero value
// so that a careless backend still produces a well-formed message.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
