package town

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The four examples of Tinytown's schema, verified to be byte-for-byte what
// tt's Rust types produce.
var refMessages = []string{
	`{"id":"135c34b4-9ce0-4eb4-8343-06a1fa5deaf9","from":"00000000-0000-0000-0000-000000000001","to":"6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b","type":"task_assign","task_id":"0b8e1c2d-5f4a-4c3b-9a8e-7d6c5b4a3f21","priority":"normal","created_at":"2026-04-23T22:40:01.112233445Z","correlation_id":null}`,
	`{"id":"c8734741-6743-4c7d-b966-6c2de1e0dd41","from":"00000000-0000-0000-0000-000000000001","to":"6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b","type":"confirmation","ack_type":{"type":"rejected","reason":"no"},"priority":"normal","created_at":"2026-04-23T22:40:01.112233445Z","correlation_id":null}`,
	`{"id":"d1b0f714-29e0-4618-a78a-3ee31c3b3306","from":"00000000-0000-0000-0000-000000000001","to":"6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b","type":"status_response","state":"idle","current_task":null,"priority":"normal","created_at":"2026-04-23T22:40:01.112233445Z","correlation_id":null}`,
	`{"id":"46de4f53-17d2-458b-b163-f9267b65b048","from":"00000000-0000-0000-0000-000000000001","to":"6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b","type":"ping","priority":"normal","created_at":"2026-04-23T22:40:01.112233445Z","correlation_id":null}`,
}

const refAgent = "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"

var refMsgTime = time.Date(2026, 4, 23, 22, 40, 1, 112233445, time.UTC)

func TestRefMessageExamplesReadAndWriteByteForByte(t *testing.T) {
	built := []*Message{
		{ID: "135c34b4-9ce0-4eb4-8343-06a1fa5deaf9", From: SupervisorID, To: refAgent, Type: TypeTaskAssign,
			TaskID: "0b8e1c2d-5f4a-4c3b-9a8e-7d6c5b4a3f21", Priority: PriorityNormal, CreatedAt: refMsgTime},
		{ID: "c8734741-6743-4c7d-b966-6c2de1e0dd41", From: SupervisorID, To: refAgent, Type: TypeConfirmation,
			Ack: Ack{Kind: AckRejected, Reason: "no"}, Priority: PriorityNormal, CreatedAt: refMsgTime},
		{ID: "d1b0f714-29e0-4618-a78a-3ee31c3b3306", From: SupervisorID, To: refAgent, Type: TypeStatusResponse,
			State: "idle", Priority: PriorityNormal, CreatedAt: refMsgTime},
		{ID: "46de4f53-17d2-458b-b163-f9267b65b048", From: SupervisorID, To: refAgent, Type: TypePing,
			Priority: PriorityNormal, CreatedAt: refMsgTime},
	}
	for i, want := range refMessages {
		// Write: a message built in Go marshals to tt's exact bytes.
		got, err := built[i].Marshal()
		if err != nil || string(got) != want {
			t.Errorf("example %d marshal:\n got %s (%v)\nwant %s", i, got, err, want)
		}
		// Read: tt's bytes parse to the same message and write back unchanged.
		m, err := ParseMessage(want)
		if err != nil {
			t.Fatalf("example %d parse: %v", i, err)
		}
		if m.Raw != want {
			t.Errorf("example %d: Raw not kept", i)
		}
		m.Raw = ""
		if !reflect.DeepEqual(m, built[i]) {
			t.Errorf("example %d parse:\n got %+v\nwant %+v", i, m, built[i])
		}
		again, _ := m.Marshal()
		if string(again) != want {
			t.Errorf("example %d re-marshal differs:\n%s", i, again)
		}
	}
}

// allVariants is one message of every type with every field set.
func allVariants() []*Message {
	a, b := NewID(), NewID()
	task := NewID()
	return []*Message{
		NewTask(a, b, "build the thing\nwith \"quotes\""),
		NewQuery(a, b, "why?"),
		NewInfo(a, b, "fyi"),
		NewAck(a, b, "received, thanks"),
		NewAck(a, b, "rejected: not yet"),
		NewConfirmation(a, b, Ack{Kind: AckApproved}),
		NewConfirmation(a, b, Ack{Kind: AckThanks}),
		NewConfirmation(a, b, Ack{Kind: AckAcknowledged}),
		NewTaskAssign(SupervisorID, b, task),
		NewTaskDone(a, b, task, "done"),
		NewTaskFailed(a, b, task, "broke"),
		NewStatusRequest(a, b),
		NewStatusResponse(a, b, "working", &task),
		NewStatusResponse(a, b, "idle", nil),
		NewPing(a, b),
		NewPong(a, b),
		NewShutdown(a, b),
		NewCustom(a, b, "deploy", "prod"),
	}
}

