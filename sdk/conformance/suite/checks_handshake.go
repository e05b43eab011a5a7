package suite

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tthost/tthost/sdk"
	"github.com/tthost/tthost/sdk/client"
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	semverRE = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
)

var knownCapabilities = []sdk.Capability{
	sdk.CapPersistent, sdk.CapSteer, sdk.CapInterrupt, sdk.CapResume, sdk.CapApprovals, sdk.CapUsage,
}

const (
	ruleHandshake = `the host starts a plugin through go-plugin's handshake (cookie TTHOST_BACKEND_PLUGIN, protocol 1, gRPC, AutoMTLS) and verifies its SHA-256 (docs/protocol.md, "Handshake and versions")`
	ruleDescribe  = `Describe reports the name, version, protocol version, the CLIs served with their capabilities, and an options schema (proto DescribeResponse)`
	ruleStdout    = `the plugin's stdout is protected: anything the plugin prints before the handshake goes to stderr, so a stray print cannot break the start (docs/protocol.md, "Process model")`
	ruleByHand    = "running a plugin binary by hand with `--describe` prints its Describe answer as JSON without a host (docs/protocol.md)"
)

// checkHandshake launches the plugin and validates its Describe answer.
func checkHandshake(r *run) {
	start := time.Now()
	p, err := r.tryLaunch()
	if err != nil {
		rule := ruleHandshake
		if errors.Is(err, client.ErrStdoutPollution) {
			rule = ruleStdout
		}
		r.fatalf(rule, "the plugin did not start: %v", err)
	}
	took := time.Since(start)
	d := p.Description()
	validateDescription(r, d)
	if _, ok := d.Lookup(r.target.CLI); !ok {
		r.errorf(ruleDescribe, "the CLI under test %q is not served: the plugin declares %s", r.target.CLI, cliNames(d))
	}
	if r.inProcess() {
		r.unprovenf("in process, only the Describe answer was checked: the go-plugin handshake and the binary's checksum need the plugin binary (Target.Path)")
		return
	}
	r.notef("started and described in %v", took.Round(time.Millisecond))
}

func validateDescription(r *run, d sdk.Description) {
	if !nameRE.MatchString(d.Name) {
		r.errorf(ruleDescribe, "name %q: want lowercase letters, digits and dashes, e.g. \"my-backend\"", d.Name)
	}
	switch {
	case strings.TrimSpace(d.Version) == "":
		r.errorf(ruleDescribe, "version is empty: want the plugin's semantic version, e.g. \"1.2.0\"")
	case !semverRE.MatchString(d.Version):
		r.notef("version %q is not a semantic version (fine for a development build; releases should report one, e.g. \"1.2.0\")", d.Version)
	}
	if d.SDKVersion == "" {
		r.notef("sdk_version is empty (plugins built with the tthost SDK report it)")
	}
	if d.ProtocolVersion != sdk.ProtocolVersion {
		r.errorf(ruleHandshake, "protocol_version is %d on a connection that negotiated protocol %d: Describe must report the contract version the connection speaks",
			d.ProtocolVersion, sdk.ProtocolVersion)
	}
	if len(d.CLIs) == 0 {
		r.errorf(ruleDescribe, "no CLI is declared: declare at least one CLI name (or \"*\" for any)")
	}
	var seen []string
	var unknown []string
	for _, c := range d.CLIs {
		switch {
		case strings.TrimSpace(c.Name) == "" || strings.ContainsAny(c.Name, " \t\n"):
			r.errorf(ruleDescribe, "CLI name %q: want a CLI name as agents are registered with it, without spaces", c.Name)
		case slices.Contains(seen, c.Name):
			r.errorf(ruleDescribe, "CLI %q is declared twice", c.Name)
		}
		seen = append(seen, c.Name)
		for _, capab := range c.Capabilities {
			if !slices.Contains(knownCapabilities, capab) && !slices.Contains(unknown, string(capab)) {
				unknown = append(unknown, string(capab))
			}
		}
	}
	if len(unknown) > 0 {
		r.notef("capabilities this host does not know are ignored: %s", strings.Join(unknown, ", "))
	}
	if d.OptionsSchema != "" {
		var schema any
		if err := json.Unmarshal([]byte(d.OptionsSchema), &schema); err != nil {
			r.errorf(ruleDescribe, "options_schema is not valid JSON: %v", err)
		} else if _, isObject := schema.(map[string]any); !isObject {
			if _, isBool := schema.(bool); !isBool {
				r.errorf(ruleDescribe, "options_schema is JSON but not a JSON Schema (an object or a boolean): %s", clip(d.OptionsSchema, 80))
			}
		}
	}
}

