package stderrtail

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLastLinesAndLog(t *testing.T) {
	var tl Tail
	log := filepath.Join(t.TempDir(), "logs", "agent.log")
	if err := tl.OpenLog(log); err != nil {
		t.Fatal(err)
	}
	for i := range 20000 {
		fmt.Fprintf(&tl, "line %d\n", i)
	}
	got := tl.LastLines()
	lines := strings.Split(got, "\n")
	if len(lines) != 10 || lines[9] != "line 19999" || lines[0] != "line 19990" {
		t.Errorf("LastLines = %q", got)
	}
	tl.Close()
	b, err := os.ReadFile(log)
	if err != nil || !strings.HasPrefix(string(b), "line 0\n") || !strings.HasSuffix(string(b), "line 19999\n") {
		t.Errorf("log: %v, %d bytes", err, len(b))
	}
	var empty Tail
	if empty.LastLines() != "" {
		t.Error("an empty tail has lines")
	}
}

// Quote ends an error message with the tail, and adds nothing when the CLI
// said nothing on stderr.
func TestQuote(t *testing.T) {
	var tl Tail
	if q := tl.Quote(); q != "" {
		t.Errorf("an empty tail quoted %q", q)
	}
	fmt.Fprint(&tl, "\n  panic: boom\n")
	if q := tl.Quote(); q != "; its last output on stderr:\npanic: boom" {
		t.Errorf("Quote = %q", q)
	}
}
