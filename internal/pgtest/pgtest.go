package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// RequireEnv is the environment variable that turns a missing PostgreSQL
// into a test failure instead of a skip.
const RequireEnv = "MCPAUTH_REQUIRE_POSTGRES"

// UserEnv names the user initdb and postgres run as when the test runs as
// root.
const UserEnv = "MCPAUTH_PGTEST_USER"

// port is the server's port: with no TCP listener it only names the socket
// file (.s.PGSQL.5432), and the folder is the test's own.
const port = 5432

// Cluster is a running throwaway PostgreSQL cluster.
type Cluster struct {
	t       testing.TB
	bin     string // folder holding initdb and pg_ctl
	dataDir string // the cluster, owned by the server's user
	sockDir string // where the socket lives (dataDir unless its path is too long)
	runAs   *runAs // nil: run as the current user

	mu      sync.Mutex
	running bool
}

// Start starts a cluster that is removed when t ends and returns its DSN.
func Start(t testing.TB) string {
	t.Helper()
	return StartCluster(t).DSN()
}

// StartCluster starts a cluster that is removed when t ends.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := FindBin()
	if err != nil {
		if os.Getenv(RequireEnv) == "" {
			t.Skipf("pgtest: %v (set %s=1 to make this a failure)", err, RequireEnv)
		}
		t.Fatalf("pgtest: %v, and %s is set", err, RequireEnv)
	}
	ra, err := currentRunAs()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c := &Cluster{t: t, bin: bin, runAs: ra}
	c.dataDir = t.TempDir()
	c.sockDir = c.dataDir
	// A unix socket path holds at most 107 bytes (sun_path).
	if len(filepath.Join(c.sockDir, ".s.PGSQL."+strconv.Itoa(port))) > 100 {
		d, err := os.MkdirTemp("", "pgsock")
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		c.sockDir = d
	}
	if ra != nil {
		for _, d := range []string{c.dataDir, c.sockDir} {
			if err := ra.own(d); err != nil {
				t.Fatalf("pgtest: %v", err)
			}
		}
	}
	if err := c.initdb(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(c.remove)
	if err := c.start(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return c
}

// DSN is the cluster's connection string (key=value form, unix socket).
func (c *Cluster) DSN() string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", quoteDSN(c.sockDir), port)
}

// Dir is the cluster's data folder.
func (c *Cluster) Dir() string { return c.dataDir }

// Stop stops the server the way an operator does (pg_ctl stop -m fast:
// sessions are disconnected, transactions in progress roll back).
func (c *Cluster) Stop() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	if out, err := c.pgctl("stop", "-m", "fast"); err != nil {
		c.t.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	c.running = false
}

// Restart starts a stopped server again.
func (c *Cluster) Restart() {
	c.t.Helper()
	if err := c.start(); err != nil {
		c.t.Fatalf("pgtest: %v", err)
	}
}

func (c *Cluster) initdb() error {
	cmd := exec.Command(filepath.Join(c.bin, "initdb"),
		"-D", c.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "-N")
	if out, err := c.run(cmd); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf(`
# pgtest: a throwaway cluster
listen_addresses = ''
unix_socket_directories = %s
port = %d
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 32MB
`, quoteConf(c.sockDir), port)
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (c *Cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return nil
	}
	if out, err := c.pgctl("start", "-w", "-t", "60", "-l", filepath.Join(c.dataDir, "server.log")); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dataDir, "server.log"))
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	c.running = true
	return nil
}

// remove stops the server at once; t.TempDir removes the folder.
func (c *Cluster) remove() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	if out, err := c.pgctl("stop", "-m", "immediate"); err != nil {
		c.t.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	c.running = false
}

func (c *Cluster) pgctl(args ...string) ([]byte, error) {
	args = append([]string{"-D", c.dataDir}, args...)
	if args[2] == "stop" {
		args = append(args, "-w", "-t", "60")
	}
	return c.run(exec.Command(filepath.Join(c.bin, "pg_ctl"), args...))
}

// run runs a PostgreSQL program as the cluster's user, in the cluster's
// folder, with a clean environment (no PG* variables, C locale).
func (c *Cluster) run(cmd *exec.Cmd) ([]byte, error) {
	cmd.Dir = c.dataDir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "LANG=C", "TZ=UTC"}
	if c.runAs != nil {
		c.runAs.apply(cmd)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// FindBin returns the folder holding initdb and pg_ctl: the one on PATH,
// else the newest /usr/lib/postgresql/<version>/bin.
func FindBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
}

// versionOf is the major version in /usr/lib/postgresql/<v>/bin/initdb.
func versionOf(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// quoteDSN quotes a key=value DSN value when it needs it.
func quoteDSN(s string) string {
	if s != "" && !strings.ContainsAny(s, ` '\`) {
		return s
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// quoteConf is a postgresql.conf string literal.
func quoteConf(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
