// Package faults is tthost's fault-injection suite: it breaks what a
// worker depends on while real workers run, and proves that no message is
// lost, none is run twice at once, a finished turn is never run again, and
// no process is left behind. The package has no code of its own; it is its
// tests (make faults; make test runs them too).
//
// # What runs
//
// Everything is real: a redis-server with an append-only file that a test
// kills with SIGKILL and restarts on the same port (testenv.StartRedisWith),
// the tthost binary and its one-shot plugin built for the test run
// (testenv.Binaries), and a stand-in coding CLI, testdata/record.sh.
//
// # How a test knows what happened
//
// Each test message starts with a token MSG-<n>. record.sh writes a line per
// token when a run starts and another when it ends, to a runs file in the
// test's directory, so a test counts exactly how often each message ran and
// finished, in which order, and how many messages each turn carried. While
// it runs, record.sh holds an exclusive flock per token (and per agent)
// through a file descriptor its children inherit: the kernel releases it
// only when the run's whole process group is dead, so a second run that
// finds the lock taken proves an overlap, which the test then reports.
// Words in a message make its run slow (SLEEP=, SLEEP_FIRST=) or fail once
// (FAIL_FIRST).
//
// # The faults
//
//	redis_test.go     Redis killed (kill -9) and restarted while agents wait and mid-turn
//	lease_test.go     a worker stopped (SIGSTOP) past its lease while another takes over
//	volume_test.go    40 000 queued messages; a message over max_turn_bytes
//	plugin_test.go    the one-shot plugin killed (kill -9) mid-turn
//	signals_test.go   SIGHUP, SIGTERM and SIGINT to a worker mid-turn
//	input_test.go     messages that do not parse or are addressed to another agent
//
// harness_test.go holds the town, process and Redis helpers; runs_test.go
// reads what record.sh recorded.
package faults
