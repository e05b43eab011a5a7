package convert

import (
	"testing"

	"google.golang.org/protobuf/proto"

	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
)

// FuzzEventFromProto feeds arbitrary bytes, as a broken or hostile plugin
// might send, through decoding and conversion: nothing may panic, and every
// accepted event must carry the payload its kind promises.
func FuzzEventFromProto(f *testing.F) {
	for _, e := range []*backendv1.Event{
		{Seq: 1, Kind: &backendv1.Event_AssistantDelta{AssistantDelta: &backendv1.AssistantDelta{Text: "hi"}}},
		{Seq: 2, Kind: &backendv1.Event_ToolCall{ToolCall: &backendv1.ToolCall{ExitCode: proto.Int32(1)}}},
		{Seq: 3, Kind: &backendv1.Event_Exited{Exited: &backendv1.Exited{Reason: "closed"}}},
		{Seq: 4, Kind: &backendv1.Event_TurnCompleted{}},
	} {
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p backendv1.Event
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		e, err := EventFromProto(&p)
		if err != nil {
			return
		}
		ok := true
		switch e.Kind {
		case "session_ready":
			ok = e.Ready != nil
		case "tool_call":
			ok = e.Tool != nil
		case "approval":
			ok = e.Approval != nil
		case "usage":
			ok = e.Usage != nil
		case "turn_completed":
			ok = e.Completed != nil
		case "error":
			ok = e.Error != nil
		case "exited":
			ok = e.Exited != nil
		}
		if !ok {
			t.Fatalf("%s event without its payload: %+v", e.Kind, e)
		}
	})
}
