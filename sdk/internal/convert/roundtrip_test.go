package convert_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/convert"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Every conversion has its reverse in this package; these round trips
// prove each pair agrees.

func TestDescriptionRoundTrip(t *testing.T) {
	d := sdk.Description{
		Name: "codex", Version: "1.2.0", Summary: "Codex app-server",
		CLIs: []sdk.CLI{
			{Name: "codex", Capabilities: []sdk.Capability{sdk.CapPersistent, sdk.CapSteer, "future-cap"}},
			{Name: sdk.AnyCLI},
		},
		OptionsSchema: `{"type":"object"}`, SDKVersion: sdk.Version, ProtocolVersion: 1,
	}
	if got := convert.DescriptionFromProto(convert.DescriptionToProto(d)); !reflect.DeepEqual(got, d) {
		t.Errorf("round trip changed the description:\n got %+v\nwant %+v", got, d)
	}
}

func TestSessionConfigRoundTrip(t *testing.T) {
	c := sdk.SessionConfig{
		CLIName: "codex", Command: "codex exec", Workdir: "/town", Env: map[string]string{"A": "1"},
		ResumeID: "thread-1", Options: map[string]string{"model": "x"}, AgentID: "id", AgentName: "name", LogDir: "/logs",
	}
	if got := convert.SessionConfigFromProto(convert.SessionConfigToProto(c)); !reflect.DeepEqual(got, c) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v", got, c)
	}
}

func TestInputRoundTrip(t *testing.T) {
	for _, k := range []sdk.InputKind{sdk.InputTurn, sdk.InputUrgent, sdk.InputCancel} {
		in := sdk.Input{Kind: k, Text: "do it", TranscriptPath: "/t.log"}
		got, err := convert.InputFromProto(convert.InputToProto(in))
		if err != nil || got != in {
			t.Errorf("%v: got %+v, %v; want %+v", k, got, err, in)
		}
	}
	if _, err := convert.InputFromProto(convert.InputToProto(sdk.Input{})); err == nil {
		t.Error("an input without a kind was accepted")
	}
}

func TestDeliveryRoundTrip(t *testing.T) {
	for _, k := range []sdk.DeliveryKind{sdk.DeliveryStarted, sdk.DeliverySteered, sdk.DeliveryCancelled, sdk.DeliveryNoTurn} {
		d := sdk.Delivery{Kind: k, TurnID: "t1"}
		got, err := convert.DeliveryFromProto(convert.DeliveryToProto(d))
		if err != nil || got != d {
			t.Errorf("%v: got %+v, %v; want %+v", k, got, err, d)
		}
	}
	for _, m := range []sdk.SteerMode{"", sdk.SteerNative, sdk.SteerQueue, sdk.SteerRestart} {
		d := sdk.Delivery{Kind: sdk.DeliverySteered, TurnID: "t1", SteerMode: m}
		got, err := convert.DeliveryFromProto(convert.DeliveryToProto(d))
		if err != nil || got != d {
			t.Errorf("steer mode %q: got %+v, %v; want %+v", m, got, err, d)
		}
	}
	if got := convert.SteerModeFromProto(convert.SteerModeToProto("sideways")); got != "" {
		t.Errorf("an unknown steer mode came back as %q, want unset", got)
	}
	if _, err := convert.DeliveryFromProto(convert.DeliveryToProto(sdk.Delivery{})); err == nil {
		t.Error("a delivery without a kind was accepted")
	}
}

func TestCloseModeRoundTrip(t *testing.T) {
	for _, m := range []sdk.CloseMode{sdk.CloseGraceful, sdk.CloseImmediate} {
		if got := convert.CloseModeFromProto(convert.CloseModeToProto(m)); got != m {
			t.Errorf("%v came back as %v", m, got)
		}
	}
}

func TestEventRoundTrip(t *testing.T) {
	at := time.Unix(0, time.Now().UnixNano())
	stamp := func(e sdk.Event) sdk.Event {
		e.SessionID, e.Seq, e.Time = "s-1", 7, at
		return e
	}
	events := []sdk.Event{
		sdk.SessionReadyEvent(sdk.SessionReady{RuntimeSessionID: "th", Resumed: true, ContextLostReason: "x", SteerMode: sdk.SteerQueue}),
		sdk.TurnStartedEvent("t1"),
		sdk.DeltaEvent("t1", "hello"),
		sdk.ToolCallEvent("t1", sdk.ToolCall{ID: "c", Kind: "command", Name: "ls", Status: "completed", ExitCode: sdk.IntPtr(2)}),
		sdk.ApprovalEvent("t1", sdk.Approval{RequestID: "r", Kind: "command", Description: "rm", Decision: "denied", TimedOut: true}),
		sdk.UsageEvent("t1", sdk.Usage{InputTokens: 1, CachedInputTokens: 2, OutputTokens: 3, ReasoningOutputTokens: 4, TotalTokens: 10}),
		sdk.TurnCompletedEvent("t1", sdk.TurnCompleted{Status: sdk.StatusCompleted, Summary: "ok"}),
		sdk.TurnCompletedEvent("t2", sdk.TurnCompleted{Status: sdk.StatusInterrupted}),
		sdk.TurnCompletedEvent("t3", sdk.TurnCompleted{Status: sdk.StatusFailed, Error: "boom", ExitCode: sdk.IntPtr(1)}),
		sdk.AwaitingInputEvent(),
		sdk.ErrorEvent("t1", "protocol", "bad", true),
		sdk.ExitedEvent(sdk.ExitInfo{ExitCode: sdk.IntPtr(0), Signal: "killed", Reason: sdk.ExitClosed}),
	}
	for _, e := range events {
		e = stamp(e)
		got, err := convert.EventFromProto(convert.EventToProto(e))
		if err != nil {
			t.Errorf("%s: %v", e.Kind, err)
			continue
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("%s: round trip changed the event:\n got %+v\nwant %+v", e.Kind, got, e)
		}
	}
	if _, err := convert.EventFromProto(convert.EventToProto(sdk.Event{Kind: "from-the-future"})); err == nil {
		t.Error("an event without a known payload was accepted")
	}
}

func TestErrorRoundTrip(t *testing.T) {
	for _, sentinel := range []error{sdk.ErrInvalidConfig, sdk.ErrSessionNotFound, sdk.ErrTurnRunning, sdk.ErrUnsupported, sdk.ErrShuttingDown} {
		st, _ := status.FromError(convert.ErrorToStatus(fmt.Errorf("backend says: %w", sentinel)))
		if got := convert.SentinelOf(st); got != sentinel {
			t.Errorf("%v came back as %v (status %v)", sentinel, got, st.Code())
		}
	}
	st, _ := status.FromError(convert.ErrorToStatus(errors.New("boom")))
	if st.Code() != codes.Internal || convert.SentinelOf(st) != nil {
		t.Errorf("a plain error travels as %v, sentinel %v", st.Code(), convert.SentinelOf(st))
	}
	// A broken connection is Unavailable too, without the shutdown message.
	if got := convert.SentinelOf(status.New(codes.Unavailable, "connection refused")); got != nil {
		t.Errorf("a broken connection was taken for %v", got)
	}
}
