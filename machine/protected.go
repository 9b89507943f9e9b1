package machine

import (
	"strings"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// requestStarted sends a new request straight through when it can, and
// parks it while an attempt runs (design §3: multiplexed, not serialized).
func (st *step) requestStarted(in RequestStarted) error {
	if _, ok := st.s.Requests.Get(in.Request); ok {
		return st.unexpected(in, "request id already in flight")
	}
	// A credential only ever goes to the protected resource's origin
	// (design §4.1): a request elsewhere passes through untouched.
	if !SameOriginAsServer(in.URL, st.s.Config.Server) {
		st.s.Requests = st.s.Requests.With(in.Request, RequestInfo{Foreign: true})
		st.emit(effects.SendProtected{Request: in.Request})
		return nil
	}
	st.s.Requests = st.s.Requests.With(in.Request, RequestInfo{})
	return st.dispatch(in.Request)
}

// SameOriginAsServer is SameOrigin for a URL and a server URL that
// Config validation accepted. Most requests go to the server URL itself
// (perhaps with a query or a deeper path): those are told without parsing.
func SameOriginAsServer(u, server string) bool {
	if rest, ok := strings.CutPrefix(u, server); ok && (rest == "" || rest[0] == '?' || rest[0] == '#' || rest[0] == '/') {
		return true
	}
	return SameOrigin(u, server)
}

// dispatch sends request id now, or parks it (starting a refresh when the
// credential is about to expire).
func (st *step) dispatch(id effects.RequestID) error {
	s := st.s
	switch {
	case s.State == states.Loading || s.State.Attempting():
		st.park(id, false)
		return nil
	case s.State == states.Authenticated && s.expiring(st.env.Now) && s.canRefresh():
		st.park(id, false)
		return st.startRefresh()
	case s.State == states.Authenticated && s.expiring(st.env.Now) && s.canRepeatGrant():
		st.park(id, false)
		return st.repeatGrant(s.Credential.Scope)
	}
	st.send(id)
	return nil
}

// send emits the request with the current credential, if any.
func (st *step) send(id effects.RequestID) {
	info, _ := st.s.Requests.Get(id)
	if info.Parked {
		info.Parked = false
		info.Unauthorized = false
		st.s.Requests = st.s.Requests.With(id, info)
	}
	if !st.s.HasCredential() || st.s.State != states.Authenticated {
		st.emit(effects.SendProtected{Request: id})
		return
	}
	// The access token goes in the Authorization header, never in the URL
	// (A-USE-01, A-USE-03).
	header, proof, err := st.protectedAuthorization(id)
	if err != nil {
		st.finish(id, err)
		return
	}
	st.emit(effects.SendProtected{Request: id, Header: header, Credential: st.s.Generation, Proof: proof})
}

func (st *step) park(id effects.RequestID, refused bool) {
	info, _ := st.s.Requests.Get(id)
	info.Parked = true
	info.Unauthorized = info.Unauthorized || refused
	st.s.Requests = st.s.Requests.With(id, info)
}

// finish removes a request and emits how it ended.
func (st *step) finish(id effects.RequestID, err error) {
	st.s.Requests = st.s.Requests.Without(id)
	if err != nil {
		st.emit(effects.Fail{Request: id, Err: err})
		return
	}
	st.emit(effects.Deliver{Request: id})
}

// releaseParked ends the wait of every parked request once the attempt is
// over: with a credential they are sent again (each exactly once); without
// one, or when they were refused, they fail with err.
func (st *step) releaseParked(err error) {
	if st.s.Requests.Parked() == 0 {
		return
	}
	var ids []effects.RequestID
	var refused []bool
	st.s.Requests.EachRemembered(func(id effects.RequestID, info RequestInfo) {
		if info.Parked {
			ids = append(ids, id)
			refused = append(refused, info.Unauthorized)
		}
	})
	for i, id := range ids {
		if err != nil && (refused[i] || !st.s.HasCredential()) {
			st.finish(id, err)
			continue
		}
		st.send(id)
	}
}

func (st *step) protectedFailed(in ProtectedFailed) error {
	if _, ok := st.s.Requests.Get(in.Request); !ok {
		return st.unexpected(in, "request is not in flight")
	}
	st.s.Requests = st.s.Requests.Without(in.Request)
	return nil
}

// protectedResponse judges the resource server's answer: deliver it, or
// get a credential (RFC 6750 §3, MCP step-up) and send the request again.
func (st *step) protectedResponse(in ProtectedResponse) error {
	info, ok := st.s.Requests.Get(in.Request)
	if !ok || info.Parked {
		return st.unexpected(in, "no answer is awaited for this request")
	}
	if info.Foreign {
		st.finish(in.Request, nil)
		return nil
	}
	st.rememberNonce(st.s.Config.Server, in.Nonce)
	switch in.Status {
	case 401:
		if st.nonceChallenge(in, info) {
			return nil
		}
		return st.unauthorized(in, info)
	case 403:
		c, _ := challengeOf(in.Challenges)
		if strings.EqualFold(c.Params["error"], "insufficient_scope") {
			return st.insufficientScope(in, info, c)
		}
	}
	if in.Status >= 200 && in.Status < 300 && in.Credential == st.s.Generation {
		st.s.CureTried = false
	}
	st.finish(in.Request, nil)
	return nil
}

// challengeOf returns the Bearer (or DPoP) challenge among the
// WWW-Authenticate values. A header that does not parse is treated as a
// bare challenge: the 401 still means "authorize" (A-GEN-06).
func challengeOf(values []string) (Challenge, bool) {
	cs, err := ParseChallenges(values)
	if err != nil {
		return Challenge{Params: map[string]string{}}, false
	}
	c, ok := BearerChallenge(cs)
	if !ok {
		return Challenge{Params: map[string]string{}}, false
	}
	return c, true
}

func (st *step) unauthorized(in ProtectedResponse, info RequestInfo) error {
	limit := st.s.Config.Limits.ResendsPerRequest
	if info.Resends >= limit {
		st.finish(in.Request, &UnauthorizedError{Status: in.Status, Limit: limit})
		return nil
	}
	info.Resends++
	st.s.Requests = st.s.Requests.With(in.Request, info)
	s := st.s
	switch {
	case s.State.Attempting():
		st.park(in.Request, true)
		return nil
	case s.HasCredential() && in.Credential < s.Generation:
		// Sent with a credential that has since been replaced: just resend.
		st.send(in.Request)
		return nil
	}
	st.park(in.Request, true)
	if s.canRefresh() && !s.CureTried && in.Credential == s.Generation {
		st.s.CureTried = true
		return st.startRefresh()
	}
	// Nothing to refresh, or a refresh did not cure it: discover again, and
	// forget the refused credential (SEP-2352: the server may have moved).
	c, _ := challengeOf(in.Challenges)
	st.s.Credential = effects.Tokens{}
	return st.startDiscovery(c)
}

func (st *step) insufficientScope(in ProtectedResponse, info RequestInfo, c Challenge) error {
	limit := st.s.Config.Limits.StepUpsPerRequest
	scope := c.Params["scope"]
	if info.StepUps >= limit {
		st.finish(in.Request, &StepUpLimitError{Scope: scope, Limit: limit})
		return nil
	}
	if st.s.State == states.Authenticated && in.Credential < st.s.Generation {
		// Refused for a credential a step-up has since replaced: the new
		// one may carry the scope, so send again before asking anyone.
		limit := st.s.Config.Limits.ResendsPerRequest
		if info.Resends >= limit {
			st.finish(in.Request, &UnauthorizedError{Status: in.Status, Limit: limit})
			return nil
		}
		info.Resends++
		st.s.Requests = st.s.Requests.With(in.Request, info)
		st.send(in.Request)
		return nil
	}
	info.StepUps++
	st.s.Requests = st.s.Requests.With(in.Request, info)
	st.park(in.Request, true)
	if st.s.State.Attempting() {
		return nil
	}
	// MCP 2025-11-25 step-up, SEP-2350: the previously requested and granted
	// scopes together with the challenged ones; a refresh cannot widen scope
	// (A-STEP-06), so a new authorization is made.
	want := unionScopes(st.s.RequestedScope, st.s.Credential.Scope, st.cleanScope(scope))
	if st.s.canRepeatGrant() {
		// A-STEP-02: a client without a user steps up by asking again.
		return st.repeatGrant(want)
	}
	if st.s.Discovered && st.s.HasClient && st.s.Client.Issuer == st.s.Discovery.Authorization.Issuer {
		if err := st.to(states.ScopeInsufficient); err != nil {
			return err
		}
		return st.authorize(want)
	}
	c.Params = withParam(c.Params, "scope", want)
	return st.startDiscovery(c)
}

func withParam(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	out[k] = v
	return out
}

// nonceChallenge answers a resource server's use_dpop_nonce challenge
// (RFC 9449 §9) once per request: the nonce is remembered and the request
// sent again with a fresh proof carrying it.
func (st *step) nonceChallenge(in ProtectedResponse, info RequestInfo) bool {
	c, _ := challengeOf(in.Challenges)
	if info.NonceRetried || in.Nonce == "" || !strings.EqualFold(c.Params["error"], "use_dpop_nonce") ||
		in.Credential != st.s.Generation || st.s.State != states.Authenticated || st.s.Credential.DPoPKeyID == "" {
		return false
	}
	info.NonceRetried = true
	st.s.Requests = st.s.Requests.With(in.Request, info)
	st.send(in.Request)
	return true
}
