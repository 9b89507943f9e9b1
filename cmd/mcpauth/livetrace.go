package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// liveTracer is a driver.Tracer that prints, as they happen, every
// transition of the machine ("from —trigger→ to") and every effect
// (driver.Describe, which redacts secrets); with inputs set, also every
// input, rendered here without secrets.
type liveTracer struct {
	c      *console
	inputs bool
	// width, when positive, shortens effect lines to that many characters
	// (the full text is in a --trace file, or with -v).
	width int
}

var _ driver.Tracer = (*liveTracer)(nil)

// Input implements driver.Tracer.
func (t *liveTracer) Input(in machine.Input, _ time.Time) {
	if t.inputs {
		t.c.event("input", styleDim, describeInput(in))
	}
}

// Effect implements driver.Tracer.
func (t *liveTracer) Effect(e effects.Effect) {
	if tr, ok := e.(effects.Transition); ok {
		t.c.event("state", styleCyan, transitionText(tr))
		return
	}
	style := styleDim
	if _, ok := e.(effects.Fail); ok {
		style = styleRed
	}
	t.c.event("effect", style, shorten(driver.Describe(e), t.width))
}

// shorten cuts s to width runes, marking the cut with "…".
func shorten(s string, width int) string {
	if width <= 0 {
		return s
	}
	r := []rune(s)
	if len(r) <= width {
		return s
	}
	return string(r[:width-1]) + "…"
}

// Refused implements driver.Tracer: an input the machine would not take (a
// stale answer); the snapshot did not change.
func (t *liveTracer) Refused(in machine.Input, err error) {
	t.c.event("refuse", styleYellow, typeName(in)+": "+trim(err.Error()))
}

// StoreError implements driver.Tracer.
func (t *liveTracer) StoreError(err error) {
	t.c.event("store", styleRed, trim(err.Error()))
}

// transitionText is the arrow of the brief: from —trigger→ to.
func transitionText(tr effects.Transition) string {
	return tr.From + " —" + tr.Trigger + "→ " + tr.To
}

// describeInput renders an input on one line without secrets: bodies,
// queries and stored records are summarized, never printed.
func describeInput(in machine.Input) string {
	switch in := in.(type) {
	case machine.RequestStarted:
		return fmt.Sprintf("RequestStarted{Request:%d %s}", in.Request, stripQuery(in.URL))
	case machine.ProtectedResponse:
		return fmt.Sprintf("ProtectedResponse{Request:%d Status:%d Credential:%d}", in.Request, in.Status, in.Credential)
	case machine.ProtectedFailed:
		return fmt.Sprintf("ProtectedFailed{Request:%d}", in.Request)
	case machine.FetchResponse:
		return fmt.Sprintf("FetchResponse{Seq:%d Status:%d Body:%d bytes}", in.Seq, in.Status, len(in.Body))
	case machine.FetchFailed:
		return fmt.Sprintf("FetchFailed{Seq:%d Reason:%q}", in.Seq, in.Reason)
	case machine.CallbackReceived:
		return fmt.Sprintf("CallbackReceived{%s}", effects.RedactQuery(in.Query))
	case machine.CallbackFailed:
		return fmt.Sprintf("CallbackFailed{Reason:%q}", in.Reason)
	case machine.StoredLoaded:
		return fmt.Sprintf("StoredLoaded{Tokens:%s Discovery:%s Client:%s}", yesNo(in.Tokens != nil), yesNo(in.Discovery != nil), yesNo(in.Client != nil))
	case machine.ClientLoaded:
		return fmt.Sprintf("ClientLoaded{Client:%s}", yesNo(in.Client != nil))
	case machine.CredentialChanged:
		return fmt.Sprintf("CredentialChanged{Version:%d}", in.Version)
	}
	return typeName(in) // an input added since: its name only, never its fields
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func typeName(v any) string {
	t := fmt.Sprintf("%T", v)
	return t[strings.LastIndexByte(t, '.')+1:]
}

func stripQuery(u string) string {
	base, _, _ := strings.Cut(u, "?")
	return base
}

// nopTracer implements the parts of driver.Tracer a tracer does not need.
type nopTracer struct{}

func (nopTracer) Input(machine.Input, time.Time) {}
func (nopTracer) Effect(effects.Effect)          {}
func (nopTracer) Refused(machine.Input, error)   {}
func (nopTracer) StoreError(error)               {}
