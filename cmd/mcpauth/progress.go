package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// progress is a driver.Tracer that turns the machine's transitions into
// one progress line per step that takes time:
//
//	discovering the authorization server… done (2 requests, 41ms)
//
// A step starts when the machine enters an attempt state and ends when it
// leaves it (a self-loop, such as trying the next metadata URL, stays in
// the step). Requests are the Fetch effects of the step.
type progress struct {
	nopTracer
	c *console
	// lines makes every event a whole line (used when the live trace
	// shares the stream, so that nothing interleaves inside a line).
	lines bool
	now   func() time.Time

	mu      sync.Mutex
	step    string // the state of the running step, "" when none
	label   string
	since   time.Time
	fetches int
	open    bool // a line was started and not ended
}

// stepLabels says what each attempt state is doing, in words; a state
// missing here (added after this command) is shown by its name.
var stepLabels = map[states.State]string{
	states.DiscoveringResource: "discovering the protected resource",
	states.DiscoveringIssuer:   "discovering the authorization server",
	states.LoadingClient:       "", // a store read: instant, not worth a line
	states.Registering:         "registering mcpauth as a client",
	states.AwaitingCallback:    "waiting for you to approve in the browser",
	states.ExchangingCode:      "exchanging the authorization code for tokens",
	states.Refreshing:          "refreshing the access token",
	states.ExchangingIdentity:  "exchanging your ID token at the identity provider",
	states.RequestingToken:     "requesting a token from the authorization server",
}

func labelOf(s states.State) string {
	if l, ok := stepLabels[s]; ok {
		return l
	}
	if !s.Attempting() {
		return ""
	}
	return strings.ReplaceAll(string(s), "_", " ")
}

// Effect implements driver.Tracer.
func (p *progress) Effect(e effects.Effect) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e := e.(type) {
	case effects.Fetch:
		p.fetches++
	case effects.Transition:
		if e.From == e.To {
			return
		}
		if p.step == e.From {
			p.finish(e.Trigger)
		}
		if l := labelOf(states.State(e.To)); l != "" {
			p.start(e.To, l)
		}
	}
}

func (p *progress) start(state, label string) {
	p.step, p.label, p.since, p.fetches = state, label, p.now(), 0
	if p.lines {
		p.c.printf("%s…\n", label)
		return
	}
	p.c.printf("%s… ", label)
	p.open = true
}

func (p *progress) finish(trigger string) {
	took := p.now().Sub(p.since)
	detail := ms(took)
	if p.fetches > 0 {
		detail = plural(p.fetches, "request") + ", " + detail
	}
	outcome := "done"
	style := styleGreen
	if strings.HasPrefix(trigger, string(states.AttemptFailed)) || trigger == string(states.RefreshRejected) {
		outcome, style = "failed", styleRed
	}
	text := fmt.Sprintf("%s (%s)", p.c.paint(style, outcome), detail)
	if !p.open {
		text = p.label + ": " + text
	}
	p.c.printf("%s\n", text)
	p.open, p.step = false, ""
}

// breakLine ends a line left open, before something else is printed (the
// URL to open, an error).
func (p *progress) breakLine() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		p.c.printf("\n")
		p.open = false
	}
}
