package prompt

import (
	"strings"
	"testing"
)

func baseTurn() Turn {
	return Turn{
		AgentName: "backend",
		TownName:  "demo",
		Actionable: []Item{
			{Urgent: true, From: "supervisor", Text: "question: is the API up?"},
			{From: "supervisor", TaskID: "0b8e1c2d-5f4a-4c3b-9a8e-7d6c5b4a3f21", TaskDescription: "Build the /health endpoint"},
		},
		Informational: []string{"deploy finished"},
		Confirmations: map[string]int{"received": 2, "approved": 1},
		Backlog:       Backlog{Total: 3, Matching: 0, Hint: "Prioritize tasks tagged backend/api/server/database."},
		Round:         2,
		MaxRounds:     10,
	}
}

func TestRenderShowsEverySectionInOrder(t *testing.T) {
	got := Render(baseTurn())
	order := []string{
		"# Agent: backend",
		`You are agent "backend" in the town "demo"`,
		"## Actionable Messages",
		"1. [URGENT] from supervisor: question: is the API up?",
		"2. [normal] task assignment from supervisor",
		"   Task ID: 0b8e1c2d-5f4a-4c3b-9a8e-7d6c5b4a3f21",
		"   Description: Build the /health endpoint",
		`   Complete with: tthost task complete 0b8e1c2d-5f4a-4c3b-9a8e-7d6c5b4a3f21 --result "what was done"`,
		"## Informational (batched summary)",
		"- deploy finished",
		"## Confirmations (auto-dismissed)",
		"- approved x1\n- received x2",
		"## Available Commands",
		"tthost backlog claim <task_id> backend",
		"# Priority message, read at the start of the next round",
		"## Backlog Snapshot",
		"- Total backlog tasks: 3",
		"No backlog tasks currently match your role hint. Do not claim unrelated work by default.",
		"## Current State",
		"- Round: 2/10",
		"- Actionable messages: 2",
		"- Urgent actionable: 1",
		"- Batched informational: 1",
		"- Auto-dismissed confirmations: 3",
		"## Your Workflow",
		`8. When a task is done, mark it complete: ` + "`" + `tthost task complete <task_id> --result "what was done"` + "`",
		"Run only the commands needed for the listed work",
	}
	pos := 0
	for _, want := range order {
		i := strings.Index(got[pos:], want)
		if i < 0 {
			t.Fatalf("prompt lacks %q after offset %d:\n%s", want, pos, got)
		}
		pos += i + len(want)
	}
	if strings.Contains(got, `\"`) {
		t.Errorf("prompt contains an escaped quote (docs/compatibility.md#d2):\n%s", got)
	}
}

func TestLiveSessionChangesOnlyTheUrgentComment(t *testing.T) {
	oneShot := Render(baseTurn())
	live := baseTurn()
	live.LiveSession = true
	got := Render(live)
	if !strings.Contains(got, "# Priority message, delivered into the live session") {
		t.Fatalf("live prompt lacks the live-session comment:\n%s", got)
	}
	if strings.Replace(got, "delivered into the live session", "read at the start of the next round", 1) != oneShot {
		t.Errorf("live and one-shot prompts differ beyond the urgent comment")
	}
}

func TestBacklogOverflowAndListing(t *testing.T) {
	tu := baseTurn()
	tu.Backlog = Backlog{Total: 12, Matching: 10, Hint: "h", Shown: []BacklogTask{
		{ID: "t1", Description: "first task", Tags: []string{"backend", "api"}},
		{ID: "t2", Description: strings.Repeat("x", 200)},
	}}
	got := Render(tu)
	for _, want := range []string{
		"Review and claim role-matching items:",
		"- t1 - first task [backend, api]",
		"- t2 - " + strings.Repeat("x", 87) + "...",
		"- ...and 8 more role-matching backlog task(s)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "No backlog tasks currently match") {
		t.Errorf("guard line shown although tasks match")
	}
}

func TestInformationalIsCappedAtEight(t *testing.T) {
	tu := baseTurn()
	tu.Informational = nil
	for i := 0; i < 11; i++ {
		tu.Informational = append(tu.Informational, "note")
	}
	got := Render(tu)
	if n := strings.Count(got, "- note\n"); n != MaxInformational {
		t.Errorf("shown %d informational lines, want %d", n, MaxInformational)
	}
	if !strings.Contains(got, "- ...and 3 more informational message(s)") {
		t.Errorf("missing overflow line:\n%s", got)
	}
}

