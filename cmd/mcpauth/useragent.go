package main

import (
	"context"
	"sync/atomic"
)

// noBrowserAgent is the user agent of the commands that must never open a
// browser (token, tools): when the machine needs the user, it fails at once
// with a *loginNeededError, and remembers that it was asked, because the
// machine reports a user agent's failure as a reason string only.
type noBrowserAgent struct {
	server string
	asked  atomic.Bool
}

// Authorize implements driver.UserAgent.
func (a *noBrowserAgent) Authorize(context.Context, string, string) (string, error) {
	a.asked.Store(true)
	return "", a.needed()
}

func (a *noBrowserAgent) needed() *loginNeededError {
	return &loginNeededError{server: a.server, msg: "the sign-in to " + a.server + " has expired and cannot be renewed without you"}
}
