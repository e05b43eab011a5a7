package approval

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/plugin"
	"github.com/tthost/tthost/sdk/sdktest"
)

// An approval reported on a running turn is a line of its transcript, with
// the timeout said, and the turn's Approval event.
func TestOnTurnNotesAndEmits(t *testing.T) {
	approvals := []sdk.Approval{
		{RequestID: "1", Kind: "command", Description: "echo hi", Decision: "accept"},
		{RequestID: "2", Kind: "tool", Description: "Bash: rm -rf x", Decision: "denied", TimedOut: true},
	}
	rec := sdktest.NewRecorder(t)
	s := plugin.NewSession(rec, plugin.Driver{
		StartTurn: func(_ context.Context, pt *plugin.Turn, _ string) error {
			for _, a := range approvals {
				OnTurn(pt, a)
			}
			pt.Complete(sdk.TurnCompleted{Status: sdk.StatusCompleted})
			return nil
		},
	})
	t.Cleanup(func() { _ = s.Close(context.Background(), sdk.CloseImmediate) })
	rec.WaitReady(t)
	transcript := filepath.Join(t.TempDir(), "t1.md")
	d, err := s.Send(context.Background(), sdk.Input{Kind: sdk.InputTurn, Text: "go", TranscriptPath: transcript})
	if err != nil {
		t.Fatal(err)
	}
	_, evs := rec.WaitCompleted(t, d.TurnID)
	got := sdktest.OfKind(evs, sdk.EventApproval, d.TurnID)
	if len(got) != len(approvals) {
		t.Fatalf("%d Approval events on the turn, want %d:\n%s", len(got), len(approvals), sdktest.Dump(evs))
	}
	for i, ev := range got {
		if *ev.Approval != approvals[i] {
			t.Errorf("Approval event %d = %+v, want %+v", i, *ev.Approval, approvals[i])
		}
	}
	b, err := os.ReadFile(transcript)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[approval command `echo hi`: accept]\n", "[approval tool `Bash: rm -rf x`: denied (no decision in time)]\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("transcript does not say %q:\n%s", want, b)
		}
	}
}
