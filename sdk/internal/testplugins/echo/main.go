// Command echo is the well-behaved test plugin (see echobackend).
package main

import (
	"github.com/tthost/tthost/sdk/internal/testplugins/echobackend"
	"github.com/tthost/tthost/sdk/plugin"
)

func main() {
	plugin.Serve(echobackend.New())
}
