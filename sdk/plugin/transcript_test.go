//go:build linux

package plugin_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk/plugin"
)

func TestTranscript(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "deep", "round_1.log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("an older, longer transcript\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := plugin.OpenTranscript(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("an existing transcript was not truncated: %q", b)
	}
	_, _ = tr.WriteString("streamed text")
	tr.Note("tool %s `%s`", "command", "ls\n-la")
	_, _ = tr.WriteString("more\n")
	tr.EndLine() // at the start of a line: nothing
	_, _ = tr.WriteString("end")
	tr.EndLine()
	if err := tr.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "streamed text\n[tool command `ls -la`]\nmore\nend\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("transcript %q, want %q", b, want)
	}
	// Buffered text reaches the file by itself, soon.
	_, _ = tr.WriteString("live")
	if !waitFileIs(t, path, want+"live", 5*time.Second) {
		b, _ := os.ReadFile(path)
		t.Fatalf("buffered text did not reach the file: %q", b)
	}
	if err := tr.Close(); err != nil || tr.Close() != nil {
		t.Fatal(err)
	}
	_, _ = tr.WriteString("after close")
	if b, _ := os.ReadFile(path); string(b) != want+"live" {
		t.Errorf("written after Close: %q", b)
	}
}

func TestANilTranscriptIgnoresEverything(t *testing.T) {
	tr, err := plugin.OpenTranscript("")
	if tr != nil || err != nil {
		t.Fatalf("OpenTranscript(\"\") = %v, %v", tr, err)
	}
	if n, err := tr.WriteString("x"); n != 1 || err != nil {
		t.Error("a nil transcript refused a write")
	}
	tr.Note("x")
	tr.EndLine()
	if tr.Flush() != nil || tr.Close() != nil || tr.Err() != nil {
		t.Error("a nil transcript reported an error")
	}
}

func TestATranscriptThatCannotBeCreatedSaysWhy(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := plugin.OpenTranscript(filepath.Join(file, "turn.log")); err == nil {
		t.Error("a transcript under a file was created")
	}
}
