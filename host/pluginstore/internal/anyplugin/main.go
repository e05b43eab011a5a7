// Command anyplugin is a test plugin for host/pluginstore's install tests: it
// describes itself from its environment, so one binary can play plugins
// of any name, version and CLIs (valid or not):
//
//	TTHOST_TESTPLUGIN_NAME=aider TTHOST_TESTPLUGIN_VERSION=1.2.0 \
//	TTHOST_TESTPLUGIN_CLIS="aider:persistent+steer,*"
//
// It opens no sessions.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/tthost/tthost/sdk/plugin"

	"github.com/tthost/tthost/sdk"
)

type backend struct{}

func (backend) Describe(context.Context) (sdk.Description, error) {
	d := sdk.Description{
		Name:    env("TTHOST_TESTPLUGIN_NAME", "anyplugin"),
		Version: env("TTHOST_TESTPLUGIN_VERSION", "0.1.0"),
		Summary: "a test plugin that describes itself from its environment",
	}
	for _, spec := range strings.Split(env("TTHOST_TESTPLUGIN_CLIS", "*"), ",") {
		if spec == "" {
			continue
		}
		name, caps, _ := strings.Cut(spec, ":")
		cli := sdk.CLI{Name: name}
		for _, c := range strings.Split(caps, "+") {
			if c != "" {
				cli.Capabilities = append(cli.Capabilities, sdk.Capability(c))
			}
		}
		d.CLIs = append(d.CLIs, cli)
	}
	return d, nil
}

func (backend) OpenSession(context.Context, sdk.SessionConfig, sdk.EventSink) (sdk.Session, error) {
	return nil, fmt.Errorf("anyplugin opens no sessions: %w", sdk.ErrInvalidConfig)
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func main() { plugin.Serve(backend{}) }
