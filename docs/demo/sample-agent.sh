#!/bin/sh
# A tiny stand-in for a coding CLI, used by `make demo`. Like a real CLI
# driven by tthost's one-shot backend, it reads its prompt on stdin, does
# the work, and reports through tthost commands (on PATH: tthost puts its
# own directory first on the CLI's PATH).
set -eu
prompt=$(cat)
task_id=$(printf '%s\n' "$prompt" | sed -n 's/^ *Task ID: *\([0-9a-f-]*\).*/\1/p' | head -n 1)
desc=$(printf '%s\n' "$prompt" | sed -n 's/^ *Description: *//p' | head -n 1)
echo "sample-agent: I am $TINYTOWN_AGENT_NAME ($TINYTOWN_AGENT_ID)"
if [ -z "$task_id" ]; then
	echo "sample-agent: no task in this prompt; nothing to do"
	exit 0
fi
echo "sample-agent: working on task $task_id: $desc"
out="demo-output-$TINYTOWN_AGENT_NAME.txt"
printf 'Task %s\n%s\ndone by %s\n' "$task_id" "$desc" "$TINYTOWN_AGENT_NAME" > "$out"
echo "sample-agent: wrote $out"
tthost task complete "$task_id" --result "wrote $out"
tthost send supervisor --info "finished task $task_id"
echo "sample-agent: reported completion"
