// Command benchreport runs mcpauth's benchmarks (issue 6) with
// `go test -bench -json` and writes docs/benchmarks.md: the machine it ran
// on, each figure next to its baseline, the ratios, and which targets were
// met.
//
//	go run ./cmd/benchreport                 # run everything, write docs/benchmarks.md
//	go run ./cmd/benchreport -in bench.json  # only render saved go test -json output
//
// The benchmarks are bounded (-benchtime per group), so a run takes a couple
// of minutes on two cores. benchreport exits non-zero when a benchmark or a
// package fails; a missed target is reported in the file and on stderr but
// is not a failure.
package main
