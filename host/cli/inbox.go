package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tthost/tthost/host/town"
)

// InboxOptions are `tthost inbox`'s arguments.
type InboxOptions struct {
	F     *Factory
	Agent string
	Limit int
	JSON  bool
}

// InboxView is `tthost inbox --json`.
type InboxView struct {
	Agent       string         `json:"agent"`
	Label       string         `json:"label"`
	Urgent      []InboxMessage `json:"urgent"`
	Inbox       []InboxMessage `json:"inbox"`
	InFlight    []InboxMessage `json:"in_flight"`
	UrgentLen   int64          `json:"urgent_len"`
	InboxLen    int64          `json:"inbox_len"`
	Unparseable int            `json:"unparseable"`
}

// InboxMessage is one message with how a worker treats it.
type InboxMessage struct {
	Prefix   string          `json:"prefix"`
	Category string          `json:"category"`
	From     string          `json:"from_name"`
	Summary  string          `json:"summary"`
	Message  json.RawMessage `json:"message"` // the message JSON as stored
}

// NewCmdInbox builds `tthost inbox AGENT`.
func NewCmdInbox(f *Factory, runF func(context.Context, *InboxOptions) error) *cobra.Command {
	opts := &InboxOptions{F: f}
	cmd := &cobra.Command{
		Use:   "inbox AGENT",
		Short: "Show an agent's waiting messages without taking them",
		Long: `inbox shows what waits for AGENT without consuming anything: its urgent list
(in the order a tthost worker takes it), its inbox, and the messages its
worker has taken but not finished (in flight). Each message carries tt's
prefix: [T] task, [Q] query, [I] informational, [C] confirmation,
[!] other actionable. Entries that are not valid messages are counted.
` + "`tthost inbox show MSG_ID`" + ` prints one message whole.`,
		Args: exactArgs(1, "AGENT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Agent = args[0]
			if opts.Limit < 1 {
				return usageError{fmt.Errorf("-n must be at least 1, got %d", opts.Limit)}
			}
			return dispatch(cmd, opts, runF, inboxRun)
		},
	}
	cmd.Flags().IntVarP(&opts.Limit, "limit", "n", 100, "show at most this many messages of each list")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print as JSON")
	cmd.AddCommand(NewCmdInboxShow(f, nil))
	return cmd
}

func inboxRun(ctx context.Context, opts *InboxOptions) error {
	f := opts.F
	store, err := f.Store(ctx)
	if err != nil {
		return err
	}
	r, err := resolveAgent(ctx, store, opts.Agent)
	if err != nil {
		return err
	}
	urgent, badU, err := store.PeekUrgent(ctx, r.ID, opts.Limit)
	if err != nil {
		return err
	}
	inbox, badI, err := store.PeekInbox(ctx, r.ID, opts.Limit)
	if err != nil {
		return err
	}
	entries, err := store.InFlight(ctx, r.ID)
	if err != nil {
		return err
	}
	var inflight []*town.Message
	badF := 0
	for i, e := range entries {
		if i >= opts.Limit {
			break
		}
		if e.Msg == nil {
			badF++
			continue
		}
		inflight = append(inflight, e.Msg)
	}
	ulen, err := store.UrgentLen(ctx, r.ID)
	if err != nil {
		return err
	}
	ilen, err := store.InboxLen(ctx, r.ID)
	if err != nil {
		return err
	}
	names, err := newAgentNames(ctx, store)
	if err != nil {
		return err
	}
	view := InboxView{
		Agent: r.ID, Label: resolvedLabel(r),
		Urgent: inboxMessages(urgent, names), Inbox: inboxMessages(inbox, names), InFlight: inboxMessages(inflight, names),
		UrgentLen: ulen, InboxLen: ilen, Unparseable: badU + badI + badF,
	}
	if opts.JSON {
		return printJSON(f.IO.Out, view)
	}
	out := f.IO.Out
	fmt.Fprintf(out, "📬 Inbox of %s: %d urgent, %d waiting, %d in flight\n", view.Label, ulen, ilen, len(entries))
	printInboxSection(out, "Urgent (taken first)", view.Urgent, ulen)
	printInboxSection(out, "Inbox", view.Inbox, ilen)
	printInboxSection(out, "In flight (taken by the worker, not finished)", view.InFlight, int64(len(entries)))
	if view.Unparseable > 0 {
		fmt.Fprintf(out, "⚠️  %d unparseable %s: not valid messages (a tthost worker dead-letters them; tt drops them)\n",
			view.Unparseable, plural(view.Unparseable, "entry", "entries"))
	}
	return nil
}

func inboxMessages(msgs []*town.Message, names *agentNames) []InboxMessage {
	out := make([]InboxMessage, 0, len(msgs))
	for _, m := range msgs {
		raw := json.RawMessage(m.Raw)
		if len(raw) == 0 || !json.Valid(raw) {
			b, _ := m.Marshal()
			raw = b
		}
		c := town.Classify(m)
		out = append(out, InboxMessage{
			Prefix: c.InboxPrefix(), Category: c.String(), From: names.name(m.From),
			Summary: town.SummarizeMessage(m), Message: raw,
		})
	}
	return out
}

func printInboxSection(w io.Writer, title string, msgs []InboxMessage, total int64) {
	if total == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, m := range msgs {
		var id struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(m.Message, &id)
		fmt.Fprintf(w, "  %s %s  (from %s, %s)\n", m.Prefix, oneLine(m.Summary, 100), m.From, shortTask(id.ID))
	}
	if int64(len(msgs)) < total {
		fmt.Fprintf(w, "  ...and %d more\n", total-int64(len(msgs)))
	}
}

// agentNames maps agent ids to names for display, re-reading the agents
// once per id it does not know (an agent spawned meanwhile).
type agentNames struct {
	ctx    context.Context
	store  *town.Store
	byID   map[string]string
	missed map[string]bool
}

func newAgentNames(ctx context.Context, store *town.Store) (*agentNames, error) {
	n := &agentNames{ctx: ctx, store: store, byID: map[string]string{}, missed: map[string]bool{}}
	return n, n.load()
}

func (n *agentNames) load() error {
	agents, err := n.store.ListAgents(n.ctx)
	if err != nil {
		return err
	}
	for _, a := range agents {
		n.byID[a.ID] = a.Name
	}
	return nil
}

func (n *agentNames) name(id string) string {
	switch id {
	case "":
		return "-"
	case town.SupervisorID:
		return "supervisor"
	}
	if s, ok := n.byID[id]; ok {
		return s
	}
	if !n.missed[id] {
		n.missed[id] = true
		_ = n.load()
		if s, ok := n.byID[id]; ok {
			return s
		}
	}
	return town.ShortID(id)
}
