#!/bin/sh
# A stand-in coding CLI for the end-to-end tests. It reads its prompt on
# stdin, records it in $E2E_DIR, and behaves according to words in it.
prompt=$(cat)
n=$(ls "$E2E_DIR" | grep -c '^prompt-')
printf '%s' "$prompt" > "$E2E_DIR/prompt-$((n + 1)).txt"
echo "cli: got prompt $((n + 1)) as $TINYTOWN_AGENT_NAME"
case "$prompt" in
*DUMP_ENV*)
	# What an agent's commands see: the environment, and tthost's stdout
	# as a script captures it. The last run adds what a backend that
	# passes its whole environment on would leak: the handshake cookie
	# and a host pid that is not tthost's parent.
	env > "$E2E_DIR/env.txt"
	tthost task list --json > "$E2E_DIR/tasks.json" 2> "$E2E_DIR/tasks.err"
	out=$(tthost version)
	printf '%s' "$out" > "$E2E_DIR/version.txt"
	TTHOST_BACKEND_PLUGIN=6b1f1c3e-tthost-backend-d3c0de5a9e74 TTHOST_PLUGIN_HOST_PID=1 \
		tthost version > "$E2E_DIR/leaked-version.txt"
	;;
*SLEEP_FOREVER*)
	echo "cli: sleeping"
	sleep 300 &
	wait
	;;
*SLEEP_ONCE*)
	if [ ! -e "$E2E_DIR/slept" ]; then
		: > "$E2E_DIR/slept"
		echo "cli: sleeping once"
		sleep 300 &
		wait
	fi
	;;
*WAIT_GATE*)
	# A long turn the test controls: it records its start and end in
	# runs.log and works until the test creates gate-open.
	echo "start $$" >> "$E2E_DIR/runs.log"
	: > "$E2E_DIR/gate-waiting-$$"
	while [ ! -e "$E2E_DIR/gate-open" ]; do sleep 0.05; done
	echo "end $$" >> "$E2E_DIR/runs.log"
	;;
*FAIL_ONCE*)
	if [ ! -e "$E2E_DIR/failed" ]; then
		: > "$E2E_DIR/failed"
		echo "cli: failing on purpose" >&2
		exit 3
	fi
	;;
*FAIL_ALWAYS*)
	echo "cli: always failing" >&2
	exit 4
	;;
esac
echo "cli: handled"