func TestEveryMessageVariantRoundTrips(t *testing.T) {
	seen := map[MessageType]bool{}
	for _, m := range allVariants() {
		seen[m.Type] = true
		m.CorrelationID = NewID()
		raw, err := m.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", m.Type, err)
		}
		back, err := ParseMessage(string(raw))
		if err != nil {
			t.Fatalf("%s: parse %s: %v", m.Type, raw, err)
		}
		back.Raw = ""
		if !reflect.DeepEqual(back, m) {
			t.Errorf("%s round trip:\n got %+v\nwant %+v", m.Type, back, m)
		}
		// Key order: id, from, to, type first; priority, created_at, correlation_id last.
		s := string(raw)
		if !strings.HasPrefix(s, `{"id":"`+m.ID+`","from":"`+m.From+`","to":"`+m.To+`","type":"`+string(m.Type)+`"`) ||
			!strings.Contains(s, `,"priority":"normal","created_at":"`) ||
			!strings.HasSuffix(s, `,"correlation_id":"`+m.CorrelationID+`"}`) {
			t.Errorf("%s: key order: %s", m.Type, s)
		}
	}
	for _, ty := range MessageTypes {
		if !seen[ty] {
			t.Errorf("variant %s not covered", ty)
		}
	}
}

func TestMarshalEscapesStringsLikeSerdeJSON(t *testing.T) {
	m := &Message{ID: NewID(), From: SupervisorID, To: refAgent, Type: TypeTask, Priority: PriorityNormal,
		CreatedAt: refMsgTime, Description: "a<b>&c\u2028\u2029 \"q\" \\ \x01\x1f\x7f\b\f\n\r\t é 🙂 \xff"}
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `"description":"a<b>&c` + "\u2028\u2029" + ` \"q\" \\ \u0001\u001f` + "\x7f" + `\b\f\n\r\t é 🙂 ` + "\uFFFD" + `"`
	if !strings.Contains(string(raw), want) {
		t.Fatalf("got %s\nwant substring %s", raw, want)
	}
}

func TestParseMessageIsStrictWhereTTIsStrict(t *testing.T) {
	base := refMessages[3] // ping
	edit := func(from, to string) string { return strings.Replace(base, from, to, 1) }
	for _, tc := range []struct {
		name, raw string
	}{
		{"not JSON", `{"id":`},
		{"not an object", `[1,2]`},
		{"null", `null`},
		{"trailing data", base + `x`},
		{"missing priority", edit(`"priority":"normal",`, ``)},
		{"capitalised priority", edit(`"normal"`, `"Normal"`)},
		{"unknown priority", edit(`"normal"`, `"critical"`)},
		{"non-UUID from", edit(`"from":"00000000-0000-0000-0000-000000000001"`, `"from":"supervisor"`)},
		{"non-UUID to", edit(`"to":"6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"`, `"to":"backend"`)},
		{"missing id", edit(`"id":"46de4f53-17d2-458b-b163-f9267b65b048",`, ``)},
		{"unknown type", edit(`"type":"ping"`, `"type":"poke"`)},
		{"missing type", edit(`"type":"ping",`, ``)},
		{"missing created_at", edit(`,"created_at":"2026-04-23T22:40:01.112233445Z"`, ``)},
		{"bad created_at", edit(`2026-04-23T22:40:01.112233445Z`, `2026-04-23 22:40:01Z`)},
		{"bad correlation_id", edit(`"correlation_id":null`, `"correlation_id":"x"`)},
		{"numeric field", edit(`"type":"ping"`, `"type":1`)},
		{"task without description", edit(`"type":"ping"`, `"type":"task"`)},
		{"null description", edit(`"type":"ping"`, `"type":"task","description":null`)},
		{"bare-string ack_type", edit(`"type":"ping"`, `"type":"confirmation","ack_type":"received"`)},
		{"unknown ack type", edit(`"type":"ping"`, `"type":"confirmation","ack_type":{"type":"meh"}`)},
		{"rejected without reason", edit(`"type":"ping"`, `"type":"confirmation","ack_type":{"type":"rejected"}`)},
		{"custom without payload", edit(`"type":"ping"`, `"type":"custom","kind":"k"`)},
	} {
		if _, err := ParseMessage(tc.raw); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: err = %v, want ErrInvalidMessage", tc.name, err)
		}
	}
	for _, tc := range []struct{ name, raw string }{
		{"unknown fields on a unit variant", edit(`"type":"ping"`, `"type":"ping","extra":{"x":[1]},"description":5`)},
		{"missing correlation_id", edit(`,"correlation_id":null`, ``)},
		{"any offset", edit(`2026-04-23T22:40:01.112233445Z`, `2026-04-24T00:40:01.112233445+02:00`)},
		{"upper-case and braced ids", edit(`"46de4f53-17d2-458b-b163-f9267b65b048"`, `"46DE4F53-17D2-458B-B163-F9267B65B048"`)},
		{"urn id", edit(`"46de4f53-17d2-458b-b163-f9267b65b048"`, `"urn:uuid:46de4f53-17d2-458b-b163-f9267b65b048"`)},
		{"status_response without current_task", edit(`"type":"ping"`, `"type":"status_response","state":"idle"`)},
		{"ack with extra fields", edit(`"type":"ping"`, `"type":"confirmation","ack_type":{"type":"thanks","x":1}`)},
	} {
		m, err := ParseMessage(tc.raw)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !m.CreatedAt.Equal(refMsgTime) || m.ID != "46de4f53-17d2-458b-b163-f9267b65b048" {
			t.Errorf("%s: parsed %+v", tc.name, m)
		}
	}
}

