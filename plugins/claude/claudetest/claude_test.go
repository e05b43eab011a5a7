package claudetest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRealClaudeTalksToTheMock runs the pinned claude in streaming mode
// against the mock: one text turn, and the mock saw the prompt (and
// nothing but what it serves: it fails the test otherwise).
func TestRealClaudeTalksToTheMock(t *testing.T) {
	mock := NewMockAnthropic(t, nil)
	home := NewHome(t)
	cmd := exec.Command(Binary(t), "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), Env(home, mock)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	if _, err := io.WriteString(stdin, `{"type":"user","message":{"role":"user","content":"hello mock"}}`+"\n"); err != nil {
		t.Fatal(err)
	}
	results := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["type"] == "result" {
				results <- m
				return
			}
		}
		close(results)
	}()
	select {
	case res, ok := <-results:
		if !ok {
			t.Fatal("claude's output ended without a result")
		}
		if res["subtype"] != "success" || res["result"] != "echo: hello mock" {
			t.Errorf("result %v: %v", res["subtype"], res["result"])
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no result from claude within 60s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := mock.WaitRequest(ctx, func(r Request) bool { return strings.Contains(r.LastUserText(), "hello mock") })
	if err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("x-api-key") != APIKey || !req.Stream || len(req.Tools) == 0 {
		t.Errorf("request: key %q stream %v tools %v", req.Header.Get("x-api-key"), req.Stream, req.Tools)
	}
}
