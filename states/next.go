package states

import (
	"fmt"

	"github.com/looplab/fsm"
)

// IllegalTransitionError reports a trigger that Table does not allow in a
// state.
type IllegalTransitionError struct {
	From    State
	Trigger Trigger
}

func (e *IllegalTransitionError) Error() string {
	return fmt.Sprintf("states: trigger %q is not allowed in state %q", e.Trigger, e.From)
}

// compiled is Table as a map, built once: Next runs on every transition and
// a throwaway *fsm.FSM costs microseconds. TestCompiledMatchesLooplab checks
// it against looplab's own answer for every (state, trigger) pair.
var compiled = compile(Table)

type edge struct {
	from    State
	trigger Trigger
}

func compile(events fsm.Events) map[edge]State {
	m := make(map[edge]State)
	for _, e := range events {
		for _, s := range e.Src {
			m[edge{State(s), Trigger(e.Name)}] = State(e.Dst)
		}
	}
	return m
}

// Next returns the state that trigger t leads to from s, or an
// *IllegalTransitionError when Table has no such transition.
func Next(s State, t Trigger) (State, error) {
	if to, ok := compiled[edge{s, t}]; ok {
		return to, nil
	}
	return s, &IllegalTransitionError{From: s, Trigger: t}
}