// noisyEnv makes the Go runtime, gRPC and the plugin's own logging as
// chatty as they get. All of it must stay off the handshake.
var noisyEnv = []string{
	"GODEBUG=inittrace=1,gctrace=1",
	"GRPC_GO_LOG_SEVERITY_LEVEL=info",
	"GRPC_GO_LOG_VERBOSITY_LEVEL=99",
	sdk.LogLevelEnv + "=trace",
}

// checkStdoutPollution runs `--describe` by hand and launches the plugin
// in a noisy environment.
func checkStdoutPollution(r *run) {
	p, err := r.tryLaunch(noisyEnv...)
	if err != nil {
		rule := ruleHandshake
		if errors.Is(err, client.ErrStdoutPollution) {
			rule = ruleStdout
		}
		r.fatalf(rule, "with %s in its environment the plugin did not start: %v", strings.Join(noisyEnv, " "), err)
	}
	s, _ := r.openReady()
	text := "conformance noisy " + r.nonce()
	id, evs := r.runTurn(s, text)
	r.checkEcho(s, evs, id, text)
	r.close(s, sdk.CloseImmediate)
	checkDescribeByHand(r, p.Description())
}

// describeJSON is what `--describe` prints (the SDK's format).
type describeJSON struct {
	Name            string `json:"name"`
	Version         string `json:"version"`
	ProtocolVersion int    `json:"protocol_version"`
	CLIs            []struct {
		Name         string           `json:"name"`
		Capabilities []sdk.Capability `json:"capabilities"`
	} `json:"clis"`
}

func checkDescribeByHand(r *run, want sdk.Description) {
	ctx, cancel := r.stepCtx()
	defer cancel()
	cmd := exec.CommandContext(ctx, r.target.Path, "--describe")
	// By hand: without the handshake or any other variable a host gives
	// its plugins, with the check's marker so the process checks would
	// find it.
	cmd.Env = append(sdk.CleanEnv(os.Environ()), r.marker)
	cmd.Dir = r.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		r.fatalf(ruleByHand, "`%s --describe` failed: %v; stderr: %s", r.target.Path, err, clip(strings.TrimSpace(stderr.String()), 300))
	}
	dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
	var got describeJSON
	if err := dec.Decode(&got); err != nil {
		r.fatalf(ruleStdout, "`--describe` did not print JSON on stdout: %v; stdout starts %q", err, clip(stdout.String(), 120))
	}
	if _, err := dec.Token(); err != io.EOF {
		rest := stdout.Bytes()[dec.InputOffset():]
		r.errorf(ruleStdout, "`--describe` printed more than one JSON document on stdout: after the JSON came %q", clip(strings.TrimSpace(string(rest)), 120))
	}
	var diffs []string
	if got.Name != want.Name {
		diffs = append(diffs, fmt.Sprintf("name %q, want %q", got.Name, want.Name))
	}
	if got.Version != want.Version {
		diffs = append(diffs, fmt.Sprintf("version %q, want %q", got.Version, want.Version))
	}
	if got.ProtocolVersion != want.ProtocolVersion {
		diffs = append(diffs, fmt.Sprintf("protocol_version %d, want %d", got.ProtocolVersion, want.ProtocolVersion))
	}
	if len(got.CLIs) != len(want.CLIs) {
		diffs = append(diffs, fmt.Sprintf("%d CLIs, want %d", len(got.CLIs), len(want.CLIs)))
	} else {
		for i, c := range got.CLIs {
			if c.Name != want.CLIs[i].Name || !slices.Equal(c.Capabilities, want.CLIs[i].Capabilities) {
				diffs = append(diffs, fmt.Sprintf("CLI %q %v, want %q %v", c.Name, c.Capabilities, want.CLIs[i].Name, want.CLIs[i].Capabilities))
			}
		}
	}
	if len(diffs) > 0 {
		r.errorf(ruleByHand, "`--describe` and Describe over gRPC disagree: %s", strings.Join(diffs, "; "))
	}
}

func withoutEnv(env []string, key string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
}
