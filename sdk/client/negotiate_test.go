package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/testhooks"
)

// TestTheHighestProtocolVersionBothSidesSpeakIsUsed: a plugin serves every
// protocol version its SDK supports, and the host gets the highest one it
// speaks too. The multi plugin serves 1 and 2; version 2 stands for a
// future contract (it is the v1 service under another number).
func TestTheHighestProtocolVersionBothSidesSpeakIsUsed(t *testing.T) {
	bin := build(t, "multi")
	cases := []struct {
		host []int
		want int
	}{
		{[]int{1}, 1},    // today's host: an upgraded plugin keeps working
		{[]int{1, 2}, 2}, // a host that speaks both gets the newer one
	}
	for _, c := range cases {
		testhooks.ClientProtocolVersions = c.host
		t.Cleanup(func() { testhooks.ClientProtocolVersions = nil })
		e := newEnv(t)
		p := e.launch(bin)
		if got := p.Description().ProtocolVersion; got != c.want {
			t.Errorf("host speaking %v: the plugin serves protocol %d, want %d", c.host, got, c.want)
		}
		// The negotiated version serves sessions.
		s, err := p.OpenSession(context.Background(), sdk.SessionConfig{CLIName: "echo"})
		if err != nil {
			t.Fatalf("host speaking %v: open: %v", c.host, err)
		}
		_ = s.Close(context.Background(), sdk.CloseImmediate)
		if err := p.Stop(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
}
