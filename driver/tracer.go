package driver

import (
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// Tracer observes a session: every input (with the time it was stepped
// at), every effect (transitions included) and every input the machine
// refused. Calls come in order, under the session's lock: keep them quick.
// Implementations must not print secrets; Describe renders safely.
type Tracer interface {
	Input(in machine.Input, now time.Time)
	Effect(e effects.Effect)
	Refused(in machine.Input, err error)
	StoreError(err error)
}

// Tracers fans one session's trace out to several tracers.
type Tracers []Tracer

// Input implements Tracer.
func (ts Tracers) Input(in machine.Input, now time.Time) {
	for _, t := range ts {
		t.Input(in, now)
	}
}

// Effect implements Tracer.
func (ts Tracers) Effect(e effects.Effect) {
	for _, t := range ts {
		t.Effect(e)
	}
}

// Refused implements Tracer.
func (ts Tracers) Refused(in machine.Input, err error) {
	for _, t := range ts {
		t.Refused(in, err)
	}
}

// StoreError implements Tracer.
func (ts Tracers) StoreError(err error) {
	for _, t := range ts {
		t.StoreError(err)
	}
}
