// Package states declares the closed set of states of one authorization
// context, the closed set of triggers (classified inputs, named as past
// facts), and the one transition table between them.
//
// Contract:
//   - Table (a looplab/fsm fsm.Events) is the only list of transitions in
//     the project. The machine asks Next before it changes state; a
//     transition absent from Table cannot happen.
//   - Next is pure: it shares nothing between calls, runs no callbacks and
//     is safe for concurrent use.
//   - docs/state-machine.md is rendered from Table by Diagram; a test fails
//     when the committed file is stale (make docs rewrites it).
//
// looplab/fsm is used as declaration, validator and visualizer only: no
// callbacks, no SetState, no long-lived *fsm.FSM.
package states
