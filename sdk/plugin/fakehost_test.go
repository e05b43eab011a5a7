package plugin_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	backendv1 "github.com/tthost/tthost/sdk/internal/pb/tthost/backend/v1"
	"github.com/tthost/tthost/sdk/internal/wire"
)

// fakeHostEnv, set to a plugin binary's path, makes the test binary act as
// a host (runFakeHost) instead of running tests.
const fakeHostEnv = "TTHOST_TEST_FAKE_HOST_PLUGIN"

// runFakeHost launches the plugin at path the way a host that supports
// reattach does (own process group, no parent-death signal), opens a
// session, reads its events up to SessionReady, prints
// "PLUGIN <pid> <network> <addr> <session id>" and waits to be killed.
func runFakeHost(path string) int {
	cmd := exec.Command(path)
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.ClientPlugins(wire.Versions),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Cmd:              cmd,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "fakehost", Output: os.Stderr, Level: hclog.Info}),
	})
	rpc, err := c.Client()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake host: launch:", err)
		return 1
	}
	raw, err := rpc.Dispense(wire.PluginName)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake host: dispense:", err)
		return 1
	}
	b := raw.(backendv1.BackendClient)
	ctx := context.Background()
	r, err := b.OpenSession(ctx, &backendv1.OpenSessionRequest{CliName: "echo"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake host: open session:", err)
		return 1
	}
	events, err := b.Events(ctx, &backendv1.EventsRequest{SessionId: r.GetSessionId()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake host: events:", err)
		return 1
	}
	for {
		e, err := events.Recv()
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake host: events:", err)
			return 1
		}
		if e.GetSessionReady() != nil {
			break
		}
	}
	rc := c.ReattachConfig()
	fmt.Printf("PLUGIN %d %s %s %s\n", rc.Pid, rc.Addr.Network(), rc.Addr.String(), r.GetSessionId())
	select {} // until killed; the Events stream stays open
}
