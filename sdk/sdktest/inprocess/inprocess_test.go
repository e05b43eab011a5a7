package inprocess_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/testplugins/echobackend"
	"github.com/tthost/tthost/sdk/sdktest"
	"github.com/tthost/tthost/sdk/sdktest/inprocess"
)

func TestMain(m *testing.M) { sdktest.RunMain(m) }

// The echo backend served in process answers over gRPC as a plugin binary
// does: Describe with the SDK's fields, events numbered in order, errors
// as the sdk sentinels, and a stop that closes what is open.
func TestStartServesABackendOverGRPC(t *testing.T) {
	procs := sdktest.TrackProcesses(t)
	p := inprocess.Start(t, echobackend.New())
	d := p.Description()
	if d.Name != "echo" || d.SDKVersion != sdk.Version || d.ProtocolVersion != sdk.ProtocolVersion {
		t.Fatalf("description %+v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sdktest.WaitLong)
	defer cancel()
	s, err := p.OpenSession(ctx, sdk.SessionConfig{CLIName: "echo", Workdir: t.TempDir(),
		// The session's child carries the tracker's marker.
		Env: map[string]string{sdktest.MarkerEnv: procs.Marker()}})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := s.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: "héllo"})
	if err != nil || d2.Kind != sdk.DeliveryStarted {
		t.Fatalf("send: %+v, %v", d2, err)
	}
	var evs []sdk.Event
	for ev := range s.Events() {
		evs = append(evs, ev)
		if ev.Kind == sdk.EventTurnCompleted && ev.TurnID == d2.TurnID {
			break
		}
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) || ev.SessionID != s.ID() {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if got := sdk.TurnText(evs, d2.TurnID); got != "héllo" {
		t.Fatalf("turn text %q", got)
	}
	if _, err := p.OpenSession(ctx, sdk.SessionConfig{CLIName: ""}); !errors.Is(err, sdk.ErrInvalidConfig) {
		t.Fatalf("a bad config: %v; want sdk.ErrInvalidConfig", err)
	}
	// Stopping closes the open session: its events end with Exited, and
	// the child it started is gone.
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	var last sdk.Event
	for ev := range s.Events() {
		last = ev
	}
	if last.Kind != sdk.EventExited {
		t.Fatalf("the last event after Stop is %s; want Exited", last.Kind)
	}
	if alive := procs.Alive(); len(alive) > 0 {
		t.Fatalf("processes alive after Stop: %v", alive)
	}
}
