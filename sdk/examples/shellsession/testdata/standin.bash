# The conformance suite's stand-in CLI, for a shell (sdk/conformance,
# StandInCommand). The suite's prompts are text, and a shell runs text as
# commands; with this file as BASH_ENV, a non-interactive bash answers them
# as the suite expects:
#
#   tthost plugin conformance shellsession --command "bash --norc --noprofile" \
#       --env BASH_ENV="$PWD/testdata/standin.bash" --echo full --steer-prompt CONFORMANCE_STEER

# An ordinary prompt is echoed back: its words are not commands.
command_not_found_handle() { printf '%s\n' "$*"; }
# bash runs that handler in a subshell, a fork per line: too slow for the
# suite's 1 MiB prompt of 12,000 lines. Its lines start with these words,
# which echo the same way without a fork.
conformance() { printf 'conformance %s\n' "$*"; }
line() { printf 'line %s\n' "$*"; }

# The long prompt runs until it is cancelled (its first line shows that it
# runs); the failing prompt fails.
CONFORMANCE_SLEEP() { echo 'conformance stand-in: sleeping'; sleep 3600; }
CONFORMANCE_FAIL() { echo 'conformance stand-in: failing as asked' >&2; return 3; }
# The steer prompt (the suite's Prompts.Steer, --steer-prompt): a shell runs
# text steered into a turn after the command running now, so this one runs
# long enough to be steered into and then ends by itself; the steered line
# is then echoed in the same turn, as the steer check requires.
CONFORMANCE_STEER() { echo 'conformance stand-in: sleeping'; sleep 4; }
