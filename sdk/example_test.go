package sdk_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tthost/tthost/sdk/plugin"

	"github.com/tthost/tthost/sdk"
)

// echoBackend serves a CLI named "echo": each turn answers with its
// prompt, without any process. It keeps every rule of the contract; a
// backend for a real CLI does the same around a process. The package
// documentation shows the same code (TestDocExampleIsTheCompiledOne).
type echoBackend struct{}

func (echoBackend) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{
		Name:    "echo",
		Version: "0.1.0",
		Summary: "answers every turn with its prompt",
		CLIs:    []sdk.CLI{{Name: "echo"}},
	}, nil
}

func (echoBackend) OpenSession(_ context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	if cfg.CLIName != "echo" {
		return nil, fmt.Errorf("%w: this backend serves echo, not %q", sdk.ErrInvalidConfig, cfg.CLIName)
	}
	events.Emit(sdk.SessionReadyEvent(sdk.SessionReady{}))
	events.Emit(sdk.AwaitingInputEvent())
	return &echoSession{events: events}, nil
}

type echoSession struct {
	events sdk.EventSink
	mu     sync.Mutex // orders Send and Close, and so the events
	turns  int
	closed bool
}

func (s *echoSession) Send(_ context.Context, in sdk.Input) (sdk.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return sdk.Delivery{}, fmt.Errorf("%w: the session is closed", sdk.ErrSessionNotFound)
	case in.Kind == sdk.InputCancel:
		return sdk.Delivery{}, fmt.Errorf("%w: cancel (interrupt is not declared)", sdk.ErrUnsupported)
	}
	s.turns++ // a turn, or urgent input: without steer, both start a turn
	id := fmt.Sprintf("t%d", s.turns)
	s.events.Emit(sdk.TurnStartedEvent(id))
	s.events.Emit(sdk.DeltaEvent(id, in.Text))
	s.events.Emit(sdk.TurnCompletedEvent(id, sdk.TurnCompleted{Status: sdk.StatusCompleted}))
	s.events.Emit(sdk.AwaitingInputEvent())
	return sdk.Delivery{Kind: sdk.DeliveryStarted, TurnID: id}, nil
}

func (s *echoSession) Close(context.Context, sdk.CloseMode) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.events.Emit(sdk.ExitedEvent(sdk.ExitInfo{Reason: sdk.ExitClosed}))
	}
	return nil
}

// A complete backend (echoBackend and echoSession above) and the body of
// its main: one call, which performs the handshake with the host and does
// not return. The example has no Output comment, so `go test` compiles it
// but does not run it.
func Example() {
	plugin.Serve(echoBackend{})
}

// A backend tested in-process, as plugin authors do before running the
// conformance suite on the built binary.
func Example_session() {
	var events printSink
	ctx := context.Background()
	s, err := echoBackend{}.OpenSession(ctx, sdk.SessionConfig{CLIName: "echo"}, &events)
	if err != nil {
		panic(err)
	}
	d, _ := s.Send(ctx, sdk.Input{Kind: sdk.InputTurn, Text: "hello"})
	fmt.Println("delivery:", d.Kind, d.TurnID)
	_ = s.Close(ctx, sdk.CloseGraceful)
	// Output:
	// session_ready
	// awaiting_input
	// turn_started t1
	// assistant_delta t1 "hello"
	// turn_completed t1 completed
	// awaiting_input
	// delivery: started t1
	// exited closed
}

// printSink prints events; sdktest.Recorder is the sink for real tests.
type printSink struct{}

func (*printSink) Emit(e sdk.Event) {
	switch {
	case e.Text != "":
		fmt.Printf("%s %s %q\n", e.Kind, e.TurnID, e.Text)
	case e.Completed != nil:
		fmt.Printf("%s %s %s\n", e.Kind, e.TurnID, e.Completed.Status)
	case e.Exited != nil:
		fmt.Printf("%s %s\n", e.Kind, e.Exited.Reason)
	case e.TurnID != "":
		fmt.Printf("%s %s\n", e.Kind, e.TurnID)
	default:
		fmt.Println(e.Kind)
	}
}

// TestDocExampleIsTheCompiledOne keeps the backend shown in doc.go equal to
// the one compiled here.
func TestDocExampleIsTheCompiledOne(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	code := map[string]bool{}
	for _, l := range strings.Split(string(example), "\n") {
		code[strings.TrimSpace(l)] = true
	}
	_, block, _ := strings.Cut(string(doc), "//\ttype echoBackend struct{}")
	block, _, _ = strings.Cut(block, "//\t\tplugin.Serve(echoBackend{})")
	if block == "" {
		t.Fatal("doc.go no longer shows echoBackend")
	}
	for _, l := range strings.Split(block, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(l, "//"))
		if l != "" && l != "func main() {" && !code[l] {
			t.Errorf("doc.go shows %q, which example_test.go does not have", l)
		}
	}
}
