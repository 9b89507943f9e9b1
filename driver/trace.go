package driver

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// TraceLine is one line of a recorded trace (JSON lines). Kind is "input",
// "effect", "refused" or "store_error".
type TraceLine struct {
	Kind  string          `json:"kind"`
	At    *time.Time      `json:"at,omitempty"`    // inputs: the Env.Now they were stepped at
	Type  string          `json:"type,omitempty"`  // inputs: the input's type
	Input json.RawMessage `json:"input,omitempty"` // inputs: the input, secrets redacted
	Text  string          `json:"text,omitempty"`  // effects (Describe), errors
}

// TraceRecorder is a Tracer that writes JSON lines, with secrets redacted,
// to W. It is safe for concurrent use.
type TraceRecorder struct {
	mu  sync.Mutex
	enc *json.Encoder
	err error
}

// NewTraceRecorder returns a recorder writing to w.
func NewTraceRecorder(w io.Writer) *TraceRecorder {
	return &TraceRecorder{enc: json.NewEncoder(w)}
}

// Err returns the first write error, if any.
func (r *TraceRecorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *TraceRecorder) write(l TraceLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = r.enc.Encode(l)
	}
}

// Input implements Tracer.
func (r *TraceRecorder) Input(in machine.Input, now time.Time) {
	b, err := json.Marshal(RedactInput(in))
	if err != nil {
		b, _ = json.Marshal(err.Error())
	}
	at := now.UTC()
	r.write(TraceLine{Kind: "input", At: &at, Type: typeName(in), Input: b})
}

// Effect implements Tracer.
func (r *TraceRecorder) Effect(e effects.Effect) {
	r.write(TraceLine{Kind: "effect", Text: Describe(e)})
}

// Refused implements Tracer.
func (r *TraceRecorder) Refused(in machine.Input, err error) {
	r.write(TraceLine{Kind: "refused", Type: typeName(in), Text: err.Error()})
}

// StoreError implements Tracer.
func (r *TraceRecorder) StoreError(err error) {
	r.write(TraceLine{Kind: "store_error", Text: err.Error()})
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return effects.Redacted
}

func maskTokens(t *effects.Tokens) *effects.Tokens {
	if t == nil {
		return nil
	}
	c := *t
	c.AccessToken, c.RefreshToken = mask(c.AccessToken), mask(c.RefreshToken)
	return &c
}

func maskClient(c *effects.Client) *effects.Client {
	if c == nil {
		return nil
	}
	m := *c
	m.ClientSecret = mask(m.ClientSecret)
	return &m
}

// RedactInput returns a copy of in with every secret replaced, for traces.
func RedactInput(in machine.Input) machine.Input {
	switch in := in.(type) {
	case machine.FetchResponse:
		in.Body = []byte(effects.RedactBody(in.Body))
		return in
	case machine.CallbackReceived:
		in.Query = effects.RedactQuery(in.Query)
		return in
	case machine.StoredLoaded:
		in.Tokens, in.Client = maskTokens(in.Tokens), maskClient(in.Client)
		return in
	case machine.ClientLoaded:
		in.Client = maskClient(in.Client)
		return in
	case machine.CredentialChanged:
		in.Tokens = *maskTokens(&in.Tokens)
		return in
	}
	return in
}

// decodeInput rebuilds an input from a trace line.
func decodeInput(l TraceLine) (machine.Input, error) {
	var in machine.Input
	var err error
	switch l.Type {
	case "RequestStarted":
		in, err = decodeAs[machine.RequestStarted](l.Input)
	case "ProtectedResponse":
		in, err = decodeAs[machine.ProtectedResponse](l.Input)
	case "ProtectedFailed":
		in, err = decodeAs[machine.ProtectedFailed](l.Input)
	case "FetchResponse":
		in, err = decodeAs[machine.FetchResponse](l.Input)
	case "FetchFailed":
		in, err = decodeAs[machine.FetchFailed](l.Input)
	case "CallbackReceived":
		in, err = decodeAs[machine.CallbackReceived](l.Input)
	case "CallbackFailed":
		in, err = decodeAs[machine.CallbackFailed](l.Input)
	case "StoredLoaded":
		in, err = decodeAs[machine.StoredLoaded](l.Input)
	case "ClientLoaded":
		in, err = decodeAs[machine.ClientLoaded](l.Input)
	case "CredentialChanged":
		in, err = decodeAs[machine.CredentialChanged](l.Input)
	case "Tick":
		in = machine.Tick{}
	case "SendWithheld":
		in, err = decodeAs[machine.SendWithheld](l.Input)
	default:
		return nil, fmt.Errorf("driver: trace input of unknown type %q", l.Type)
	}
	return in, err
}

func decodeAs[T machine.Input](b json.RawMessage) (machine.Input, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}
