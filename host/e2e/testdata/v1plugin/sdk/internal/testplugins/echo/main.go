// Command echo is the well-behaved test plugin (see echobackend).
package main

import (
	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/internal/testplugins/echobackend"
)

func main() {
	sdk.Serve(echobackend.New())
}
