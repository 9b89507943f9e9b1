package driver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// DivergenceError reports the first place where a replay differs from the
// recorded trace.
type DivergenceError struct {
	Line int    // 1-based line of the trace
	Want string // what the trace recorded
	Got  string // what the machine did
}

func (e *DivergenceError) Error() string {
	return fmt.Sprintf("driver: replay diverges at trace line %d:\n  recorded: %s\n  replayed: %s", e.Line, e.Want, e.Got)
}

// Replay re-runs a recorded trace through the machine, from machine.New(cfg),
// and reports the first divergence: an effect that differs, one that is
// missing or extra, or an input refused differently. Secrets were redacted
// when recording, so the replay runs on the redacted values; the one secret
// the machine checks against its own (the callback's state) is put back from
// the replayed snapshot. rand may be any entropy source: nothing drawn from
// it appears in a trace.
func Replay(cfg machine.Config, trace io.Reader, rand io.Reader) error {
	s, first, err := machine.New(cfg)
	if err != nil {
		return err
	}
	var pending []string // effects the machine produced that the trace has not matched yet
	for _, e := range first {
		pending = append(pending, Describe(e))
	}
	sc := bufio.NewScanner(trace)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		var l TraceLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("driver: trace line %d: %w", n, err)
		}
		switch l.Kind {
		case "effect":
			if len(pending) == 0 {
				return &DivergenceError{Line: n, Want: l.Text, Got: "(no effect)"}
			}
			if pending[0] != l.Text {
				return &DivergenceError{Line: n, Want: l.Text, Got: pending[0]}
			}
			pending = pending[1:]
		case "input":
			if len(pending) > 0 {
				return &DivergenceError{Line: n, Want: "(input " + l.Type + ")", Got: pending[0]}
			}
			in, err := decodeInput(l)
			if err != nil {
				return fmt.Errorf("driver: trace line %d: %w", n, err)
			}
			in = rehydrate(in, s)
			next, out, stepErr := machine.Step(s, in, machine.Env{Now: *l.At, Rand: rand})
			if stepErr != nil {
				pending = append(pending, "refused: "+stepErr.Error())
				continue
			}
			s = next
			for _, e := range out {
				pending = append(pending, Describe(e))
			}
		case "refused":
			want := "refused: " + l.Text
			if len(pending) == 0 || pending[0] != want {
				got := "(accepted)"
				if len(pending) > 0 {
					got = pending[0]
				}
				return &DivergenceError{Line: n, Want: want, Got: got}
			}
			pending = pending[1:]
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(pending) > 0 {
		return &DivergenceError{Line: n + 1, Want: "(end of trace)", Got: pending[0]}
	}
	return nil
}

// rehydrate makes a redacted input usable again: the state the trace
// redacted from a callback is put back, and redacted tokens in response
// bodies become a stand-in that is a valid token (the machine refuses a
// token that could not go into an Authorization header).
func rehydrate(in machine.Input, s machine.Snapshot) machine.Input {
	switch r := in.(type) {
	case machine.FetchResponse:
		r.Body = []byte(strings.ReplaceAll(string(r.Body), `"`+effects.Redacted+`"`, `"`+standIn+`"`))
		return r
	case machine.CredentialChanged:
		r.Tokens = standInTokens(r.Tokens)
		return r
	case machine.StoredLoaded:
		if r.Tokens != nil {
			t := standInTokens(*r.Tokens)
			r.Tokens = &t
		}
		return r
	}
	cb, ok := in.(machine.CallbackReceived)
	if !ok {
		return in
	}
	parts := strings.Split(cb.Query, "&")
	for i, p := range parts {
		if p == "state="+effects.Redacted {
			parts[i] = "state=" + url.QueryEscape(s.Attempt.StateParam)
		}
	}
	cb.Query = strings.Join(parts, "&")
	return cb
}

// standIn replaces every redacted token on replay, in bodies and records
// alike, so that tokens equal when recorded are equal when replayed.
const standIn = "redacted"

func standInTokens(t effects.Tokens) effects.Tokens {
	if t.AccessToken == effects.Redacted {
		t.AccessToken = standIn
	}
	if t.RefreshToken == effects.Redacted {
		t.RefreshToken = standIn
	}
	return t
}
