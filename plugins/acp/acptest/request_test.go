package acptest

import (
	"testing"
)

func TestParseRequestAndTheUserTexts(t *testing.T) {
	t.Parallel()
	body := []byte(`{"contents":[
	 {"role":"user","parts":[{"text":"<session_context>\nThis is the Gemini CLI."},{"text":"first"}]},
	 {"role":"model","parts":[{"text":"thinking","thought":true},{"functionCall":{"name":"run_shell_command","args":{"command":"echo hi"}}}]},
	 {"role":"user","parts":[{"functionResponse":{"name":"run_shell_command","response":{"output":"hi"}}}]},
	 {"role":"model","parts":[{"text":"done"}]},
	 {"role":"user","parts":[{"text":"second"}]},
	 {"role":"user","parts":[{"functionResponse":{"name":"read_file","response":{"output":"x"}}}]}]}`)
	var r Request
	if err := parseRequest(body, &r); err != nil {
		t.Fatal(err)
	}
	if u := r.UserTexts(); len(u) != 2 || u[0] != "first" || u[1] != "second" || r.LastUserText() != "second" {
		t.Fatalf("user texts %q", u)
	}
	if c := r.Contents[1].Calls; len(c) != 1 || c[0].Name != "run_shell_command" || c[0].JSON != `{"command":"echo hi"}` || len(r.Contents[1].Texts) != 0 {
		t.Fatalf("model content %+v", r.Contents[1])
	}
	if res := r.ResponsesSinceLastUser(); len(res) != 1 || res[0].Name != "read_file" {
		t.Fatalf("responses since the last user text %+v", res)
	}
	if got := DefaultScript(Request{Contents: []Content{{Role: "user", Texts: []string{"a SLOW_STREAM\nURGENT now"}}}}); got.Text != "urgent: URGENT now" {
		t.Fatalf("urgent reply %+v", got)
	}
}

// FuzzParseRequest: whatever gemini sends is parsed or refused, never a
// panic, and the helpers work on what was parsed.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"contents":[{"role":"user","parts":[{"text":"hi"},{"functionResponse":{"name":"x","response":{}}}]}]}`))
	f.Add([]byte(`{"contents":[{"parts":[{"functionCall":null}]}]}`))
	f.Add([]byte(`{"contents":7}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if parseRequest(b, &r) == nil {
			_ = r.UserTexts()
			_ = r.ResponsesSinceLastUser()
			_ = DefaultScript(r)
		}
	})
}
