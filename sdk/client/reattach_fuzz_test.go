package client_test

import (
	"testing"

	"github.com/tthost/tthost/sdk/client"
)

// FuzzParseReattach: the debug-mode variable is typed or pasted by people;
// whatever it holds is an error or entries, never a panic.
func FuzzParseReattach(f *testing.F) {
	f.Add(`{"echo":{"protocol":"grpc","protocol_version":1,"pid":42,"addr":{"network":"unix","string":"/tmp/x/plugin1"}}}`)
	f.Add(`{}`)
	f.Add(`null`)
	f.Add(`{"a":1}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, v string) {
		m, err := client.ParseReattach(v)
		if err != nil && m != nil {
			t.Fatalf("entries %v with error %v", m, err)
		}
	})
}
