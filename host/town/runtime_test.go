package town

import (
	"testing"
	"time"
)

// A worker records what serves its agent when it chooses the backend and
// the session's id and steer mode once the session is ready; a new choice
// replaces the whole record, so a stale session id never outlives it.
func TestRuntimeRecordIsReplacedByANewChoice(t *testing.T) {
	f := newFixture(t, WithClock(func() time.Time { return fixedNow }))
	if r, err := f.store.Runtime(f.ctx, "a1"); err != nil || r != nil {
		t.Fatalf("no record yet: got %+v, %v", r, err)
	}
	f.must(f.store.SetRuntime(f.ctx, "a1", Runtime{Backend: "claude", Persistent: true, Reason: "persistent session", Worker: "h:1"}))
	f.must(f.store.SetRuntimeSession(f.ctx, "a1", "sess-1", "native"))
	r, err := f.store.Runtime(f.ctx, "a1")
	f.must(err)
	want := Runtime{Backend: "claude", Persistent: true, Reason: "persistent session", SessionID: "sess-1", SteerMode: "native", Worker: "h:1", UpdatedAt: fixedNow}
	if r == nil || *r != want {
		t.Fatalf("record: %+v\nwant     %+v", r, want)
	}
	f.must(f.store.SetRuntime(f.ctx, "a1", Runtime{Backend: "oneshot", Fallback: true, Reason: "fell back"}))
	r, err = f.store.Runtime(f.ctx, "a1")
	f.must(err)
	if r.SessionID != "" || r.SteerMode != "" || !r.Fallback || r.Persistent {
		t.Errorf("a new choice kept the old session: %+v", r)
	}
	f.must(f.store.DeleteAgent(f.ctx, "a1"))
	if r, err := f.store.Runtime(f.ctx, "a1"); err != nil || r != nil {
		t.Errorf("the record outlived its agent: %+v, %v", r, err)
	}
}
