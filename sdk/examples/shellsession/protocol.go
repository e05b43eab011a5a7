package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The shell protocol. Everything the backend writes to the shell is shell
// code built here; everything it reads back is split here into the turn's
// output and the markers that end the turn's chunks.

// prelude is written to the shell once, when the session starts. A turn's
// chunk is run by __tt_run TURN CODE:
//
//   - in the shell itself (command eval), so that cd, variables and
//     functions carry over to the next turn; `command` keeps a syntax
//     error in CODE from ending the shell (it fails the chunk instead);
//   - with stdin from /dev/null, so that no command can read, and
//     swallow, the shell code that follows it;
//   - with a SIGINT trap that ends the chunk with status 130, so that a
//     cancel (SIGINT to the process group, like Ctrl-C) stops the running
//     command and the rest of the chunk while the shell lives on. The trap
//     is armed only inside __tt_run: at the top level, `return` would end
//     some shells (dash). Outside it, SIGINT is caught and ignored;
//     commands still get the default action, since caught signals are
//     reset on exec.
//
// A cancel first creates a file named after the turn in the cancel
// directory, then signals. __tt_run checks for that file after arming
// its trap, so a cancelled turn runs no further chunk (a steer queued
// behind it) and a SIGINT that came before the trap was armed is not lost.
func prelude(cancelDir string) string {
	return `trap : INT
__tt_run() {
	trap 'trap : INT; return 130' INT
	if [ -e ` + shellQuote(cancelDir) + `/"$1" ]; then trap : INT; return 130; fi
	command eval "$2" </dev/null
	set -- "$?"
	trap : INT
	return "$1"
}
`
}

// readyTurn is the turn id of the marker that answers the prelude.
const readyTurn = "ready"

// readyCode is shell code that prints the ready marker.
func readyCode(head string) string {
	return markerCode(head, readyTurn, 0, "0")
}

// chunkCode runs text as chunk n of a turn, then prints the chunk's marker
// with its exit status. Single quotes carry any text safely to __tt_run.
func chunkCode(head, turnID string, n int, text string) string {
	return "__tt_run " + turnID + " " + shellQuote(text) + "; " + markerCode(head, turnID, n, `"$?"`)
}

// markerCode prints "\nHEAD:TURN:N STATUS\n". The marker is split over two
// printf arguments so that the shell code never contains it whole: a
// prompt that turns on `set -v` or `set -x` echoes shell code into the
// output, and must not end its turn early. The leading newline makes the
// marker start a line even after output without a final newline; the
// outputReader removes it again.
func markerCode(head, turnID string, n int, status string) string {
	return fmt.Sprintf("printf '\\n%%s%%s %%s\\n' %s %s %s\n",
		shellQuote(head), shellQuote(":"+turnID+":"+strconv.Itoa(n)), status)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// marker is a chunk's end as the shell reported it.
type marker struct {
	turn   string
	chunk  int
	status int
}

// parseMarker recognises a whole output line "HEAD:TURN:N STATUS".
func parseMarker(line []byte, head string) (marker, bool) {
	after, ok := bytes.CutPrefix(line, []byte(head+":"))
	if !ok {
		return marker{}, false
	}
	turn, rest, ok1 := strings.Cut(string(after), ":")
	chunk, status, ok2 := strings.Cut(rest, " ")
	n, err1 := strconv.Atoi(chunk)
	st, err2 := strconv.Atoi(status)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return marker{}, false
	}
	return marker{turn: turn, chunk: n, status: st}, true
}

// outputReader splits the shell's output (stdout and stderr, one pipe)
// into pieces of text, line by line as they arrive, and markers.
//
// Every marker follows a newline the marker's printf added. The reader
// holds each line's newline back until it has seen the next line: before
// a marker it is dropped, so the turn's output is exactly what its
// commands printed. Lines longer than the buffer come in pieces, cut
// between UTF-8 characters.
type outputReader struct {
	r       *bufio.Reader
	head    string
	held    bool   // a newline is held back
	midLine bool   // the last piece ended inside a line
	partial []byte // an incomplete UTF-8 character from the last piece
}

const outputBuffer = 64 << 10

func newOutputReader(r io.Reader, head string) *outputReader {
	return &outputReader{r: bufio.NewReaderSize(r, outputBuffer), head: head}
}

// next returns the next marker (m != nil) or piece of text (possibly
// empty), and the read error that ends the output, if any.
func (o *outputReader) next() (text string, m *marker, err error) {
	line, err := o.r.ReadSlice('\n')
	complete := err == nil // the line ends with its newline
	if err == bufio.ErrBufferFull {
		err = nil
	}
	if complete && !o.midLine {
		if mk, ok := parseMarker(line[:len(line)-1], o.head); ok {
			o.held = false // the marker's own newline
			return "", &mk, nil
		}
	}
	var b []byte
	if o.held {
		b = append(b, '\n')
	}
	b = append(b, o.partial...)
	o.partial = o.partial[:0]
	if complete {
		line = line[:len(line)-1]
	}
	b = append(b, line...)
	o.held = complete
	o.midLine = !complete && err == nil
	if o.midLine {
		cut := incompleteTail(b)
		o.partial = append(o.partial, b[cut:]...)
		b = b[:cut]
	}
	// A command may print bytes that are not UTF-8; events carry text.
	return strings.ToValidUTF8(string(b), "\uFFFD"), nil, err
}

// incompleteTail returns where an incomplete UTF-8 character at the end of
// b starts, or len(b).
func incompleteTail(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}