func TestParseAckTextMapsLikeTTSendAck(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ack
	}{
		{"rejected: needs tests", Ack{Kind: AckRejected, Reason: "needs tests"}},
		{"Rejected:no", Ack{Kind: AckRejected, Reason: "no"}},
		{"received", Ack{Kind: AckReceived}},
		{"Received, on it", Ack{Kind: AckReceived}},
		{"approved!", Ack{Kind: AckApproved}},
		{"many thanks", Ack{Kind: AckThanks}},
		{"thank you", Ack{Kind: AckThanks}},
		{"ok", Ack{Kind: AckAcknowledged}},
		{"rejected", Ack{Kind: AckAcknowledged}}, // no colon: not a rejection
	} {
		if got := ParseAckText(tc.in); got != tc.want {
			t.Errorf("ParseAckText(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestMarshalRefusesWhatTTCouldNotRead(t *testing.T) {
	ok := func() *Message { return NewPing(SupervisorID, refAgent) }
	for name, mod := range map[string]func(*Message){
		"bad from":      func(m *Message) { m.From = "supervisor" },
		"bad to":        func(m *Message) { m.To = "" },
		"bad id":        func(m *Message) { m.ID = "x" },
		"unknown type":  func(m *Message) { m.Type = "poke" },
		"bad priority":  func(m *Message) { m.Priority = "Normal" },
		"bad ack":       func(m *Message) { m.Type = TypeConfirmation },
		"bad corr":      func(m *Message) { m.CorrelationID = "x" },
		"year too late": func(m *Message) { m.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		m := ok()
		mod(m)
		if _, err := m.Marshal(); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// encoding/json uses the same bytes.
	m := ok()
	a, _ := m.Marshal()
	b, err := json.Marshal(m)
	if err != nil || string(a) != string(b) {
		t.Errorf("json.Marshal differs: %s vs %s (%v)", a, b, err)
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, s := range refMessages {
		f.Add(s)
	}
	for _, m := range allVariants() {
		raw, _ := m.Marshal()
		f.Add(string(raw))
	}
	f.Add(`{"type":"confirmation","ack_type":"received"}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, raw string) {
		m, err := ParseMessage(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("error without ErrInvalidMessage: %v", err)
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed message does not marshal: %v\n%q", err, raw)
		}
		back, err := ParseMessage(string(out))
		if err != nil {
			t.Fatalf("re-marshalled message does not parse: %v\n%s", err, out)
		}
		m.Raw, back.Raw = "", ""
		if !m.CreatedAt.Equal(back.CreatedAt) {
			t.Fatalf("created_at changed: %v vs %v", m.CreatedAt, back.CreatedAt)
		}
		m.CreatedAt, back.CreatedAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(m, back) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", m, back)
		}
	})
}
