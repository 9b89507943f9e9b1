package main

import (
	"strings"
	"sync"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// pathRecorder is a driver.Tracer that keeps the transitions a run took,
// in order, each once, to draw them as a Mermaid state diagram.
type pathRecorder struct {
	nopTracer
	mu    sync.Mutex
	first string
	path  []effects.Transition
	seen  map[effects.Transition]bool
}

// Effect implements driver.Tracer.
func (p *pathRecorder) Effect(e effects.Effect) {
	tr, ok := e.(effects.Transition)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.first == "" {
		p.first = tr.From
	}
	if p.seen == nil {
		p.seen = map[effects.Transition]bool{}
	}
	if !p.seen[tr] {
		p.seen[tr] = true
		p.path = append(p.path, tr)
	}
}

// mermaid renders the path as a stateDiagram-v2, in the syntax of
// states.Diagram: a start arrow to the first state, then one labelled arrow
// per transition taken, in the order first taken.
func (p *pathRecorder) mermaid() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	first := p.first
	if first == "" {
		first = string(states.Initial)
	}
	b.WriteString("    [*] --> " + first + "\n")
	for _, tr := range p.path {
		b.WriteString("    " + tr.From + " --> " + tr.To + ": " + tr.Trigger + "\n")
	}
	return b.String()
}

// mermaidBlock extracts the diagram from a Markdown page (states.Diagram):
// the body of its ```mermaid fence.
func mermaidBlock(page string) string {
	_, rest, ok := strings.Cut(page, "```mermaid\n")
	if !ok {
		return page
	}
	body, _, _ := strings.Cut(rest, "```")
	return body
}
