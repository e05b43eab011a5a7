package town

import "testing"

func TestClassifyFollowsTheWorkersTable(t *testing.T) {
	a, b := NewID(), NewID()
	for _, tc := range []struct {
		m      *Message
		want   Category
		prefix string
	}{
		{NewTaskAssign(a, b, NewID()), CategoryTask, "[T]"},
		{NewTask(a, b, "x"), CategoryTask, "[T]"},
		{NewQuery(a, b, "x"), CategoryQuery, "[Q]"},
		{NewStatusRequest(a, b), CategoryQuery, "[Q]"},
		{NewShutdown(a, b), CategoryOtherActionable, "[!]"},
		{NewInfo(a, b, "x"), CategoryInformational, "[I]"},
		{NewTaskDone(a, b, "t", "r"), CategoryInformational, "[I]"},
		{NewTaskFailed(a, b, "t", "e"), CategoryInformational, "[I]"},
		{NewStatusResponse(a, b, "idle", nil), CategoryInformational, "[I]"},
		{NewPing(a, b), CategoryInformational, "[I]"},
		{NewPong(a, b), CategoryInformational, "[I]"},
		{NewAck(a, b, "ok"), CategoryConfirmation, "[C]"},
		// custom: keyword rules in order, substring and case-insensitive
		{NewCustom(a, b, "backup", "nightly"), CategoryConfirmation, "[C]"}, // "ack" in backup
		{NewCustom(a, b, "note", "Thank You"), CategoryConfirmation, "[C]"},
		{NewCustom(a, b, "x", "RECEIVED and approved"), CategoryConfirmation, "[C]"},
		{NewCustom(a, b, "FYI", "status update"), CategoryInformational, "[I]"},
		{NewCustom(a, b, "information", ""), CategoryInformational, "[I]"},
		{NewCustom(a, b, "ask", "a question"), CategoryQuery, "[Q]"},
		{NewCustom(a, b, "query", "status"), CategoryInformational, "[I]"}, // rule 2 before rule 3
		{NewCustom(a, b, "deploy", "prod"), CategoryTask, "[T]"},
	} {
		got := Classify(tc.m)
		if got != tc.want || got.InboxPrefix() != tc.prefix {
			t.Errorf("%s %q/%q: %v %s, want %v %s", tc.m.Type, tc.m.Kind, tc.m.Payload, got, got.InboxPrefix(), tc.want, tc.prefix)
		}
		wantActionable := tc.want == CategoryTask || tc.want == CategoryQuery || tc.want == CategoryOtherActionable
		if got.Actionable() != wantActionable {
			t.Errorf("%v.Actionable() = %v", got, got.Actionable())
		}
	}
}

func TestSummarizeMessageMatchesTT(t *testing.T) {
	a, b := NewID(), NewID()
	task := "0b8e1c2d-5f4a-4c3b-9a8e-7d6c5b4a3f21"
	for _, tc := range []struct {
		m    *Message
		want string
	}{
		{NewTaskAssign(a, b, task), "task assignment " + task},
		{NewTask(a, b, "do it"), "do it"},
		{NewQuery(a, b, "why"), "question: why"},
		{NewInfo(a, b, "news"), "news"},
		{NewAck(a, b, "received"), "received"},
		{NewAck(a, b, "ok"), "acknowledged"},
		{NewAck(a, b, "thanks"), "thanks"},
		{NewAck(a, b, "approved"), "approved"},
		{NewAck(a, b, "rejected: no"), "rejected: no"},
		{NewTaskDone(a, b, "t1", "ok"), "task t1 done: ok"},
		{NewTaskFailed(a, b, "t1", "boom"), "task t1 failed: boom"},
		{NewStatusRequest(a, b), "status requested"},
		{NewStatusResponse(a, b, "idle", nil), "status idle"},
		{NewStatusResponse(a, b, "working", ptr("t1")), "status working (t1)"},
		{NewPing(a, b), "ping"},
		{NewPong(a, b), "pong"},
		{NewShutdown(a, b), "shutdown requested"},
		{NewCustom(a, b, "k", "p"), "[k] p"},
	} {
		if got := SummarizeMessage(tc.m); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.m.Type, got, tc.want)
		}
	}
}

func TestTruncateSummaryKeepsOneNonEmptyLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"  padded  \nsecond", 10, "padded"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven chars", 10, "eleven ..."},
		{"\n\n  first real line\nnext", 100, "first real line"}, // not "": docs/compatibility.md#d17
		{"\r\nwindows\r\n", 100, "windows"},
		{"ééééééééééé", 10, "ééééééé..."}, // counts characters, not bytes
		{"", 5, ""},
		{"abcdef", 2, "..."},
	} {
		if got := TruncateSummary(tc.in, tc.max); got != tc.want {
			t.Errorf("TruncateSummary(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}
