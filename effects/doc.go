// Package effects is the closed set of effect descriptors that the pure
// machine (package machine) asks a driver to carry out, and the records it
// asks the driver to persist.
//
// Contract:
//   - Every effect is a plain struct with exported fields: strings, byte
//     slices, maps of string slices, times and other records from this
//     package. No funcs, channels, readers or *url.URL, so effects can be
//     compared with go-cmp, recorded in traces and replayed.
//   - The set is sealed: only this package can add an Effect.
//   - A driver executes the effects of one Step in order. Save effects come
//     before the effects that depend on what they save (a rotated refresh
//     token is persisted before any request carries the new access token);
//     a driver must not reorder them.
//   - Effects may carry secrets (bodies of token requests, Authorization
//     headers). Their String methods redact them; use Redacted before logging
//     an effect any other way.
package effects
