#!/usr/bin/env bash
# make demo: a throwaway town in .demo/ on the embedded default (no Redis
# or API key configured), an agent whose CLI is a bundled sample script,
# one task end to end, and the events it produced. It cleans up after
# itself: the agent and the town's Redis are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
tt="$root/bin/tthost"
town="$root/.demo/town"
unset REDIS_URL # the demo uses the town-private Redis

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -f "$town/tinytown.toml" ]; then
	"$tt" --town "$town" redis stop >/dev/null 2>&1 || true
fi
rm -rf "$root/.demo"
mkdir -p "$town"

cleanup() {
	"$tt" --town "$town" stop --wait >/dev/null 2>&1 || true
	"$tt" --town "$town" redis stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "tthost init: a new town, and the Redis it uses"
"$tt" --town "$town" init --name demo

step "tthost spawn: an agent whose CLI is docs/demo/sample-agent.sh"
"$tt" --town "$town" spawn worker --cli "sh $root/docs/demo/sample-agent.sh" --max-rounds 5

step "tthost assign: one task"
"$tt" --town "$town" assign worker "Write a greeting for the demo"

step "waiting for the agent's turn to finish (events --until: no polling)"
"$tt" --town "$town" events --agent worker --until agent_turn_completed --timeout 60s

step "tthost status worker --deep"
"$tt" --town "$town" status worker --deep

step "the turn's transcript (.tt/logs/worker_round_1.log)"
cat "$town/.tt/logs/worker_round_1.log"

step "what the agent produced"
cat "$town"/demo-output-worker.txt

step "tthost stop worker"
"$tt" --town "$town" stop worker --wait
"$tt" --town "$town" list

step "tthost events --agent worker (everything the agent's worker recorded)"
"$tt" --town "$town" events --agent worker

step "tthost redis stop"
"$tt" --town "$town" redis stop
trap - EXIT
printf '\nDemo finished. The town is in %s (its Redis is stopped).\n' "$town"
