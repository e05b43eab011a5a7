//go:build !linux

package main

import (
	"time"

	"github.com/tthost/tthost/sdk/plugin"
)

// exitWatch waits for nothing where there are no pidfds: Process.Close's
// kill is all there is (see exitwatch_linux.go).
type exitWatch struct{}

func watchExits(*plugin.Process) *exitWatch { return &exitWatch{} }

func (*exitWatch) wait(time.Duration) {}
