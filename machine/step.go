package machine

import (
	"fmt"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// Step is the machine: it consumes one input and returns the next snapshot
// and the effects the driver must run, in order. See the package doc for
// the contract.
func Step(s Snapshot, in Input, env Env) (Snapshot, []effects.Effect, error) {
	st := &step{s: s, env: env}
	if err := st.run(in); err != nil {
		return s, nil, err
	}
	return st.s, st.out, nil
}

// step accumulates one Step's work on a private copy of the snapshot.
// Discipline: fields of st.s that hold slices or maps are replaced, never
// written through, because they are shared with the caller's snapshot.
type step struct {
	s   Snapshot
	env Env
	out []effects.Effect
}

func (st *step) emit(e ...effects.Effect) { st.out = append(st.out, e...) }

// to moves to the state the table gives for t, and records the transition.
// Classification must only produce legal triggers, so an error here is a
// bug, reported as such rather than hidden.
func (st *step) to(t states.Trigger) error {
	from := st.s.State
	next, err := states.Next(from, t)
	if err != nil {
		return fmt.Errorf("machine: internal: %w", err)
	}
	if !from.Attempting() && next.Attempting() {
		st.s.Attempt = Attempt{KeepOnFailure: st.s.HasCredential()}
	}
	if !next.Attempting() {
		st.s.Attempt = Attempt{}
	}
	st.s.State = next
	st.emit(effects.Transition{From: string(from), Trigger: string(t), To: string(next)})
	return nil
}

func (st *step) run(in Input) error {
	switch in := in.(type) {
	case RequestStarted:
		return st.requestStarted(in)
	case ProtectedResponse:
		return st.protectedResponse(in)
	case ProtectedFailed:
		return st.protectedFailed(in)
	case SendWithheld:
		info, ok := st.s.Requests.Get(in.Request)
		if !ok || info.Parked {
			return st.unexpected(in, "the request is not in flight")
		}
		return st.dispatch(in.Request)
	case StoredLoaded:
		return st.storedLoaded(in)
	case CredentialChanged:
		return st.credentialChanged(in)
	case Tick:
		return st.tick()
	}
	// Every other input belongs to the running attempt.
	if !st.s.State.Attempting() {
		return st.unexpected(in, "no attempt is running")
	}
	// Legality first: an illegal input changes nothing, not even the budget.
	switch in := in.(type) {
	case FetchResponse, FetchFailed:
		seq := seqOf(in)
		if seq == 0 || seq != st.s.Attempt.Pending {
			return st.unexpected(in, fmt.Sprintf("request %d is not awaited", seq))
		}
	case CallbackReceived, CallbackFailed:
		if st.s.State != states.AwaitingCallback {
			return st.unexpected(in, "no callback is awaited")
		}
	case ClientLoaded:
		if st.s.State != states.LoadingClient {
			return st.unexpected(in, "no client is being loaded")
		}
	default:
		return st.unexpected(in, "unknown input")
	}
	st.s.Attempt.Steps++
	if st.s.Attempt.Steps > st.s.Config.Limits.StepsPerAttempt {
		return st.fail(&BudgetError{Limit: st.s.Config.Limits.StepsPerAttempt})
	}
	switch in := in.(type) {
	case FetchResponse:
		return st.fetchAnswered(in, "")
	case FetchFailed:
		return st.fetchAnswered(FetchResponse{Seq: in.Seq}, in.Reason)
	case CallbackReceived:
		return st.callbackReceived(in)
	case CallbackFailed:
		return st.fail(&CallbackError{Reason: in.Reason})
	case ClientLoaded:
		return st.clientLoaded(in)
	}
	return nil
}

func seqOf(in Input) uint64 {
	switch in := in.(type) {
	case FetchResponse:
		return in.Seq
	case FetchFailed:
		return in.Seq
	}
	return 0
}

func (st *step) unexpected(in Input, reason string) error {
	return &UnexpectedInputError{State: st.s.State, Input: fmt.Sprintf("%T", in), Reason: reason}
}

// fetchAnswered routes the answer to the pending auxiliary request to the
// stage that sent it. reason is set when the request failed in transport.
// The caller has checked that r answers the pending request.
func (st *step) fetchAnswered(r FetchResponse, reason string) error {
	st.s.Attempt.Pending = 0
	st.rememberNonce(st.s.Attempt.PendingURL, nonceOf(r.Header))
	if reason != "" {
		return st.fail(&TransportError{Purpose: string(st.s.Attempt.Purpose), URL: st.s.Attempt.PendingURL, Reason: reason})
	}
	switch st.s.State {
	case states.DiscoveringResource:
		return st.resourceMetadataAnswered(r)
	case states.DiscoveringIssuer:
		return st.serverMetadataAnswered(r)
	case states.Registering:
		return st.registrationAnswered(r)
	case states.ExchangingCode:
		return st.codeExchanged(r)
	case states.Refreshing:
		return st.refreshAnswered(r)
	case states.RequestingToken:
		return st.grantAnswered(r)
	case states.ExchangingIdentity:
		return st.identityExchanged(r)
	}
	return &UnexpectedInputError{State: st.s.State, Input: "fetch answer", Reason: "no request is awaited"}
}

// fetch emits an auxiliary request and remembers it as the pending one.
func (st *step) fetch(p effects.Purpose, method, url string, header map[string][]string, body []byte) {
	st.s.Seq++
	st.s.Attempt.Pending = st.s.Seq
	st.s.Attempt.Purpose = p
	st.s.Attempt.PendingURL = url
	st.emit(effects.Fetch{Seq: st.s.Seq, Purpose: p, Method: method, URL: url, Header: header, Body: body})
}

// fail ends the running attempt with err: parked requests that were refused
// get err; the others are sent with the credential kept, if one is.
func (st *step) fail(err error) error {
	keep := st.s.Attempt.KeepOnFailure && st.s.HasCredential()
	t := states.AttemptFailed
	if keep {
		t = states.AttemptFailedCredentialKept
	} else {
		st.s.Credential = effects.Tokens{}
	}
	if e := st.to(t); e != nil {
		return e
	}
	st.releaseParked(err)
	return nil
}

func validateConfig(c Config) error {
	if c.Server == "" {
		return &ConfigError{Field: "Server", Reason: "required"}
	}
	if err := CheckSecureURL(c.Server); err != nil {
		return &ConfigError{Field: "Server", Reason: err.Error()}
	}
	if c.RedirectURI != "" {
		if err := CheckSecureURL(c.RedirectURI); err != nil {
			return &ConfigError{Field: "RedirectURI", Reason: err.Error()}
		}
	}
	switch c.TokenEndpointAuthMethod {
	case "none", "client_secret_basic", "client_secret_post":
	default:
		return &ConfigError{Field: "TokenEndpointAuthMethod", Reason: "must be none, client_secret_basic or client_secret_post"}
	}
	return nil
}
