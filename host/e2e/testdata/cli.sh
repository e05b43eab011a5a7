#!/bin/sh
# A stand-in coding CLI for the end-to-end tests. It reads its prompt on
# stdin, records it in $E2E_DIR, and behaves according to words in it.
prompt=$(cat)
n=$(ls "$E2E_DIR" | grep -c '^prompt-')
printf '%s' "$prompt" > "$E2E_DIR/prompt-$((n + 1)).txt"
echo "cli: got prompt $((n + 1)) as $TINYTOWN_AGENT_NAME"
case "$prompt" in
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
