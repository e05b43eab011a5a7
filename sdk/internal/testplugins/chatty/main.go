// Command chatty is a test plugin that prints to stdout in init, in main
// before Serve, and on every OpenSession: the SDK's stdout guard must keep
// the handshake intact, and the host must log the text instead.
package main

import (
	"context"
	"fmt"

	"github.com/tthost/tthost/sdk/plugin"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/testplugins/echobackend"
)

func init() {
	fmt.Println("hello from chatty init")
}

type chatty struct{ *echobackend.Backend }

func (c chatty) OpenSession(ctx context.Context, cfg sdk.SessionConfig, events sdk.EventSink) (sdk.Session, error) {
	fmt.Println("hello from chatty OpenSession")
	return c.Backend.OpenSession(ctx, cfg, events)
}

func main() {
	fmt.Println("hello from chatty main")
	plugin.Serve(chatty{echobackend.New()})
}
