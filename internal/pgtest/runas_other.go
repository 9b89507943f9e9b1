//go:build !unix

package pgtest

import "os/exec"

// runAs is never needed off unix: there is no root to refuse.
type runAs struct{}

func currentRunAs() (*runAs, error)   { return nil, nil }
func (r *runAs) own(dir string) error { return nil }
func (r *runAs) apply(cmd *exec.Cmd)  {}
