// Package prompt renders the text an agent's CLI receives for a turn.
//
// The prompt keeps Tinytown's sections (actionable messages, informational
// summary, confirmations, available commands, backlog snapshot, current
// state, workflow) so an agent that knows `tt` knows `tthost`, but it is
// written in tthost's own words and names tthost commands. One renderer
// serves both the one-shot and the persistent (live session) runtime; only
// the comment on the urgent command differs. Tinytown duplicated the
// template per runtime and the copies drifted (docs/compatibility.md#d1
// and #d2); here the backlog overflow and guard lines and the closing line
// appear in both.
package prompt

import (
	"fmt"
	"sort"
	"strings"
	"text/template"
	"unicode/utf8"
)

// Item is one actionable message in a prompt.
type Item struct {
	// Urgent marks a message that came from the urgent queue.
	Urgent bool
	// From is the sender: an agent id, or "supervisor".
	From string
	// TaskID is set for a task assignment; TaskDescription is the task's
	// description ("" when the task record is missing).
	TaskID          string
	TaskDescription string
	// Text describes any other message (see town.SummarizeMessage).
	Text string
	// MessageID is the message's id. When Text is too long to show whole,
	// the prompt names the command that prints it by this id.
	MessageID string
}

// BacklogTask is one role-matching backlog task shown in the prompt.
type BacklogTask struct {
	ID          string
	Description string
	Tags        []string
}

// Backlog is the backlog snapshot for the agent's role.
type Backlog struct {
	Total    int
	Matching int
	Shown    []BacklogTask
	Hint     string
}

// Turn is everything a turn prompt shows.
type Turn struct {
	AgentName string
	TownName  string
	// Actionable messages, urgent ones first.
	Actionable []Item
	// Informational holds one summary per informational message.
	Informational []string
	// Confirmations counts auto-dismissed confirmations per summary.
	Confirmations map[string]int
	Backlog       Backlog
	Round         int
	MaxRounds     int
	// LiveSession is true for a persistent runtime, where urgent messages
	// reach the running turn instead of waiting for the next round.
	LiveSession bool
}

// Limits on what a prompt shows, from Tinytown.
const (
	MaxInformational      = 8
	taskDescriptionChars  = 160
	messageTextChars      = 120
	backlogDescription    = 90
	confirmationKeyChars  = 60
	informationalSumChars = 100
)

// Truncate cuts s to at most max characters (runes), ending with "..." when
// it was cut. It keeps the text on one line: line breaks become spaces.
func Truncate(s string, max int) string {
	t, _ := truncate(s, max)
	return t
}

// truncate is Truncate that also says whether it cut anything.
func truncate(s string, max int) (string, bool) {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= max {
		return s, false
	}
	if max <= 3 {
		return string([]rune(s)[:max]), true
	}
	return string([]rune(s)[:max-3]) + "...", true
}

// shortened is the line under an item whose text was cut: how long the
// whole is, and the command that prints it ("" when there is none), so a
// CLI never mistakes the first hundred characters of a long brief for all
// of it.
func shortened(what, full, command string) string {
	line := fmt.Sprintf("   (shortened: the whole %s has %d characters", what, utf8.RuneCountInString(full))
	if command != "" {
		line += "; read it with `" + command + "`"
	}
	return line + ")"
}

type view struct {
	Turn
	Items             []string
	InfoShown         []string
	InfoMore          int
	ConfirmationLines []string
	BacklogLines      []string
	BacklogMore       int
	UrgentActionable  int
	ConfirmationCount int
	UrgentComment     string
}

// Render returns the prompt for a turn.
func Render(t Turn) string {
	v := view{Turn: t, UrgentComment: "# Priority message, read at the start of the next round"}
	if t.LiveSession {
		v.UrgentComment = "# Priority message, delivered into the live session"
	}
	for i, it := range t.Actionable {
		v.Items = append(v.Items, renderItem(i+1, it))
		if it.Urgent {
			v.UrgentActionable++
		}
	}
	for i, s := range t.Informational {
		if i == MaxInformational {
			v.InfoMore = len(t.Informational) - MaxInformational
			break
		}
		v.InfoShown = append(v.InfoShown, Truncate(s, informationalSumChars))
	}
	keys := make([]string, 0, len(t.Confirmations))
	for k, n := range t.Confirmations {
		keys = append(keys, k)
		v.ConfirmationCount += n
	}
	sort.Strings(keys)
	for _, k := range keys {
		v.ConfirmationLines = append(v.ConfirmationLines, fmt.Sprintf("- %s x%d", Truncate(k, confirmationKeyChars), t.Confirmations[k]))
	}
	for _, bt := range t.Backlog.Shown {
		line := fmt.Sprintf("- %s - %s", bt.ID, Truncate(bt.Description, backlogDescription))
		if len(bt.Tags) > 0 {
			line += " [" + strings.Join(bt.Tags, ", ") + "]"
		}
		v.BacklogLines = append(v.BacklogLines, line)
	}
	if t.Backlog.Matching > len(t.Backlog.Shown) {
		v.BacklogMore = t.Backlog.Matching - len(t.Backlog.Shown)
	}
	var b strings.Builder
	if err := turnTemplate.Execute(&b, v); err != nil {
		// The template is fixed and its data is plain values: an error here
		// is a programming mistake caught by the tests.
		panic(err)
	}
	return b.String()
}

