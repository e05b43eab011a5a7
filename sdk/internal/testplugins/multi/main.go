// Command multi is a test plugin that serves backend protocol versions 1
// and 2, as a plugin built with a future SDK would while hosts migrate:
// a host that speaks only 1 gets 1, a host that speaks both gets 2.
package main

import (
	"github.com/tthost/tthost/sdk/internal/testhooks"
	"github.com/tthost/tthost/sdk/internal/testplugins/echobackend"
	"github.com/tthost/tthost/sdk/plugin"
)

func main() {
	testhooks.ServeProtocolVersions = []int{1, 2}
	plugin.Serve(echobackend.New())
}
