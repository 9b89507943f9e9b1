//go:build unix

package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// runAs is the unprivileged user PostgreSQL runs as when the test is root.
type runAs struct {
	name     string
	uid, gid uint32
}

// currentRunAs returns nil when the test is not root; otherwise the user
// named by UserEnv, else "postgres", else "nobody".
func currentRunAs() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	names := []string{"postgres", "nobody"}
	if n := os.Getenv(UserEnv); n != "" {
		names = []string{n}
	}
	for _, n := range names {
		u, err := user.Lookup(n)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &runAs{name: n, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("running as root, and none of the users %v exists to run PostgreSQL as (initdb refuses root; set %s)", names, UserEnv)
}

// own hands dir to the user and lets the user reach it through its parent
// (a test's temporary folders are 0700).
func (r *runAs) own(dir string) error {
	if err := os.Chown(dir, int(r.uid), int(r.gid)); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	fi, err := os.Stat(parent)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o001 == 0 {
		return os.Chmod(parent, fi.Mode().Perm()|0o011)
	}
	return nil
}

// apply makes cmd run as the user.
func (r *runAs) apply(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: r.uid, Gid: r.gid, NoSetGroups: true}}
}
