package states

import "github.com/looplab/fsm"

// attempts are the states that run an attempt to get a credential.
var attempts = []string{
	string(Refreshing), string(DiscoveringResource), string(DiscoveringIssuer),
	string(LoadingClient), string(Registering), string(AwaitingCallback), string(ExchangingCode),
	string(ExchangingIdentity), string(RequestingToken),
}

func src(ss ...State) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

func ev(t Trigger, from []string, to State) fsm.EventDesc {
	return fsm.EventDesc{Name: string(t), Src: from, Dst: string(to)}
}

// Table is the only list of transitions. Step classifies each input into a
// Trigger and asks Next; what is not here cannot happen.
var Table = fsm.Events{
	ev(StoredCredentialLoaded, src(Loading), Authenticated),
	ev(NothingStored, src(Loading), Unauthenticated),

	// A 401 (or a step-up with nothing to build on) starts discovery; RFC
	// 9728 §5.1, MCP 2025-11-25 Authorization Flow.
	ev(Challenged, src(Unauthenticated, Authenticated), DiscoveringResource),
	ev(CredentialExpiring, src(Authenticated), Refreshing),
	ev(ScopeInsufficient, src(Unauthenticated, Authenticated), AwaitingCallback),

	ev(ResourceMetadataMissed, src(DiscoveringResource), DiscoveringResource),
	ev(ResourceMetadataFound, src(DiscoveringResource), DiscoveringIssuer),
	ev(ResourceMetadataAbsent, src(DiscoveringResource), DiscoveringIssuer),

	ev(IssuerMetadataMissed, src(DiscoveringIssuer), DiscoveringIssuer),
	ev(IssuerValidated, src(DiscoveringIssuer), LoadingClient),
	ev(ClientFound, src(DiscoveringIssuer, LoadingClient), AwaitingCallback),
	ev(RegistrationNeeded, src(LoadingClient), Registering),
	ev(ClientRegistered, src(Registering), AwaitingCallback),

	// Grants without a user (MCP extensions: OAuth client credentials,
	// workload identity, enterprise-managed authorization).
	ev(GrantReady, src(DiscoveringIssuer), RequestingToken),
	ev(GrantRepeated, src(Unauthenticated, Authenticated), RequestingToken),
	ev(IdentityExchangeStarted, src(Unauthenticated, Authenticated, DiscoveringIssuer), ExchangingIdentity),
	ev(IdentityExchanged, src(ExchangingIdentity), RequestingToken),

	ev(CallbackReceived, src(AwaitingCallback), ExchangingCode),
	ev(TokenIssued, src(ExchangingCode, Refreshing, RequestingToken), Authenticated),
	ev(RefreshRejected, src(Refreshing), AwaitingCallback),

	ev(AttemptFailed, attempts, Unauthenticated),
	ev(AttemptFailedCredentialKept, attempts, Authenticated),
	ev(CredentialChanged, append(src(Loading, Unauthenticated, Authenticated), attempts...), Authenticated),
}
