package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// InboxShowOptions are `tthost inbox show`'s arguments.
type InboxShowOptions struct {
	F *Factory
	// MessageID is a message id, or a unique prefix of at least 4
	// characters (`tthost inbox` shows the first 8).
	MessageID string
	// Agent limits the search to one agent's lists; "" means the agent
	// running the command (TINYTOWN_AGENT_ID), else every agent.
	Agent string
	JSON  bool
}

// InboxShowView is `tthost inbox show --json`.
type InboxShowView struct {
	ID    string `json:"id"`
	Agent string `json:"agent"`
	Label string `json:"label"`
	// Place is "urgent", "inbox" or "in_flight".
	Place      string `json:"place"`
	FromUrgent bool   `json:"from_urgent,omitempty"`
	Type       string `json:"type"`
	From       string `json:"from_name"`
	// Text is the message's whole text: what a prompt shows shortened.
	Text string `json:"text"`
	// Task is a task assignment's task, with its whole description.
	Task        *TaskJSON       `json:"task,omitempty"`
	TaskProblem string          `json:"task_problem,omitempty"`
	Message     json.RawMessage `json:"message"` // the message JSON as stored
}

// NewCmdInboxShow builds `tthost inbox show MSG_ID`.
func NewCmdInboxShow(f *Factory, runF func(context.Context, *InboxShowOptions) error) *cobra.Command {
	opts := &InboxShowOptions{F: f}
	cmd := &cobra.Command{
		Use:   "show MSG_ID",
		Short: "Print one waiting or in-flight message whole",
		Long: `show prints a message that waits for an agent (urgent list or inbox) or that
its worker has taken and not finished (in flight), without taking it: where
it is, who sent it, and its whole text, which a turn's prompt shows cut to
120 characters. For a task assignment it also prints the task with its
whole description.

MSG_ID is the message's id (a prompt names it) or a unique prefix of at
least 4 characters (` + "`tthost inbox AGENT`" + ` shows the first 8). The search
covers --agent's lists; without --agent, those of the agent running the
command (TINYTOWN_AGENT_ID, as inside a turn), else every agent's and the
supervisor's mailbox. A message that is not found is an error (exit 1):
it may have been handled already.`,
		Example: `  tthost inbox show 7f3e2d1c-0b9a-4877-8655-443322110099
  tthost inbox show 7f3e2d1c --agent backend --json`,
		Args: exactArgs(1, "MSG_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.MessageID = args[0]
			return dispatch(cmd, opts, runF, inboxShowRun)
		},
	}
	cmd.Flags().StringVar(&opts.Agent, "agent", "", "look only in this agent's lists")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print as JSON")
	return cmd
}

// mailbox is one agent's lists to search.
type mailbox struct {
	id, label string
}

func inboxShowRun(ctx context.Context, opts *InboxShowOptions) error {
	f := opts.F
	ref := strings.ToLower(strings.TrimSpace(opts.MessageID))
	exact, err := town.ParseID(ref)
	if err != nil && utf8.RuneCountInString(ref) < 4 {
		return usageError{fmt.Errorf("%q is not a message id: give the whole id or at least its first 4 characters", opts.MessageID)}
	}
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	boxes, where, err := mailboxesToSearch(ctx, f, store, opts.Agent)
	if err != nil {
		return err
	}

	var found *town.Queued
	var in mailbox
	var ids []string
	for _, b := range boxes {
		queued, err := store.Waiting(ctx, b.id)
		if err != nil {
			return err
		}
		for i, q := range queued {
			if q.Msg == nil || !(q.Msg.ID == exact || exact == "" && strings.HasPrefix(q.Msg.ID, ref)) {
				continue
			}
			if found == nil {
				found, in = &queued[i], b
			}
			if !slices.Contains(ids, q.Msg.ID) {
				ids = append(ids, q.Msg.ID)
			}
		}
	}
	switch {
	case len(ids) > 1:
		return fmt.Errorf("message id prefix %q matches %d messages (%s): give more characters", opts.MessageID, len(ids), strings.Join(ids, ", "))
	case found == nil:
		return fmt.Errorf("no message %s is waiting or in flight: looked in %s. It may have been handled already "+
			"(`tthost events` shows the turns), or be another agent's (name it with --agent)", opts.MessageID, where)
	}

	names, err := newAgentNames(ctx, store)
	if err != nil {
		return err
	}
	m := found.Msg
	v := InboxShowView{
		ID: m.ID, Agent: in.id, Label: in.label, Place: string(found.Place), FromUrgent: found.FromUrgent,
		Type: string(m.Type), From: names.name(m.From), Text: town.SummarizeMessage(m), Message: json.RawMessage(found.Raw),
	}
	if !json.Valid(v.Message) {
		v.Message, _ = m.Marshal()
	}
	if m.Type == town.TypeTaskAssign {
		t, err := store.GetTask(ctx, m.TaskID)
		switch {
		case err == nil:
			tj := taskJSON(t, names)
			v.Task = &tj
		case errors.Is(err, town.ErrTaskNotFound):
			v.TaskProblem = fmt.Sprintf("task %s has no record: it was deleted, or the sender never created it", m.TaskID)
		default:
			return err
		}
	}
	if opts.JSON {
		return printJSON(f.IO.Out, v)
	}
	printInboxMessage(f.IO.Out, v, jsonTime(m.CreatedAt))
	return nil
}

