package pluginstore

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
)

// LaunchOptions says how install, list and describe start a plugin only to
// ask it to describe itself.
type LaunchOptions struct {
	// Env is added to the plugin's environment.
	Env []string
	// Logger receives the plugin's logs (default: none).
	Logger hclog.Logger
	// HostVersion is reported to the plugin in Describe.
	HostVersion string
	// StartTimeout, DescribeTimeout bound the launch (client defaults when 0).
	StartTimeout    time.Duration
	DescribeTimeout time.Duration
	// StopGrace is how long the plugin may take to stop (default 5 s).
	StopGrace time.Duration
}

// DescribeBinary starts the plugin binary at path (verified against
// checksum, as at every launch), asks it to describe itself, and stops it
// and its whole process group: nothing is left running when it returns.
// Launch failures are *client.LaunchError.
func DescribeBinary(ctx context.Context, path string, checksum []byte, lo LaunchOptions) (sdk.Description, error) {
	if lo.Logger == nil {
		lo.Logger = hclog.NewNullLogger()
	}
	if lo.StopGrace <= 0 {
		lo.StopGrace = 5 * time.Second
	}
	p, err := client.Launch(ctx, client.Config{
		Path:            path,
		Env:             lo.Env,
		Checksum:        checksum,
		Logger:          lo.Logger,
		StartTimeout:    lo.StartTimeout,
		DescribeTimeout: lo.DescribeTimeout,
		HostVersion:     lo.HostVersion,
	})
	if err != nil {
		return sdk.Description{}, err
	}
	desc := p.Description()
	if err := p.Stop(lo.StopGrace); err != nil {
		return desc, fmt.Errorf("stop plugin %s after Describe: %w", path, err)
	}
	return desc, nil
}

// FileSHA256 hashes a file, as the host records and verifies it.
var FileSHA256 = client.FileSHA256
