package suite

import (
	"encoding/hex"
	"encoding/json"
	"time"
)

// Status is a check's outcome.
type Status string

const (
	// StatusPass: the plugin keeps the rules the check covers.
	StatusPass Status = "pass"
	// StatusFail: it broke at least one; Result.Message says how.
	StatusFail Status = "fail"
	// StatusNotDeclared: the check covers a capability the plugin does not
	// declare for the CLI under test, so the host never uses it and there
	// is nothing to prove.
	StatusNotDeclared Status = "not_declared"
	// StatusUnproven: the check found nothing wrong, but could not prove
	// what it covers against this target, and Result.Message says what is
	// missing: a plugin process (an in-process Backend has none), a CLI
	// that shows steered text or recalls a conversation (Prompts), or a
	// process of the session to look at. It is neither a pass nor a
	// failure: Report.OK stays true, and Run logs it in its subtest.
	StatusUnproven Status = "unproven"
)

// Result is one check's outcome.
type Result struct {
	// Name is the check's stable name, e.g. "turn_event_order".
	Name string
	// Status is pass, fail, not_declared or unproven.
	Status Status
	// Message says, for a failure, what was expected, what happened and
	// which rule of docs/protocol.md that breaks (one line per problem);
	// for a pass it may carry notes; for not_declared, which capability;
	// for unproven, what could not be proven and what would prove it.
	Message string
	// Duration is how long the check took.
	Duration time.Duration
	// Log is the end of the plugin's log during a failed check.
	Log string
}

// MarshalJSON writes the duration as milliseconds.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name       string  `json:"name"`
		Status     Status  `json:"status"`
		Message    string  `json:"message,omitempty"`
		DurationMS float64 `json:"duration_ms"`
		Log        string  `json:"log,omitempty"`
	}{r.Name, r.Status, r.Message, float64(r.Duration.Microseconds()) / 1000, r.Log})
}

// PluginInfo says what was tested.
type PluginInfo struct {
	// Path is the binary; empty for an in-process Backend (InProcess).
	Path            string   `json:"path"`
	InProcess       bool     `json:"in_process,omitempty"`
	SHA256          string   `json:"sha256"`
	Name            string   `json:"name,omitempty"`
	Version         string   `json:"version,omitempty"`
	ProtocolVersion int      `json:"protocol_version,omitempty"`
	CLI             string   `json:"cli,omitempty"`
	Capabilities    []string `json:"capabilities"`
	Command         string   `json:"command"`
}

// Report is the outcome of a suite run.
type Report struct {
	Plugin  PluginInfo `json:"plugin"`
	Results []Result   `json:"checks"`
	Summary Summary    `json:"summary"`
}

// Summary counts results by status.
type Summary struct {
	Passed      int  `json:"passed"`
	Failed      int  `json:"failed"`
	NotDeclared int  `json:"not_declared"`
	Unproven    int  `json:"unproven"`
	OK          bool `json:"ok"`
}

// OK reports whether no check failed (unproven and not declared checks
// are not failures).
func (r *Report) OK() bool { return r.Summary.OK }

// Failed returns the names of the failed checks.
func (r *Report) Failed() []string {
	var names []string
	for _, res := range r.Results {
		if res.Status == StatusFail {
			names = append(names, res.Name)
		}
	}
	return names
}

// Result returns the result of the named check.
func (r *Report) Result(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Name == name {
			return res, true
		}
	}
	return Result{}, false
}

func (r *Report) add(res Result) {
	r.Results = append(r.Results, res)
	switch res.Status {
	case StatusPass:
		r.Summary.Passed++
	case StatusFail:
		r.Summary.Failed++
	case StatusNotDeclared:
		r.Summary.NotDeclared++
	case StatusUnproven:
		r.Summary.Unproven++
	}
	r.Summary.OK = r.Summary.Failed == 0
}

func hexSum(b []byte) string { return hex.EncodeToString(b) }
