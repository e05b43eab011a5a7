#!/bin/sh
# record.sh: the stand-in coding CLI of the fault-injection tests.
#
# It reads its prompt on stdin and finds the tokens MSG-<n> in it (each test
# message starts with its own token). It records every run in $FAULTS_DIR:
#
#   runs      "run <pid> <tokens in this prompt>", then "start <token> <pid>"
#             per token; "end <token>" per token when the run succeeded,
#             "fail <token>" when it failed on purpose.
#   overlaps  "overlap <name>" when a lock below was held by another run.
#
# Locks prove what must never happen at once, with the kernel as witness:
# each run takes an exclusive flock on lock-agent-<agent id> and, when the
# prompt carries at most $RECORD_LOCK_MAX (default 32) tokens, on
# lock-<token> for each token. Every lock is held through a file descriptor
# that the run's children inherit, so it is released only when the whole
# process group is dead: a run that finds a lock taken proves that two runs
# of one message (or one agent) overlapped, or that a cancelled run was not
# killed before its message was delivered again.
#
# Words on a message's line change the run, per token:
#   SLEEP_FIRST=<secs>  sleep (in a child) on the first run of that token only
#   SLEEP=<secs>        sleep on every run
#   FAIL_FIRST          exit 3 on the first run of that token
dir=${FAULTS_DIR:?record.sh: FAULTS_DIR must name the directory to record in}
if ! command -v flock >/dev/null 2>&1; then
	echo "record.sh: flock is not installed: install util-linux (sudo apt-get install util-linux)" >&2
	exit 127
fi
prompt=$(cat)
tokens=$(printf '%s\n' "$prompt" | grep -o 'MSG-[0-9][0-9]*')
set -- $tokens
n=$#
# Only the lines of messages that ask for something unusual.
directives=$(printf '%s\n' "$prompt" | grep -E 'MSG-[0-9]+.*(SLEEP|FAIL_FIRST)')

# body runs the turn once every lock is held.
body() {
	sleep_s=0
	fail=0
	if [ -n "$directives" ]; then
		while IFS= read -r line; do
			t=${line#*MSG-}
			t=MSG-${t%%[!0-9]*}
			# The first run of a token finds no start of it yet (we hold
			# its lock: no other run is between this check and our start).
			first=1
			if [ -e "$dir/runs" ] && grep -q "^start $t " "$dir/runs"; then
				first=0
			fi
			case $line in
			*SLEEP_FIRST=*)
				if [ $first = 1 ]; then
					v=${line#*SLEEP_FIRST=}
					sleep_s=$((sleep_s + ${v%%[!0-9]*}))
				fi
				;;
			esac
			case $line in
			*SLEEP=*)
				v=${line#*SLEEP=}
				sleep_s=$((sleep_s + ${v%%[!0-9]*}))
				;;
			esac
			case $line in
			*FAIL_FIRST*) [ $first = 1 ] && fail=1 ;;
			esac
		done <<DIRECTIVES
$directives
DIRECTIVES
	fi
	{
		printf 'run %s %s\n' $$ $n
		[ $n -gt 0 ] && printf "start %s $$\n" $tokens
	} >>"$dir/runs"
	echo "record: run $$ with $n message(s)"
	if [ $sleep_s -gt 0 ]; then
		echo "record: sleeping ${sleep_s}s"
		sleep $sleep_s &
		wait
	fi
	if [ $fail = 1 ]; then
		[ $n -gt 0 ] && printf 'fail %s\n' $tokens >>"$dir/runs"
		echo "record: failing on purpose" >&2
		exit 3
	fi
	[ $n -gt 0 ] && printf 'end %s\n' $tokens >>"$dir/runs"
	echo "record: handled"
	exit 0
}

# hold NAME...: take lock-NAME for each name in a nested subshell (one file
# descriptor 9 per level, inherited by everything below), then run body.
hold() {
	if [ $# -eq 0 ]; then
		body
	fi
	name=$1
	shift
	(
		exec 9>>"$dir/lock-$name"
		flock -n 9 || printf 'overlap %s\n' "$name" >>"$dir/overlaps"
		hold "$@"
	)
}

if [ $n -le "${RECORD_LOCK_MAX:-32}" ]; then
	hold "agent-${TINYTOWN_AGENT_ID:-unknown}" $tokens
else
	hold "agent-${TINYTOWN_AGENT_ID:-unknown}"
fi
