package states

import (
	"context"
	"errors"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/looplab/fsm"
)

// TestEveryPairIsATableEntryOrATypedError walks every (state, trigger)
// pair: the table either allows it, with the destination looplab computes,
// or Next refuses it with *IllegalTransitionError and the state unchanged.
func TestEveryPairIsATableEntryOrATypedError(t *testing.T) {
	declared := map[edge]State{}
	for _, e := range Table {
		for _, s := range e.Src {
			declared[edge{State(s), Trigger(e.Name)}] = State(e.Dst)
		}
	}
	for _, s := range All {
		for _, tr := range Triggers {
			got, err := Next(s, tr)
			want, allowed := declared[edge{s, tr}]
			if allowed {
				if err != nil || got != want {
					t.Errorf("Next(%s, %s) = %s, %v; the table says %s", s, tr, got, err, want)
				}
				continue
			}
			var illegal *IllegalTransitionError
			if !errors.As(err, &illegal) || illegal.From != s || illegal.Trigger != tr || got != s {
				t.Errorf("Next(%s, %s) = %s, %v; want *IllegalTransitionError and the state unchanged", s, tr, got, err)
			}
		}
	}
}

// TestCompiledMatchesLooplab holds the compiled map to looplab/fsm's own
// answer for every pair, self-loops included (looplab reports those as
// NoTransitionError{nil}).
func TestCompiledMatchesLooplab(t *testing.T) {
	for _, s := range All {
		for _, tr := range Triggers {
			got, gotErr := Next(s, tr)
			want, wantErr := nextByLooplab(s, tr)
			if got != want || (gotErr == nil) != (wantErr == nil) {
				t.Errorf("(%s, %s): compiled gives %s, %v; looplab gives %s, %v", s, tr, got, gotErr, want, wantErr)
			}
		}
	}
}

// TestNoPairDeclaredTwice guards looplab's silent last-wins overwrite.
func TestNoPairDeclaredTwice(t *testing.T) {
	seen := map[edge]bool{}
	for _, e := range Table {
		for _, s := range e.Src {
			k := edge{State(s), Trigger(e.Name)}
			if seen[k] {
				t.Errorf("(%s, %s) is declared twice", s, e.Name)
			}
			seen[k] = true
		}
	}
}

// TestTableNamesOnlyKnownStatesAndTriggers catches typos: looplab accepts
// any string.
func TestTableNamesOnlyKnownStatesAndTriggers(t *testing.T) {
	states := map[string]bool{}
	for _, s := range All {
		states[string(s)] = true
	}
	triggers := map[string]bool{}
	for _, tr := range Triggers {
		triggers[string(tr)] = true
	}
	used := map[string]bool{}
	for _, e := range Table {
		if !triggers[e.Name] {
			t.Errorf("trigger %q is not in Triggers", e.Name)
		}
		used[e.Name] = true
		if !states[e.Dst] {
			t.Errorf("destination %q of %s is not in All", e.Dst, e.Name)
		}
		for _, s := range e.Src {
			if !states[s] {
				t.Errorf("source %q of %s is not in All", s, e.Name)
			}
		}
	}
	for _, tr := range Triggers {
		if !used[string(tr)] {
			t.Errorf("trigger %s is declared but no transition uses it", tr)
		}
	}
}

// TestEveryStateIsReachable walks the table from the initial state.
func TestEveryStateIsReachable(t *testing.T) {
	reached := map[State]bool{Initial: true}
	for changed := true; changed; {
		changed = false
		for _, e := range Table {
			for _, s := range e.Src {
				if reached[State(s)] && !reached[State(e.Dst)] {
					reached[State(e.Dst)] = true
					changed = true
				}
			}
		}
	}
	var missing []string
	for _, s := range All {
		if !reached[s] {
			missing = append(missing, string(s))
		}
	}
	sort.Strings(missing)
	if diff := cmp.Diff([]string(nil), missing); diff != "" {
		t.Errorf("unreachable states (-want +got):\n%s", diff)
	}
}

// TestEveryAttemptCanEnd: each attempt state can fail, keep the credential,
// or adopt one stored elsewhere, so no attempt can strand its requests.
func TestEveryAttemptCanEnd(t *testing.T) {
	for _, s := range All {
		if !s.Attempting() {
			continue
		}
		for _, tr := range []Trigger{AttemptFailed, AttemptFailedCredentialKept, CredentialChanged} {
			to, err := Next(s, tr)
			if err != nil || to.Attempting() {
				t.Errorf("Next(%s, %s) = %s, %v; want a resting state", s, tr, to, err)
			}
		}
	}
}

// nextByLooplab asks looplab/fsm itself, with a throwaway FSM and no
// callbacks. Tests hold Next to it.
func nextByLooplab(s State, t Trigger) (State, error) {
	f := fsm.NewFSM(string(s), Table, nil)
	err := f.Event(context.Background(), string(t))
	var same fsm.NoTransitionError // looplab reports a legal self-loop as "no transition"
	if err == nil || (errors.As(err, &same) && same.Err == nil) {
		return State(f.Current()), nil
	}
	return s, &IllegalTransitionError{From: s, Trigger: t}
}
