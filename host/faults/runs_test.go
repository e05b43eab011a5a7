package faults

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// tokenRE finds message tokens, as record.sh does.
var tokenRE = regexp.MustCompile(`MSG-[0-9]+`)

func tokensIn(s string) []string { return tokenRE.FindAllString(s, -1) }

// runs is what record.sh recorded: how often each token's run started,
// ended (succeeded) and failed on purpose, the order runs started in, and
// how many tokens each run's prompt carried.
type runs struct {
	starts, ends, fails map[string]int
	order               []string // tokens, in the order their runs started
	sizes               []int    // tokens per run, per run in order
	pids                map[string][]int
}

// readRuns parses $FAULTS_DIR/runs. A line being written (no newline yet)
// is left for the next read.
func (e *env) readRuns() *runs {
	e.t.Helper()
	r := &runs{starts: map[string]int{}, ends: map[string]int{}, fails: map[string]int{}, pids: map[string][]int{}}
	b, err := os.ReadFile(filepath.Join(e.faults, "runs"))
	if os.IsNotExist(err) {
		return r
	}
	if err != nil {
		e.t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			e.t.Fatalf("runs file: bad line %q", sc.Text())
		}
		switch f[0] {
		case "run":
			n, _ := strconv.Atoi(f[len(f)-1])
			r.sizes = append(r.sizes, n)
		case "start":
			r.starts[f[1]]++
			r.order = append(r.order, f[1])
			if len(f) > 2 {
				pid, _ := strconv.Atoi(f[2])
				r.pids[f[1]] = append(r.pids[f[1]], pid)
			}
		case "end":
			r.ends[f[1]]++
		case "fail":
			r.fails[f[1]]++
		default:
			e.t.Fatalf("runs file: bad line %q", sc.Text())
		}
	}
	return r
}

// overlaps returns record.sh's overlap lines: each names a lock (a token,
// or agent-<id>) that a run found held by another run still alive.
func (e *env) overlaps() []string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.faults, "overlaps"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), "overlap ", ""))
}

func (e *env) assertNoOverlaps() {
	e.t.Helper()
	if o := e.overlaps(); len(o) > 0 {
		e.t.Errorf("runs overlapped: a run started while another run of %q was still alive (its process group held the lock)", o)
	}
}

// waitRuns polls the runs file until cond accepts it, failing the test at
// timeout or as soon as one of the watched workers exits.
func (e *env) waitRuns(timeout time.Duration, what string, cond func(*runs) bool, watch ...*proc) *runs {
	e.t.Helper()
	var r *runs
	var dead *proc
	ok := e.poll(timeout, func() bool {
		r = e.readRuns()
		if cond(r) {
			return true
		}
		for _, p := range watch {
			if p.exited() {
				dead = p
				return true
			}
		}
		return false
	})
	switch {
	case dead != nil && !cond(e.readRuns()):
		e.t.Fatalf("%s exited (%s) while waiting for %s; output:\n%s", dead.name, dead.how(), what, dead.out.String())
	case !ok:
		e.t.Fatalf("timed out after %s waiting for %s; runs so far: starts %v ends %v fails %v",
			timeout, what, r.starts, r.ends, r.fails)
	}
	return e.readRuns()
}

// waitEnded waits until every token has at least one successful run.
func (e *env) waitEnded(timeout time.Duration, watch []*proc, tokens ...string) *runs {
	e.t.Helper()
	return e.waitRuns(timeout, "runs of "+strings.Join(tokens, ", ")+" to end", func(r *runs) bool {
		for _, tok := range tokens {
			if r.ends[tok] == 0 {
				return false
			}
		}
		return true
	}, watch...)
}

// waitStarted waits until the token's run has started n times in all.
func (e *env) waitStarted(timeout time.Duration, tok string, n int, watch ...*proc) *runs {
	e.t.Helper()
	return e.waitRuns(timeout, "start #"+strconv.Itoa(n)+" of "+tok, func(r *runs) bool { return r.starts[tok] >= n }, watch...)
}

// assertRuns requires exact counts for a token: starts, and ends.
func (e *env) assertRuns(r *runs, tok string, starts, ends int) {
	e.t.Helper()
	if r.starts[tok] != starts || r.ends[tok] != ends {
		e.t.Errorf("%s: started %d time(s), ended %d time(s); want %d start(s), %d end(s)",
			tok, r.starts[tok], r.ends[tok], starts, ends)
	}
}

// assertOnce requires each token to have run exactly once, successfully.
func (e *env) assertOnce(r *runs, tokens ...string) {
	e.t.Helper()
	for _, tok := range tokens {
		e.assertRuns(r, tok, 1, 1)
	}
}
