package town

import (
	"strings"
	"unicode/utf8"
)

// Category is how the worker treats a message (tt's classify_message).
type Category int

const (
	CategoryTask Category = iota
	CategoryQuery
	CategoryInformational
	CategoryConfirmation
	CategoryOtherActionable
)

func (c Category) String() string {
	switch c {
	case CategoryTask:
		return "task"
	case CategoryQuery:
		return "query"
	case CategoryInformational:
		return "informational"
	case CategoryConfirmation:
		return "confirmation"
	case CategoryOtherActionable:
		return "other_actionable"
	}
	return "unknown"
}

// Actionable categories (task, query, other) go into the prompt;
// informational ones are summarised and confirmations counted.
func (c Category) Actionable() bool {
	return c == CategoryTask || c == CategoryQuery || c == CategoryOtherActionable
}

// InboxPrefix is what `tt inbox` shows before a message: [T] [Q] [I] [C] [!].
func (c Category) InboxPrefix() string {
	switch c {
	case CategoryTask:
		return "[T]"
	case CategoryQuery:
		return "[Q]"
	case CategoryInformational:
		return "[I]"
	case CategoryConfirmation:
		return "[C]"
	}
	return "[!]"
}

// Classify sorts a message exactly as tt's worker does (not as the library's
// is_actionable, which differs for ping and custom). Custom messages are
// decided by case-insensitive substring keywords in "<kind> <payload>",
// checked in order, so a kind such as "backup" is a confirmation ("ack").
func Classify(m *Message) Category {
	switch m.Type {
	case TypeTaskAssign, TypeTask:
		return CategoryTask
	case TypeQuery, TypeStatusRequest:
		return CategoryQuery
	case TypeInformational, TypeTaskDone, TypeTaskFailed, TypeStatusResponse, TypePing, TypePong:
		return CategoryInformational
	case TypeConfirmation:
		return CategoryConfirmation
	case TypeShutdown:
		return CategoryOtherActionable
	case TypeCustom:
		text := strings.ToLower(m.Kind + " " + m.Payload)
		switch {
		case containsAny(text, "ack", "thanks", "thank you", "received", "approved"):
			return CategoryConfirmation
		case containsAny(text, "info", "fyi", "status", "update"):
			return CategoryInformational
		case containsAny(text, "query", "question"):
			return CategoryQuery
		}
		return CategoryTask
	}
	// Unreachable for a parsed message; treat anything new as work rather
	// than silently dismissing it.
	return CategoryOtherActionable
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// SummarizeMessage is tt's one-line description of a message.
func SummarizeMessage(m *Message) string {
	switch m.Type {
	case TypeTaskAssign:
		return "task assignment " + m.TaskID
	case TypeTask:
		return m.Description
	case TypeQuery:
		return "question: " + m.Question
	case TypeInformational:
		return m.Summary
	case TypeConfirmation:
		if m.Ack.Kind == AckRejected {
			return "rejected: " + m.Ack.Reason
		}
		return string(m.Ack.Kind)
	case TypeTaskDone:
		return "task " + m.TaskID + " done: " + m.Result
	case TypeTaskFailed:
		return "task " + m.TaskID + " failed: " + m.Error
	case TypeStatusRequest:
		return "status requested"
	case TypeStatusResponse:
		if m.StatusTask != nil {
			return "status " + m.State + " (" + *m.StatusTask + ")"
		}
		return "status " + m.State
	case TypePing:
		return "ping"
	case TypePong:
		return "pong"
	case TypeShutdown:
		return "shutdown requested"
	case TypeCustom:
		return "[" + m.Kind + "] " + m.Payload
	}
	return string(m.Type)
}

// TruncateSummary shortens text to one line of at most max characters
// (Unicode scalar values, like Rust chars): the first non-empty line,
// trimmed; if longer than max, its first max-3 characters and "...".
//
// tt takes the first line even when it is empty, so text starting with a
// newline summarised to "" (docs/compatibility.md#d17); tthost skips
// leading empty lines.
func TruncateSummary(text string, max int) string {
	line := ""
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			line = l
			break
		}
	}
	if utf8.RuneCountInString(line) <= max {
		return line
	}
	keep := max - 3
	if keep < 0 {
		keep = 0
	}
	n := 0
	for i := range line {
		if n == keep {
			return line[:i] + "..."
		}
		n++
	}
	return line + "..."
}