func renderItem(n int, it Item) string {
	prio := "normal"
	if it.Urgent {
		prio = "URGENT"
	}
	if it.TaskID != "" {
		desc := "Task details unavailable (the task record is missing)"
		if it.TaskDescription != "" {
			text, cut := truncate(it.TaskDescription, taskDescriptionChars)
			desc = "Description: " + text
			if cut {
				desc += "\n" + shortened("description", it.TaskDescription, "tthost task show "+it.TaskID)
			}
		}
		return fmt.Sprintf("%d. [%s] task assignment from %s\n"+
			"   Task ID: %s\n"+
			"   %s\n"+
			"   Complete with: tthost task complete %s --result \"what was done\"\n"+
			"   The Task ID above is the real task id; mission or work-item UUIDs in the description are not.",
			n, prio, it.From, it.TaskID, desc, it.TaskID)
	}
	text, cut := truncate(it.Text, messageTextChars)
	line := fmt.Sprintf("%d. [%s] from %s: %s", n, prio, it.From, text)
	if cut {
		command := ""
		if it.MessageID != "" {
			command = "tthost inbox show " + it.MessageID
		}
		line += "\n" + shortened("message", it.Text, command)
	}
	return line
}

// Steer is an urgent follow-up delivered into a running turn.
type Steer struct {
	AgentName  string
	Actionable []Item
	Round      int
	MaxRounds  int
}

// RenderSteer returns the text steered into a live turn.
func RenderSteer(s Steer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Agent: %s\n\n", s.AgentName)
	b.WriteString("Urgent follow-up for your live session: handle it now, before you continue the current work.\n\n")
	b.WriteString("## Actionable Messages (already taken from your urgent queue)\n\n")
	for i, it := range s.Actionable {
		b.WriteString(renderItem(i+1, it))
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n## Current State\n- Round: %d/%d\n- This message arrived while you were already working.\n", s.Round, s.MaxRounds)
	return b.String()
}

var turnTemplate = template.Must(template.New("turn").Parse(`# Agent: {{.AgentName}}

You are agent "{{.AgentName}}" in the town "{{.TownName}}". A tthost worker runs your turns; coordinate with other agents through the tthost commands below.

## Actionable Messages (already taken from your inbox)

{{range .Items}}{{.}}
{{else}}(none)
{{end}}
{{- if .InfoShown}}
## Informational (batched summary)

{{range .InfoShown}}- {{.}}
{{end}}{{if .InfoMore}}- ...and {{.InfoMore}} more informational message(s)
{{end}}{{end}}
{{- if .ConfirmationLines}}
## Confirmations (auto-dismissed)

{{range .ConfirmationLines}}{{.}}
{{end}}{{end}}
## Available Commands

` + "```bash" + `
tthost status                                  # Town status and every agent
tthost assign <agent> "task"                   # Give another agent actionable work
tthost backlog list                            # Unassigned backlog tasks
tthost backlog claim <task_id> {{.AgentName}}  # Take a backlog task yourself
tthost send <agent> --query "question"         # Ask for an answer
tthost send <agent> --info "update"            # Send an FYI
tthost send <agent> --ack "received"           # Acknowledge
tthost send <agent> --urgent --query "..."     {{.UrgentComment}}
tthost task current                            # Your tracked current task
tthost task complete <task_id> --result "summary"  # Mark a task done
` + "```" + `

## Backlog Snapshot

- Total backlog tasks: {{.Backlog.Total}}
- Role-matching backlog tasks: {{.Backlog.Matching}}
- Role match hint: {{.Backlog.Hint}}
{{- if .BacklogLines}}
Review and claim role-matching items:
{{range .BacklogLines}}{{.}}
{{end}}{{if .BacklogMore}}- ...and {{.BacklogMore}} more role-matching backlog task(s)
{{end}}{{else if .Backlog.Total}}
No backlog tasks currently match your role hint. Do not claim unrelated work by default.
{{end}}
## Current State

- Round: {{.Round}}/{{.MaxRounds}}
- Actionable messages: {{len .Actionable}}
- Urgent actionable: {{.UrgentActionable}}
- Batched informational: {{len .Informational}}
- Auto-dismissed confirmations: {{.ConfirmationCount}}

## Your Workflow

1. Handle every actionable message above.
2. With no direct assignment, or spare capacity, review the backlog and claim one task that matches your role.
3. Claim only work that matches your role hint; leave unrelated tasks for others.
4. Message other agents directly for concrete handoffs, review requests and unblock checks.
5. Write to ` + "`supervisor`" + ` (or ` + "`conductor`" + `) for human guidance, priority changes, sequencing, escalation or town-wide visibility.
6. When blocked, send a query that says exactly what would unblock you.
7. Check the real task id with ` + "`tthost task current`" + ` before completing work; never use mission or work-item UUIDs from a description as the task id.
8. When a task is done, mark it complete: ` + "`tthost task complete <task_id> --result \"what was done\"`" + `
9. Send informational updates or confirmations as appropriate, including FYI summaries to the supervisor when it should stay informed.

Run only the commands needed for the listed work; this round's inbox messages are already shown above.
`))
