package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mcpauth/mcpauth/driver"
)

// env is everything a command touches outside its arguments, so that
// tests run commands in-process with their own output, configuration
// directory and user agent.
type env struct {
	stdout, stderr io.Writer
	// stdoutTTY and stderrTTY say whether colours may be used there.
	stdoutTTY, stderrTTY bool
	getenv               func(string) string
	// configDir is os.UserConfigDir.
	configDir func() (string, error)
	now       func() time.Time
	// userAgent, when set, replaces the browser and the loopback callback
	// of `login` (tests inject a headless user agent here). It receives the
	// redirect URI the login registered.
	userAgent func(redirectURI string) driver.UserAgent
	// demoNetwork, when set, wraps the demo's connection pool, under its
	// HTTP logger (tests watch what crosses the wire).
	demoNetwork func(http.RoundTripper) http.RoundTripper
	// demoDone, when set, receives the demo's store and MCP server URL
	// before the demo returns (tests read the secrets it holds).
	demoDone func(store driver.Store, server string)

	consoles sync.Once
	outC     *console
	errC     *console
}

// stdoutConsole and stderrConsole are the one console of each stream: every
// writer of a stream goes through it, so lines never interleave.
func (e *env) stdoutConsole() *console {
	e.initConsoles()
	return e.outC
}

func (e *env) stderrConsole() *console {
	e.initConsoles()
	return e.errC
}

func (e *env) initConsoles() {
	e.consoles.Do(func() {
		e.outC = newConsole(e.stdout, e.stdoutTTY, e.now)
		e.errC = newConsole(e.stderr, e.stderrTTY, e.now)
	})
}

func systemEnv() *env {
	return &env{
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		stdoutTTY: isTerminal(os.Stdout) && os.Getenv("NO_COLOR") == "",
		stderrTTY: isTerminal(os.Stderr) && os.Getenv("NO_COLOR") == "",
		getenv:    os.Getenv,
		configDir: os.UserConfigDir,
		now:       time.Now,
	}
}

// isTerminal reports whether f is a character device (a terminal), without
// a dependency: good enough to decide about colours.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// defaultStorePath is os.UserConfigDir()/mcpauth/store.json.
func (e *env) defaultStorePath() (string, error) {
	dir, err := e.configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "mcpauth", "store.json"), nil
}
