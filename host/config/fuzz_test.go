package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzLoad parses arbitrary bytes as tinytown.toml: it never panics, an
// error always names the file, and what loads saves to a file that loads
// again and saves to the same bytes.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"testdata/tt-central.toml", "testdata/new.toml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("name = \"t\"\n[tthost]\nheartbeat_secs = 0\n"))
	f.Add([]byte("name = \"t\"\n[townhall]\nx = [{a = 1979-05-27}, 1.5, inf]\n[future.deep]\n\"k k\" = \"\\u0001\"\n"))
	f.Add([]byte("name = 'x'\n[agent_clis.\"a b\"]\ncommand = \"c\"\nenv = { K = \"v\" }\nmore = [1,2]\n"))
	f.Add([]byte("[[townhall.list]]\na = 1\n[[townhall.list]]\nb = 2\n"))
	f.Add([]byte("\xff"))

	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Parse(FileName, doc)
		if err != nil {
			if !strings.HasPrefix(err.Error(), FileName) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		saved := c.Encode()
		again, err := Parse(FileName, saved)
		if err != nil {
			t.Fatalf("saved file does not load: %v\n--- input\n%q\n--- saved\n%s", err, doc, saved)
		}
		if resaved := again.Encode(); string(resaved) != string(saved) {
			t.Fatalf("save is not stable:\n--- first\n%s\n--- second\n%s", saved, resaved)
		}
	})
}