func TestMissingTaskRecordSaysSo(t *testing.T) {
	tu := baseTurn()
	tu.Actionable = []Item{{From: "supervisor", TaskID: "abc"}}
	if got := Render(tu); !strings.Contains(got, "Task details unavailable") {
		t.Errorf("missing task record not reported:\n%s", got)
	}
}

func TestTruncate(t *testing.T) {
	cases := []struct {
		name, in string
		max      int
		want     string
	}{
		{"short text is unchanged", "hello", 10, "hello"},
		{"long text ends with dots", "abcdefghij", 8, "abcde..."},
		{"line breaks become spaces", "a\nb\n\nc", 10, "a b c"},
		{"counts runes, not bytes", "日本語のテキスト", 5, "日本..."},
		{"leading newline keeps the text", "\nreal text", 20, "real text"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Truncate(c.in, c.max); got != c.want {
				t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
			}
		})
	}
}

func TestRenderSteer(t *testing.T) {
	got := RenderSteer(Steer{AgentName: "a", Round: 3, MaxRounds: 5, Actionable: []Item{{Urgent: true, From: "supervisor", Text: "stop the deploy"}}})
	for _, want := range []string{"# Agent: a", "1. [URGENT] from supervisor: stop the deploy", "- Round: 3/5", "already working"} {
		if !strings.Contains(got, want) {
			t.Errorf("steer prompt lacks %q:\n%s", want, got)
		}
	}
}

// A long brief cut to Tinytown's limits must say it was cut, how long the
// whole is and how to read it, or the CLI works from its first hundred
// characters believing that is all.
func TestAShortenedItemSaysSoAndHowToReadTheWhole(t *testing.T) {
	const taskID = "0b8e1c2d-5f4a-4c3b-9a8e-7d6c5b4a3f21"
	const msgID = "7f3e2d1c-0b9a-4877-8655-443322110099"
	long := strings.Repeat("word ", 2000) // 10000 characters
	cases := []struct {
		name  string
		item  Item
		lines []string // the item's lines, exactly
	}{
		{
			name: "a long task description names tthost task show",
			item: Item{From: "supervisor", TaskID: taskID, TaskDescription: long, MessageID: msgID},
			lines: []string{
				"1. [normal] task assignment from supervisor",
				"   Task ID: " + taskID,
				"   Description: " + strings.Repeat("word ", 31) + "wo...",
				"   (shortened: the whole description has 10000 characters; read it with `tthost task show " + taskID + "`)",
				`   Complete with: tthost task complete ` + taskID + ` --result "what was done"`,
			},
		},
		{
			name: "a long message names tthost inbox show with its id",
			item: Item{Urgent: true, From: "peer", Text: long, MessageID: msgID},
			lines: []string{
				"1. [URGENT] from peer: " + strings.Repeat("word ", 23) + "wo...",
				"   (shortened: the whole message has 10000 characters; read it with `tthost inbox show " + msgID + "`)",
			},
		},
		{
			name: "a long message without an id still says it was cut",
			item: Item{From: "peer", Text: long},
			lines: []string{
				"1. [normal] from peer: " + strings.Repeat("word ", 23) + "wo...",
				"   (shortened: the whole message has 10000 characters)",
			},
		},
		{
			name:  "a message that fits says nothing more",
			item:  Item{From: "peer", Text: strings.Repeat("x", 120), MessageID: msgID},
			lines: []string{"1. [normal] from peer: " + strings.Repeat("x", 120)},
		},
		{
			name: "a description that fits says nothing more",
			item: Item{From: "supervisor", TaskID: taskID, TaskDescription: strings.Repeat("y", 160), MessageID: msgID},
			lines: []string{
				"   Task ID: " + taskID,
				"   Description: " + strings.Repeat("y", 160),
				`   Complete with: tthost task complete`,
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tu := baseTurn()
			tu.Actionable = []Item{c.item}
			for _, got := range []string{Render(tu), RenderSteer(Steer{AgentName: "a", Actionable: tu.Actionable})} {
				want := strings.Join(c.lines, "\n")
				if !strings.Contains(got, want) {
					t.Errorf("prompt lacks\n%s\nin:\n%s", want, got)
				}
				if strings.Count(got, "(shortened") != strings.Count(want, "(shortened") {
					t.Errorf("%d shortened notes, want %d:\n%s", strings.Count(got, "(shortened"), strings.Count(want, "(shortened"), got)
				}
			}
		})
	}
}
