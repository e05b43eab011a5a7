// Command hang is a test plugin whose Describe never answers: the host must
// give up after its Describe timeout and kill it.
package main

import (
	"context"

	"github.com/tthost/tthost/sdk/plugin"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/testplugins/echobackend"
)

type hang struct{ *echobackend.Backend }

func (hang) Describe(context.Context) (sdk.Description, error) {
	<-make(chan struct{}) // deliberately deaf, even to the deadline
	return sdk.Description{}, nil
}

func main() {
	plugin.Serve(hang{echobackend.New()})
}
