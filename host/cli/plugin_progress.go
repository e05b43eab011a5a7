package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressMinBytes: smaller downloads finish before a bar would help.
const progressMinBytes = 1 << 20

// progressBar draws a download's progress on stderr in plain text: redrawn
// in place (with \r) on a terminal at most ten times a second, and as one
// line per tenth elsewhere, so logs and CI output stay readable.
type progressBar struct {
	w        io.Writer
	label    string
	tty      bool
	shown    bool
	lastStep int64
	lastDraw time.Time
	done     int64
	total    int64
}

func newProgressBar(w io.Writer, label string) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil {
			tty = fi.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progressBar{w: w, label: label, tty: tty, lastStep: -1}
}

// update is called as bytes arrive; total is -1 when unknown.
func (p *progressBar) update(done, total int64) {
	p.done, p.total = done, total
	if max(done, total) < progressMinBytes {
		return
	}
	if p.tty {
		if now := time.Now(); now.Sub(p.lastDraw) >= 100*time.Millisecond || done == total {
			p.lastDraw = now
			fmt.Fprintf(p.w, "\r%s", p.line())
			p.shown = true
		}
		return
	}
	step := done / (10 * progressMinBytes) // unknown total: a line per 10 MiB
	if total > 0 {
		step = done * 10 / total
	}
	if step != p.lastStep {
		p.lastStep = step
		fmt.Fprintln(p.w, p.line())
		p.shown = true
	}
}

// finish ends the bar's line; after a failure the bar stays where it
// stopped, and the error follows.
func (p *progressBar) finish(ok bool) {
	if !p.shown {
		return
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\n", p.line())
	}
	if ok && !p.tty && p.total > 0 && p.done*10/p.total != 10 {
		fmt.Fprintln(p.w, p.line())
	}
}

// line is "LABEL [#####-----]  50%  4.0/8.0 MiB".
func (p *progressBar) line() string {
	const width = 30
	if p.total <= 0 {
		return fmt.Sprintf("%s  %s", p.label, mib(p.done))
	}
	filled := int(p.done * width / p.total)
	return fmt.Sprintf("%s [%s%s] %3d%%  %s/%s", p.label, strings.Repeat("#", filled), strings.Repeat("-", width-filled),
		p.done*100/p.total, strings.TrimSuffix(mib(p.done), " MiB"), mib(p.total))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
