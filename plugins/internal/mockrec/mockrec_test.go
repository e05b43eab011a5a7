package mockrec

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type req struct {
	Seq  int
	Done bool
}

func TestWaitWakesOnAddAndUpdate(t *testing.T) {
	l := NewLog[req]()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan req)
	go func() {
		r, err := l.Wait(ctx, func(r req) bool { return r.Seq == 2 && r.Done })
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	l.Add(func(seq int) req { return req{Seq: seq} })
	seq := l.Add(func(seq int) req { return req{Seq: seq} })
	l.Update(seq, func(r *req) { r.Done = true })
	if r := <-got; r.Seq != 2 || !r.Done {
		t.Errorf("Wait = %+v", r)
	}
	l.Update(7, func(r *req) { t.Error("updated a request that was never added") })
	l.AddOther("GET /x")
	if all, other := l.All(), l.Other(); len(all) != 2 || len(other) != 1 {
		t.Errorf("All %v, Other %v", all, other)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancelShort()
	if _, err := l.Wait(short, func(req) bool { return false }); err == nil {
		t.Error("Wait without a match returned no error")
	}
}

func TestForeign(t *testing.T) {
	self := "http://127.0.0.1:4242"
	for _, tt := range []struct {
		method, target string
		foreign        bool
	}{
		{"POST", "http://127.0.0.1:4242/v1/messages", false},
		{"GET", "http://localhost:4242/v1/models", false},
		{"GET", "http://api.anthropic.com/v1/models", true},
		{"CONNECT", "127.0.0.1:4242", true},
	} {
		r := httptest.NewRequest(tt.method, tt.target, nil)
		if _, foreign := Foreign(r, self); foreign != tt.foreign {
			t.Errorf("%s %s: foreign %v", tt.method, tt.target, foreign)
		}
	}
}

func TestRunScriptTurnsAPanicIntoAFailure(t *testing.T) {
	double := func(n int) int { return 2 * n }
	if got, ok := RunScript(t, "x", 1, double, 21); !ok || got != 42 {
		t.Errorf("RunScript(double, 21) = %d, %v; want 42, true", got, ok)
	}
	ft := &fakeTB{TB: t}
	if _, ok := RunScript(ft, "xtest", 7, func(int) int { panic("boom") }, 0); ok {
		t.Error("a panicking script's reply is ok")
	}
	if want := "xtest: script panicked on request 7: boom"; ft.failure != want {
		t.Errorf("failure = %q, want %q", ft.failure, want)
	}
}

// fakeTB records Errorf instead of failing.
type fakeTB struct {
	testing.TB
	failure string
}

func (f *fakeTB) Errorf(format string, args ...any) { f.failure = fmt.Sprintf(format, args...) }

func TestTicksAndLastLine(t *testing.T) {
	if got := strings.Join(Ticks(3), ""); got != "tick 1 tick 2 tick 3 " {
		t.Errorf("Ticks(3) = %q", got)
	}
	if got := LastLine("a\n  b c \n\n"); got != "b c" {
		t.Errorf("LastLine = %q, want %q", got, "b c")
	}
}