// mailboxesToSearch is --agent's lists, else the running agent's, else
// every agent's and the supervisor's; where says so for a not-found error.
func mailboxesToSearch(ctx context.Context, f *Factory, store *town.Store, ref string) (boxes []mailbox, where string, err error) {
	if ref == "" {
		id, err := agentIDFromEnv(f)
		if err != nil {
			return nil, "", err
		}
		ref = id
	}
	if ref != "" {
		r, err := resolveAgent(ctx, store, ref)
		if errors.Is(err, town.ErrAgentNotFound) && town.IsID(ref) {
			// A worker may serve an agent that has no record: its lists
			// exist all the same.
			r, err = town.Resolved{ID: ref}, nil
		}
		if err != nil {
			return nil, "", err
		}
		b := mailbox{id: r.ID, label: resolvedLabel(r)}
		if r.Agent == nil && r.ID != town.SupervisorID {
			b.label = town.ShortID(r.ID)
		}
		k := store.Keys()
		return []mailbox{b}, fmt.Sprintf("the urgent list, inbox and in-flight list of %s (%s, %s, %s)",
			b.label, k.Urgent(r.ID), k.Inbox(r.ID), k.InFlight(r.ID)), nil
	}
	agents, err := store.ListAgents(ctx)
	if err != nil {
		return nil, "", err
	}
	for _, a := range agents {
		boxes = append(boxes, mailbox{id: a.ID, label: label(a)})
	}
	boxes = append(boxes, mailbox{id: town.SupervisorID, label: "supervisor"})
	return boxes, fmt.Sprintf("the urgent lists, inboxes and in-flight lists of %d %s and the supervisor's mailbox",
		len(agents), plural(len(agents), "agent", "agents")), nil
}

func printInboxMessage(w io.Writer, v InboxShowView, created string) {
	place := map[string]string{
		string(town.PlaceUrgent): "urgent list (waiting)",
		string(town.PlaceInbox):  "inbox (waiting)",
	}[v.Place]
	if v.Place == string(town.PlaceInFlight) {
		from := "inbox"
		if v.FromUrgent {
			from = "urgent list"
		}
		place = "in flight (taken by the worker from its " + from + ", not finished)"
	}
	fmt.Fprintf(w, "✉️  Message %s\n", v.ID)
	fmt.Fprintf(w, "   %-13s %s\n", "Type:", v.Type)
	fmt.Fprintf(w, "   %-13s %s\n", "From:", v.From)
	fmt.Fprintf(w, "   %-13s %s\n", "To:", v.Label)
	fmt.Fprintf(w, "   %-13s %s\n", "Where:", place)
	if created != "" {
		fmt.Fprintf(w, "   %-13s %s\n", "Created:", created)
	}
	fmt.Fprintf(w, "   Text (%d characters):\n", utf8.RuneCountInString(v.Text))
	for l := range strings.SplitSeq(v.Text, "\n") {
		fmt.Fprintf(w, "     %s\n", l)
	}
	switch {
	case v.Task != nil:
		printTask(w, *v.Task)
	case v.TaskProblem != "":
		fmt.Fprintf(w, "⚠️  %s\n", v.TaskProblem)
	}
}
