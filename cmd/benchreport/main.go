package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/mcpauth/mcpauth/internal/bench"
)

// A group is one go test invocation.
type group struct {
	pkgs  []string
	bench string
	args  []string
}

func main() {
	out := flag.String("o", "docs/benchmarks.md", "the report to write")
	in := flag.String("in", "", "render this saved `go test -json` output instead of running the benchmarks")
	save := flag.String("save", "", "also save the raw `go test -json` output here")
	goCmd := flag.String("go", "go", "the go command")
	flag.Parse()

	start := time.Now()
	env := bench.Env{
		Date:       start.UTC().Format("2006-01-02 15:04 MST"),
		Commit:     commit(),
		GoVersion:  goVersion(*goCmd),
		CPU:        cpuModel(),
		Cores:      runtime.NumCPU(),
		Memory:     memTotal(),
		Kernel:     strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		LoadBefore: loadAvg(),
	}

	run := &bench.Report{}
	var raw bytes.Buffer
	failed := false
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			fatal(err)
		}
		if err := run.ParseJSON(f); err != nil {
			fatal(err)
		}
		f.Close()
		env.Commands = []string{"(rendered from " + *in + ")"}
	} else {
		for _, g := range groups(*goCmd) {
			args := append([]string{"test", "-run", "^$", "-bench", g.bench, "-json"}, g.args...)
			args = append(args, g.pkgs...)
			env.Commands = append(env.Commands, *goCmd+" "+strings.Join(quote(args), " "))
			fmt.Fprintf(os.Stderr, "benchreport: %s %s\n", *goCmd, strings.Join(quote(args), " "))
			cmd := exec.Command(*goCmd, args...)
			cmd.Stderr = os.Stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				fatal(err)
			}
			if err := cmd.Start(); err != nil {
				fatal(err)
			}
			var buf bytes.Buffer
			// Show progress: the benchmark result lines as they come.
			tee := io.TeeReader(stdout, &buf)
			progress(tee)
			if err := cmd.Wait(); err != nil {
				failed = true
				fmt.Fprintf(os.Stderr, "benchreport: go test: %v\n", err)
			}
			raw.Write(buf.Bytes())
			if err := run.ParseJSON(bytes.NewReader(buf.Bytes())); err != nil {
				fatal(err)
			}
		}
	}
	if run.CPU != "" && env.CPU == "" {
		env.CPU = run.CPU
	}
	env.LoadAfter = loadAvg()
	env.Duration = time.Since(start).Round(time.Second).String()
	if *save != "" {
		if err := os.WriteFile(*save, raw.Bytes(), 0o644); err != nil {
			fatal(err)
		}
	}

	var doc bytes.Buffer
	missed := bench.Render(&doc, run, env)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fatal(err)
	}
	if err := os.WriteFile(*out, doc.Bytes(), 0o644); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "benchreport: wrote %s in %s\n", *out, env.Duration)
	for _, m := range missed {
		fmt.Fprintf(os.Stderr, "benchreport: target missed: %s\n", m)
	}
	if len(run.Failures) > 0 || failed {
		for _, f := range run.Failures {
			fmt.Fprintf(os.Stderr, "benchreport: FAIL %s\n", f)
		}
		os.Exit(1)
	}
}

// groups are the go test invocations: each benchmark gets the repetitions
// and -benchtime its kind needs, so the whole run stays within a few
// minutes on two cores.
func groups(goCmd string) []group {
	gs := []group{
		// Step cost: short and noisy on a shared machine, so five medians.
		{pkgs: []string{"./machine"}, bench: ".", args: []string{"-benchmem", "-count", "5", "-benchtime", "500ms"}},
		// Timings with in-run baselines: five repetitions, one second each.
		{pkgs: []string{"./httpdriver"}, bench: "^(BenchmarkTransportOverhead|BenchmarkThroughput)$", args: []string{"-benchmem", "-count", "5", "-benchtime", "1s"}},
		// Counts over every storm of one second's worth.
		{pkgs: []string{"./httpdriver"}, bench: "^BenchmarkStormFirstRequests$", args: []string{"-benchtime", "1s"}},
		// One op is a pair of 1,000-request storms (one to two seconds): five.
		{pkgs: []string{"./httpdriver"}, bench: "^BenchmarkStormExpiry$", args: []string{"-benchtime", "5x"}},
		// Exact counts: a few runs show they do not vary.
		{pkgs: []string{"./httpdriver"}, bench: "^BenchmarkRoundTrips$", args: []string{"-benchtime", "3x"}},
	}
	// Any other package with benchmarks runs as make bench always did.
	if others := otherBenchPackages(goCmd, "machine", "httpdriver"); len(others) > 0 {
		gs = append(gs, group{pkgs: others, bench: ".", args: []string{"-benchmem", "-benchtime", "1s"}})
	}
	// The httpdriver benchmarks named above are all there are; anything new
	// there runs too.
	gs = append(gs, group{pkgs: []string{"./httpdriver"}, bench: "^Benchmark", args: []string{"-benchmem", "-benchtime", "1s", "-skip",
		"^(BenchmarkTransportOverhead|BenchmarkThroughput|BenchmarkStormFirstRequests|BenchmarkStormExpiry|BenchmarkRoundTrips)$"}})
	return gs
}

// otherBenchPackages lists the module's packages (but skip) whose tests
// declare a benchmark.
func otherBenchPackages(goCmd string, skip ...string) []string {
	out, err := exec.Command(goCmd, "list", "-f", "{{.Dir}}\t{{.ImportPath}}", "./...").Output()
	if err != nil {
		return nil
	}
	var pkgs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		dir, path, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		skipped := false
		for _, s := range skip {
			if strings.HasSuffix(path, "/"+s) {
				skipped = true
			}
		}
		if skipped || !hasBenchmark(dir) {
			continue
		}
		pkgs = append(pkgs, path)
	}
	return pkgs
}

func hasBenchmark(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
	for _, f := range files {
		if bytes.Contains([]byte(readFile(f)), []byte("\nfunc Benchmark")) {
			return true
		}
	}
	return false
}

// progress prints the benchmark result lines of a go test -json stream as
// they come.
func progress(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	pending := map[string]string{}
	for sc.Scan() {
		var ev struct{ Action, Test, Output string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Action != "output" {
			continue
		}
		text := pending[ev.Test] + ev.Output
		for {
			line, rest, ok := strings.Cut(text, "\n")
			if !ok {
				break
			}
			if strings.HasPrefix(line, "Benchmark") && strings.Contains(line, "\t") {
				fmt.Fprintln(os.Stderr, line)
			}
			text = rest
		}
		pending[ev.Test] = text
	}
}

func quote(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$|()* ") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

func goVersion(goCmd string) string {
	out, err := exec.Command(goCmd, "version").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
}

// cpuModel reads the model name from /proc/cpuinfo.
func cpuModel() string {
	for _, line := range strings.Split(readFile("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func memTotal() string {
	for _, line := range strings.Split(readFile("/proc/meminfo"), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
				return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return ""
}

func loadAvg() string {
	fs := strings.Fields(readFile("/proc/loadavg"))
	if len(fs) < 3 {
		return "unknown"
	}
	return strings.Join(fs[:3], " ")
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
	os.Exit(1)
}
