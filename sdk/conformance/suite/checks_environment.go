package suite

import (
	"slices"
	"strings"
	"time"

	"github.com/tthost/tthost/sdk"
)

const (
	ruleChildEnv = `a process the plugin starts gets the plugin's environment without the plugin's internal variables (the handshake cookie TTHOST_BACKEND_PLUGIN, every PLUGIN_* of go-plugin, sdk.InternalEnv) and with the session's Env on top: build it with plugin.ChildEnv (docs/protocol.md, "The CLI's environment")`

	// sessionEnvVar is what the check adds to the session's Env, to see
	// that the session's variables reach its processes.
	sessionEnvVar = "CONFORMANCE_SESSION_ENV"
	// execSettle bounds how long a process may show the plugin's own
	// environment: a child between fork and exec still shares the
	// plugin's memory, and /proc shows the plugin's variables for it.
	execSettle = time.Second
)

// checkChildEnvironment runs a long turn and reads the environment of
// every process the plugin started for it, the way the kernel shows it in
// /proc: what the CLI and whatever it runs, tthost included, see. The
// processes are those carrying the run's marker and the plugin's
// descendants: a plugin that gave its CLI an environment without the
// marker is found by parent, and fails.
func checkChildEnvironment(r *run) {
	r.launch()
	cfg := r.sessionConfig()
	value := r.nonce()
	cfg.Env[sessionEnvVar] = value
	s := r.open(cfg)
	r.waitReady(s)
	r.startLong(s)
	pids := r.alive()
	if len(pids) == 0 {
		r.unprovenf("no process of the session ran during its long turn, neither carrying the run's marker nor below the plugin, so there was no environment to look at")
		return
	}

	envs := settledEnvirons(pids, func(env []string) bool {
		return len(internalNames(env)) == 0 && slices.Contains(env, sessionEnvVar+"="+value)
	}, execSettle)
	seen := 0
	reached := false
	for _, pid := range pids {
		env, ok := envs[pid]
		if !ok {
			continue // gone before it could be read
		}
		seen++
		if names := internalNames(env); len(names) > 0 {
			r.errorf(ruleChildEnv, "pid %d (%s), which the plugin started, inherited the plugin's internal %s %s; "+
				"a tthost run there takes itself for a plugin and prints nothing on stdout",
				pid, cmdline(pid), pluralWord(len(names), "variable", "variables"), strings.Join(names, ", "))
		}
		switch {
		case slices.Contains(env, sessionEnvVar+"="+value):
			reached = true
		case slices.Contains(env, r.marker):
		case r.startedByPlugin(pid):
			// What the CLI gives its own children is its business; what
			// the plugin gives the processes it starts is the rule's.
			r.errorf(ruleChildEnv, "pid %d (%s), which the plugin started, has neither the session's Env (%s=%s) nor the plugin's environment (%s): "+
				"it was given an environment of the plugin's own making", pid, cmdline(pid), sessionEnvVar, value, MarkerEnv)
		}
	}
	switch {
	case seen == 0:
		r.unprovenf("the processes of the session (%s) were gone before their environment could be read", describePids(pids))
	case !reached:
		r.errorf(ruleChildEnv, "the session's Env (%s=%s) reached none of its processes: %s",
			sessionEnvVar, value, describePids(pids))
	case !r.failed():
		r.notef("the environment of %d process(es) of the session has none of the plugin's internal variables", seen)
	}
}

// startedByPlugin reports whether pid is a child of one of the check's
// plugin processes.
func (r *run) startedByPlugin(pid int) bool {
	ppid, ok := parentOf(pid)
	return ok && r.isPlugin(ppid)
}

// internalNames lists the names in env that are the plugin's own, sorted.
func internalNames(env []string) []string {
	var names []string
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); sdk.IsInternalEnv(name) && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// settledEnvirons reads the environment of each pid until good accepts it
// or timeout passes, and returns the last read of each pid that could be
// read. Re-reading lets a child that was caught between fork and exec
// show its own environment.
func settledEnvirons(pids []int, good func([]string) bool, timeout time.Duration) map[int][]string {
	envs := map[int][]string{}
	pending := slices.Clone(pids)
	deadline := time.Now().Add(timeout)
	for {
		var again []int
		for _, pid := range pending {
			env := environ(pid)
			if env == nil {
				delete(envs, pid)
				continue
			}
			envs[pid] = env
			if !good(env) {
				again = append(again, pid)
			}
		}
		if len(again) == 0 || time.Now().After(deadline) {
			return envs
		}
		pending = again
		time.Sleep(20 * time.Millisecond)
	}
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
