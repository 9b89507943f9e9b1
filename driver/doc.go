// Package driver runs the pure machine: it owns the snapshot, carries out
// the effects Step returns, and turns their outcomes into the next inputs.
// It is transport-neutral: the I/O it needs comes through small interfaces
// (Requester for auxiliary requests, UserAgent for the user's authorization,
// Store for persistence, a clock and an entropy source), so the same loop
// runs over net/http (package httpdriver), a test script, or a non-HTTP
// transport that carries bearer tokens.
//
// Contract:
//   - NewSession builds a session from a machine.Config and its
//     dependencies; Start loads what the store holds.
//   - Each protected request is one Do call, from any goroutine: Do asks
//     the machine for the credential, performs the request with the send
//     function the caller passes, reports the answer, and repeats when the
//     machine says so. Requests never wait for each other while the
//     credential is good; during a refresh or authorization they wait for
//     that one attempt, which runs once for all of them.
//   - Store writes run in effect order, before any request can use what
//     they save (a rotated refresh token is persisted first).
//   - A Tracer sees every input, transition and effect; RecordTrace writes
//     them as JSON lines with secrets redacted, and Replay re-runs a trace
//     through the machine and reports the first divergence.
package driver
