package bench

import (
	"bufio"
	"encoding/json"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Result is one benchmark of a `go test -bench -json` run: its metrics
// (one value per -count repetition), the NOTE lines it logged, and how it
// ended.
type Result struct {
	Package string
	Name    string // e.g. BenchmarkStep/inflight=1, without the -GOMAXPROCS suffix
	Metrics map[string][]float64
	Notes   []string
	Skipped string // the skip reason, when skipped
	Failed  bool
	Output  string // everything it printed (for failures)
}

// Median is the median of a metric over the repetitions.
func (r *Result) Median(unit string) (float64, bool) {
	vs := r.Metrics[unit]
	if len(vs) == 0 {
		return 0, false
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// Report is everything parsed from one or more go test -json streams.
type Report struct {
	Results []*Result
	// Failures lists failed packages and benchmarks, with their output.
	Failures []string
	CPU      string // from the "cpu:" header go test prints
	byKey    map[string]*Result
}

// Get returns the result of a benchmark by name (any package), or nil.
func (r *Report) Get(name string) *Result {
	for _, res := range r.Results {
		if res.Name == name {
			return res
		}
	}
	return nil
}

type testEvent struct {
	Action  string
	Package string
	Test    string
	Output  string
}

var (
	resultLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)
	noteLine   = regexp.MustCompile(`^\s+\S+\.go:\d+: NOTE: (.*)$`)
)

// ParseJSON adds the events of one go test -json stream to the run.
func (r *Report) ParseJSON(in io.Reader) error {
	if r.byKey == nil {
		r.byKey = map[string]*Result{}
	}
	out := map[string]*strings.Builder{}
	var order []string
	pkgOut := map[string]*strings.Builder{}
	var pkgOrder []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue // go build noise
		}
		var ev testEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			continue
		}
		key := ev.Package + "\x00" + ev.Test
		switch ev.Action {
		case "output":
			if ev.Test == "" {
				b := pkgOut[ev.Package]
				if b == nil {
					b = &strings.Builder{}
					pkgOut[ev.Package] = b
					pkgOrder = append(pkgOrder, ev.Package)
				}
				b.WriteString(ev.Output)
				if cpu, ok := strings.CutPrefix(ev.Output, "cpu: "); ok && r.CPU == "" {
					r.CPU = strings.TrimSpace(cpu)
				}
				continue
			}
			b := out[key]
			if b == nil {
				b = &strings.Builder{}
				out[key] = b
				order = append(order, key)
			}
			b.WriteString(ev.Output)
		case "skip":
			if ev.Test != "" {
				res := r.result(ev.Package, ev.Test)
				res.Skipped = "skipped"
			}
		case "fail":
			if ev.Test != "" {
				r.result(ev.Package, ev.Test).Failed = true
				r.Failures = append(r.Failures, ev.Package+" "+ev.Test)
			} else {
				msg := ev.Package + " (package)"
				if b := pkgOut[ev.Package]; b != nil {
					msg += "\n" + tail(b.String(), 40)
				}
				r.Failures = append(r.Failures, msg)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	// Result lines: a benchmark's first run prints under its name, the
	// repetitions of -count at package level; the line names the benchmark.
	results := func(pkg, text string) {
		for _, l := range strings.Split(text, "\n") {
			m := resultLine.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			res := r.result(pkg, m[1])
			fields := strings.Fields(m[3])
			for i := 0; i+1 < len(fields); i += 2 {
				v, err := strconv.ParseFloat(fields[i], 64)
				if err != nil {
					continue
				}
				res.Metrics[fields[i+1]] = append(res.Metrics[fields[i+1]], v)
			}
		}
	}
	for _, key := range order {
		pkg, test, _ := strings.Cut(key, "\x00")
		text := out[key].String()
		results(pkg, text)
		for _, l := range strings.Split(text, "\n") {
			if m := noteLine.FindStringSubmatch(l); m != nil {
				res := r.result(pkg, test)
				if !slices.Contains(res.Notes, m[1]) {
					res.Notes = append(res.Notes, m[1])
				}
			}
		}
		if rr, ok := r.byKey[key]; ok {
			rr.Output += text
			if rr.Skipped != "" {
				rr.Skipped = skipReason(text)
			}
		}
	}
	for _, pkg := range pkgOrder {
		results(pkg, pkgOut[pkg].String())
	}
	// Parents of sub-benchmarks print no result line: drop them.
	r.Results = slices.DeleteFunc(r.Results, func(res *Result) bool {
		return len(res.Metrics) == 0 && res.Skipped == "" && !res.Failed && len(res.Notes) == 0
	})
	// Forget them in the index too, so a later parse cannot write into a
	// result that is no longer reported.
	for k, res := range r.byKey {
		if !slices.Contains(r.Results, res) {
			delete(r.byKey, k)
		}
	}
	return nil
}

func (r *Report) result(pkg, test string) *Result {
	key := pkg + "\x00" + test
	if res, ok := r.byKey[key]; ok {
		return res
	}
	res := &Result{Package: pkg, Name: test, Metrics: map[string][]float64{}}
	r.byKey[key] = res
	r.Results = append(r.Results, res)
	return res
}

// skipReason is the last log line before "--- SKIP".
func skipReason(text string) string {
	reason := "skipped"
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "--- SKIP") {
			break
		}
		if i := strings.Index(l, ".go:"); i >= 0 && strings.HasPrefix(l, "    ") {
			if j := strings.Index(l[i:], ": "); j >= 0 {
				reason = strings.TrimSpace(l[i+j+2:])
			}
		}
	}
	return reason
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
