package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// console serializes the lines that the tracer (under the session's lock),
// the HTTP logger (on the request goroutines) and the command itself write,
// so that lines never interleave. Colours are used only on a terminal.
type console struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
	now   func() time.Time
	start time.Time
}

func newConsole(w io.Writer, color bool, now func() time.Time) *console {
	if now == nil {
		now = time.Now
	}
	return &console{w: w, color: color, now: now, start: now()}
}

// ANSI styles.
const (
	styleBold   = "1"
	styleDim    = "2"
	styleRed    = "31"
	styleGreen  = "32"
	styleYellow = "33"
	styleBlue   = "34"
	styleCyan   = "36"
)

// paint wraps s in an SGR sequence when colours are on.
func (c *console) paint(style, s string) string {
	if !c.color || style == "" {
		return s
	}
	return "\x1b[" + style + "m" + s + "\x1b[0m"
}

// printf writes text as is.
func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format, args...)
}

// event writes one trace line: time since start, a kind column and the
// text, styled by kind.
func (c *console) event(kind, style, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := fmt.Sprintf("%7s", "+"+ms(c.now().Sub(c.start)))
	fmt.Fprintf(c.w, "  %s  %s  %s\n", c.paint(styleDim, at), c.paint(style, fmt.Sprintf("%-6s", kind)), c.paint(textStyle(kind, style), text))
}

// textStyle: transitions stand out; effects and inputs recede.
func textStyle(kind, style string) string {
	switch kind {
	case "state":
		return styleBold
	case "effect", "input":
		return styleDim
	}
	return ""
}

// ms renders a duration for people: "0.4ms", "41ms", "1.2s".
func ms(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// plural is "1 request", "2 requests".
func plural(n int, what string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}
