package town

import (
	"errors"
	"testing"
)

func TestParseIDAcceptsEverySpellingTheUUIDCrateAccepts(t *testing.T) {
	const want = "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"
	for _, in := range []string{
		want,
		"6F1C2A9E-3B4D-4E5F-8A7B-1C2D3E4F5A6B",
		"6f1c2a9e3b4d4e5f8a7b1c2d3e4f5a6b",
		"{6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b}",
		"urn:uuid:6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b",
	} {
		got, err := ParseID(in)
		if err != nil || got != want {
			t.Errorf("ParseID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "backend", "6f1c2a9e-3b4d-4e5f-8a7b", "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6g"} {
		if _, err := ParseID(in); !errors.Is(err, ErrInvalidID) {
			t.Errorf("ParseID(%q) err = %v, want ErrInvalidID", in, err)
		}
	}
}

func TestSupervisorNamesAreTrimmedAndCaseInsensitive(t *testing.T) {
	for _, in := range []string{"supervisor", " Supervisor ", "CONDUCTOR", "conductor\n"} {
		if !IsSupervisorName(in) {
			t.Errorf("IsSupervisorName(%q) = false", in)
		}
	}
	for _, in := range []string{"super", "supervisors", "conductor1", ""} {
		if IsSupervisorName(in) {
			t.Errorf("IsSupervisorName(%q) = true", in)
		}
	}
	if SupervisorID != "00000000-0000-0000-0000-000000000001" {
		t.Fatal("supervisor id changed")
	}
}

func TestShortIDIsTheFirstFourCharactersOfTheCanonicalID(t *testing.T) {
	if got := ShortID("6F1C2A9E-3B4D-4E5F-8A7B-1C2D3E4F5A6B"); got != "6f1c" {
		t.Fatalf("ShortID = %q", got)
	}
}

func TestKeysMatchTheRefCatalogue(t *testing.T) {
	k := NewKeys("town")
	id := "6F1C2A9E-3B4D-4E5F-8A7B-1C2D3E4F5A6B" // built from the canonical form
	c := "6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b"
	for _, tc := range []struct{ got, want string }{
		{k.Agent(id), "tt:town:agent:" + c},
		{k.Inbox(id), "tt:town:inbox:" + c},
		{k.Urgent(id), "tt:town:urgent:" + c},
		{k.Activity(id), "tt:town:activity:" + c},
		{k.Stop(id), "tt:town:stop:" + c},
		{k.Task(id), "tt:town:task:" + c},
		{k.Backlog(), "tt:town:backlog"},
		{k.Events(), "tt:town:events"},
		{k.EventsAgent(id), "tt:town:events:agent:" + c},
		{k.EventsMission(id), "tt:town:events:mission:" + c},
		{k.Broadcast(), "tt:town:broadcast"},
		{k.DocketTasks(), "tt:town:docket:tasks"},
		{k.DocketEvents(), "tt:town:docket:events"},
		{k.Mission(id), "tt:town:mission:" + c},
		{k.MissionWork(id), "tt:town:mission:" + c + ":work"},
		{k.MissionWatch(id), "tt:town:mission:" + c + ":watch"},
		{k.MissionEvents(id), "tt:town:mission:" + c + ":events"},
		{k.MissionControl(id), "tt:town:mission:" + c + ":control"},
		{k.MissionDispatchLock(id), "tt:town:mission:" + c + ":dispatch_lock"},
		{k.MissionActive(), "tt:town:mission:active"},
		{k.InFlight(id), "tt:town:tthost:inflight:" + c},
		{k.DeadLetter(id), "tt:town:tthost:deadletter:" + c},
		{k.Wake(id), "tt:town:tthost:wake:" + c},
		{k.AgentPattern(), "tt:town:agent:*"},
		{k.TaskPattern(), "tt:town:task:*"},
		{k.TownPattern(), "tt:town:*"},
		{NewKeys("a*[b]").AgentPattern(), `tt:a\*\[b\]:agent:*`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
