// Command future is a test plugin that speaks only backend protocol
// version 2, which no host speaks yet: the host must refuse it naming both
// sides' versions.
package main

import (
	"github.com/tthost/tthost/sdk/internal/testhooks"
	"github.com/tthost/tthost/sdk/internal/testplugins/echobackend"
	"github.com/tthost/tthost/sdk/plugin"
)

func main() {
	testhooks.ServeProtocolVersions = []int{2}
	plugin.Serve(echobackend.New())
}
