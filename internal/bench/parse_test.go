package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A go test -json stream as go 1.26 prints it for benchmarks: a result
// line split over two output events, a NOTE log, a skip, a repetition.
const sampleJSON = `{"Action":"start","Package":"p"}
{"Action":"output","Package":"p","Output":"cpu: AMD EPYC\n"}
{"Action":"run","Package":"p","Test":"BenchmarkA"}
{"Action":"output","Package":"p","Test":"BenchmarkA","Output":"BenchmarkA\n"}
{"Action":"run","Package":"p","Test":"BenchmarkA/x=1"}
{"Action":"output","Package":"p","Test":"BenchmarkA/x=1","Output":"    p_test.go:6: NOTE: it | failed\n"}
{"Action":"output","Package":"p","Test":"BenchmarkA/x=1","Output":"BenchmarkA/x=1-2         \t"}
{"Action":"output","Package":"p","Test":"BenchmarkA/x=1","Output":"     100\t         3.400 ns/op\t         3.000 foo\n"}
{"Action":"output","Package":"p","Output":"BenchmarkA/x=1-2         \t"}
{"Action":"output","Package":"p","Output":"     100\t         5.000 ns/op\t         1.000 foo\n"}
{"Action":"output","Package":"p","Output":"BenchmarkA/x=1-2         \t     100\t         4.000 ns/op\t         2.000 foo\n"}
{"Action":"run","Package":"p","Test":"BenchmarkA/x=2"}
{"Action":"output","Package":"p","Test":"BenchmarkA/x=2","Output":"    p_test.go:9: cannot: reason here\n"}
{"Action":"output","Package":"p","Test":"BenchmarkA/x=2","Output":"--- SKIP: BenchmarkA/x=2\n"}
{"Action":"skip","Package":"p","Test":"BenchmarkA/x=2"}
{"Action":"pass","Package":"p"}
`

func TestParseJSON(t *testing.T) {
	var r Report
	if err := r.ParseJSON(strings.NewReader(sampleJSON)); err != nil {
		t.Fatal(err)
	}
	if r.CPU != "AMD EPYC" {
		t.Errorf("CPU = %q", r.CPU)
	}
	a := r.Get("BenchmarkA/x=1")
	if a == nil {
		t.Fatalf("BenchmarkA/x=1 not parsed: %+v", r.Results)
	}
	if v, _ := a.Median("ns/op"); v != 4 {
		t.Errorf("median ns/op = %v, want 4 (of 3.4, 5, 4)", v)
	}
	if v, _ := a.Median("foo"); v != 2 {
		t.Errorf("median foo = %v, want 2", v)
	}
	if len(a.Notes) != 1 || a.Notes[0] != "it | failed" {
		t.Errorf("notes = %q", a.Notes)
	}
	if s := r.Get("BenchmarkA/x=2"); s == nil || s.Skipped != "cannot: reason here" {
		t.Errorf("skip = %+v", s)
	}
	if r.Get("BenchmarkA") != nil {
		t.Errorf("the parent benchmark has no result and should not be listed")
	}
	if len(r.Failures) != 0 {
		t.Errorf("failures = %q", r.Failures)
	}
}

// TestRenderEmpty: a run with nothing in it still renders, with every
// target "not measured" and nothing claimed as met.
func TestRenderEmpty(t *testing.T) {
	var buf bytes.Buffer
	missed := Render(&buf, &Report{}, Env{Cores: 2})
	if len(missed) != 0 {
		t.Errorf("missed = %q", missed)
	}
	if strings.Contains(buf.String(), "**met**") {
		t.Errorf("an empty run claims a target met:\n%s", buf.String())
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	if p := Percentile(ds, 0.99); p != 99 {
		t.Errorf("p99 = %v, want 99", p)
	}
	if p := Percentile(ds, 0.5); p != 50 {
		t.Errorf("p50 = %v, want 50", p)
	}
}
