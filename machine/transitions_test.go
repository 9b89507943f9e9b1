package machine_test

// Table tests per transition: for every (source state, trigger) pair of
// states.Table that the machine can produce, a case drives the scripted
// world (world_test.go) to the source state, steps one input, and compares
// the WHOLE effect list (and key snapshot fields) with cmp.Diff. The two
// failure channels (design §3) have their own tests: illegal inputs are
// refused with *machine.UnexpectedInputError, the snapshot unchanged and no
// effects; misbehaving servers end the attempt with a typed error delivered
// as effects.Fail. TestTransitionTableCovered holds the cases to the table.

import (
	"encoding/base64"
	"errors"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
	"github.com/mcpauth/mcpauth/states"
)

// effectOpts compares the errors inside effects.Fail by type and value.
var effectOpts = cmp.Options{cmp.Comparer(func(a, b error) bool {
	return reflect.TypeOf(a) == reflect.TypeOf(b) && reflect.DeepEqual(a, b)
})}

// ---- scenario helpers ----

// onlyHeld takes the one effect the world holds.
func onlyHeld(t *testing.T, w *fakeWorld) effects.Effect {
	t.Helper()
	if len(w.Held) != 1 {
		t.Fatalf("world holds %d effects, want 1: %v", len(w.Held), w.Held)
	}
	e := w.Held[0]
	w.Held = nil
	return e
}

// coldUntil boots w, starts request 1 (which draws the 401 that starts the
// flow) and stops at the first effect hold matches.
func coldUntil(t *testing.T, w *fakeWorld, hold func(effects.Effect) bool) (machine.Snapshot, effects.Effect) {
	t.Helper()
	w.Hold = hold
	s := w.boot(t)
	s = w.run(t, s, w.req(1))
	return s, onlyHeld(t, w)
}

// authenticated boots w and runs request 1 to delivery.
func authenticated(t *testing.T, w *fakeWorld) machine.Snapshot {
	t.Helper()
	s := w.boot(t)
	s = w.run(t, s, w.req(1))
	if s.State != states.Authenticated || len(w.Outcomes[1]) != 1 || !w.Outcomes[1][0].Delivered {
		t.Fatalf("cold start ended in %s with %v; violations %v", s.State, w.Outcomes, w.Violations)
	}
	return s
}

// keptUntil makes an attempt that runs while a good credential is held: a
// cold start, then a restart whose store has the credential and discovery
// but no client registration, then request 2 draws 403 insufficient_scope
// (mcp:write), which re-runs discovery with the credential kept. It stops at
// the first effect hold matches; before is applied before the restart.
func keptUntil(t *testing.T, w *fakeWorld, before func(), hold func(effects.Effect) bool) (machine.Snapshot, effects.Effect) {
	t.Helper()
	authenticated(t, w)
	w.Store.Clients = map[string]effects.Client{}
	if before != nil {
		before()
	}
	s := w.boot(t) // a new machine on the same store and servers
	w.RequiredScope = "mcp:write"
	w.Hold = hold
	s = w.run(t, s, w.req(2))
	if !s.State.Attempting() || !s.Attempt.KeepOnFailure {
		t.Fatalf("keptUntil: state %s KeepOnFailure %v", s.State, s.Attempt.KeepOnFailure)
	}
	return s, onlyHeld(t, w)
}

// stepUpUntil: a cold start, then request 2 draws 403 insufficient_scope
// (mcp:write) and the step-up authorization runs until hold.
func stepUpUntil(t *testing.T, w *fakeWorld, hold func(effects.Effect) bool) (machine.Snapshot, effects.Effect) {
	t.Helper()
	s := authenticated(t, w)
	w.RequiredScope = "mcp:write"
	w.Hold = hold
	s = w.run(t, s, w.req(2))
	return s, onlyHeld(t, w)
}

// refreshUntil: a cold start, the clock at the WakeAt, a Tick starts the
// refresh; request 2 starts while it runs (parked, not refused).
func refreshUntil(t *testing.T, w *fakeWorld) (machine.Snapshot, effects.Effect) {
	t.Helper()
	s := authenticated(t, w)
	w.Now = w.WakeAt
	w.Hold = holdPurpose(effects.PurposeRefresh)
	s = w.run(t, s, machine.Tick{}, w.req(2))
	return s, onlyHeld(t, w)
}

// park starts request id while an attempt runs.
func park(t *testing.T, w *fakeWorld, s machine.Snapshot, id effects.RequestID) machine.Snapshot {
	t.Helper()
	s = w.run(t, s, w.req(id))
	if info, ok := s.Requests.Get(id); !ok || !info.Parked {
		t.Fatalf("request %d is not parked in %s", id, s.State)
	}
	return s
}

// nextResponse steps in and returns the world's (queued) answer to it.
func nextResponse(t *testing.T, w *fakeWorld, s machine.Snapshot, in machine.Input) (machine.Snapshot, machine.Input) {
	t.Helper()
	s, _, err := w.step(s, in)
	if err != nil {
		t.Fatal(err)
	}
	q := w.pendingInputs()
	if len(q) != 1 {
		t.Fatalf("%d answers queued, want 1", len(q))
	}
	return s, q[0]
}

// ccWorld authorizes with client credentials (MCP extension, RFC 6749 §4.4).
func ccWorld() *fakeWorld {
	w := newFakeWorld()
	w.Config.Grants = []machine.Grant{machine.GrantClientCredentials}
	w.Config.Clients = []effects.Client{{Issuer: wIssuer, ClientID: "svc", ClientSecret: "svc-secret"}}
	w.AS[0].Grants = []string{"client_credentials"}
	w.AS[0].addClient("svc", "svc-secret", "client_secret_basic")
	return w
}

// enterpriseWorld authorizes with enterprise-managed authorization
// (SEP-990): ID token -> ID-JAG at the identity provider -> jwt-bearer.
func enterpriseWorld() *fakeWorld {
	w := newFakeWorld()
	w.Config.Grants = []machine.Grant{machine.GrantEnterprise}
	w.Config.IdentityProvider = machine.IdentityProvider{TokenEndpoint: wIdP, ClientID: "idp-client"}
	w.Config.Clients = []effects.Client{{Issuer: wIssuer, ClientID: "mcp-client", ClientSecret: "s3cret"}}
	w.AS[0].Grants = []string{"authorization_code", wJWTBearer}
	w.AS[0].addClient("mcp-client", "s3cret", "client_secret_basic")
	return w
}

func basic(idColonSecret string) string {
	return base64.StdEncoding.EncodeToString([]byte(idColonSecret))
}

// otherTokens is a credential another process stored.
func otherTokens(issuer string) effects.Tokens {
	return effects.Tokens{Resource: wServer, Issuer: issuer, ClientID: "client-9", AccessToken: "at-other",
		TokenType: "Bearer", RefreshToken: "rt-other", Scope: "mcp:read", ExpiresAt: t0.Add(2 * time.Hour)}
}

// metaWith is fakeMeta with grant types replaced.
func metaWith(grants ...string) effects.ServerMetadata {
	m := fakeMeta(wIssuer)
	m.GrantTypesSupported = grants
	return m
}

func discoveryWith(m effects.ServerMetadata) effects.Discovery {
	d := fakeDiscovery()
	d.Authorization = m
	return d
}

func grantPost(seq uint64, f map[string]string, basicCred string) effects.Fetch {
	v := formOf()
	for k, x := range f {
		v.Set(k, x)
	}
	return tokenPost(seq, effects.PurposeGrant, wIssuer+"/token", v, basicCred)
}

// ---- the cases ----

// transitionCase is one (source, trigger) pair exercised from a world.
type transitionCase struct {
	name    string
	from    states.State
	trigger states.Trigger
	to      states.State
	// build drives a world to from and returns the input to step and the
	// whole expected effect list.
	build func(t *testing.T) (w *fakeWorld, s machine.Snapshot, in machine.Input, want []effects.Effect)
	// check looks at key fields of the snapshot after the step.
	check func(t *testing.T, w *fakeWorld, before, after machine.Snapshot)
}

// changedCase: CredentialChanged adopts another writer's newer credential
// in any state but those that would refuse it: the running attempt is
// abandoned and every parked request is sent with the adopted credential.
func changedCase(from states.State, drive func(t *testing.T) (*fakeWorld, machine.Snapshot)) transitionCase {
	return transitionCase{
		name: string(from) + "/credential_changed", from: from, trigger: states.CredentialChanged, to: states.Authenticated,
		build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
			w, s := drive(t)
			tok := otherTokens(wIssuer)
			want := []effects.Effect{
				trans(string(from), "credential_changed", "authenticated"),
				effects.WakeAt{At: tok.ExpiresAt.Add(-time.Minute)},
			}
			var parked []effects.RequestID
			for id, info := range s.Requests.Map() {
				if info.Parked {
					parked = append(parked, id)
				}
			}
			slices.Sort(parked)
			for _, id := range parked {
				want = append(want, effects.SendProtected{Request: id, Header: bearerHeader("at-other"), Credential: s.Generation + 1})
			}
			return w, s, machine.CredentialChanged{Tokens: tok, Version: s.CredentialVersion + 1}, want
		},
		check: func(t *testing.T, _ *fakeWorld, before, after machine.Snapshot) {
			if after.Credential != otherTokens(wIssuer) || after.CredentialVersion != before.CredentialVersion+1 ||
				after.Requests.Parked() != 0 || after.Attempt.Pending != 0 {
				t.Errorf("after credential_changed: %v version %d parked %d pending %d", after, after.CredentialVersion, after.Requests.Parked(), after.Attempt.Pending)
			}
		},
	}
}

func transitionCases() []transitionCase {
	tokens1 := fakeTokens(1, "rt-1", "mcp:read", t0)
	fail := func(id effects.RequestID, err error) effects.Effect { return effects.Fail{Request: id, Err: err} }
	authOpen := func(w *fakeWorld, clientID, scope string) (effects.Effect, effects.Effect) {
		v, st := w.nextSecrets()
		return effects.OpenURL{URL: expectAuthURL(wIssuer+"/authorize", clientID, v, st, wServer, scope)}, effects.AwaitCallback{RedirectURI: wRedirect}
	}
	refreshForm := formOf("client_id", "client-1", "grant_type", "refresh_token", "refresh_token", "rt-1", "resource", wServer)

	cases := []transitionCase{
		// ---- loading ----
		{
			name: "loading/stored_credential_loaded", from: states.Loading, trigger: states.StoredCredentialLoaded, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				authenticated(t, w)
				w.Hold = holdType[effects.LoadStored]()
				s := w.boot(t)
				load := onlyHeld(t, w)
				s = park(t, w, s, 2)
				return w, s, w.answer(load), []effects.Effect{
					trans("loading", "stored_credential_loaded", "authenticated"),
					effects.WakeAt{At: t0.Add(59 * time.Minute)},
					effects.SendProtected{Request: 2, Header: bearerHeader("at-1"), Credential: 1},
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if diff := cmp.Diff(tokens1, after.Credential); diff != "" {
					t.Errorf("credential (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(dcrClient(wIssuer, 1), after.Client); diff != "" || !after.HasClient || !after.Discovered || after.CredentialVersion != 1 {
					t.Errorf("client (-want +got):\n%s; HasClient %v Discovered %v version %d", diff, after.HasClient, after.Discovered, after.CredentialVersion)
				}
			},
		},
		{
			name: "loading/nothing_stored", from: states.Loading, trigger: states.NothingStored, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.Hold = holdType[effects.LoadStored]()
				s := w.boot(t)
				load := onlyHeld(t, w)
				s = park(t, w, s, 1)
				return w, s, w.answer(load), []effects.Effect{
					trans("loading", "nothing_stored", "unauthenticated"),
					effects.SendProtected{Request: 1},
				}
			},
		},
		changedCase(states.Loading, func(t *testing.T) (*fakeWorld, machine.Snapshot) {
			w := newFakeWorld()
			w.Hold = holdType[effects.LoadStored]()
			s := w.boot(t)
			onlyHeld(t, w)
			return w, park(t, w, s, 1)
		}),

		// ---- unauthenticated ----
		{
			name: "unauthenticated/challenged", from: states.Unauthenticated, trigger: states.Challenged, to: states.DiscoveringResource,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, in := nextResponse(t, w, w.boot(t), w.req(1))
				return w, s, in, []effects.Effect{
					trans("unauthenticated", "challenged", "discovering_resource"),
					metadataGet(1, effects.PurposeResourceMetadata, wPRMPath), // A-PRM-02: the challenge's resource_metadata
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if info, _ := after.Requests.Get(1); !info.Parked || !info.Unauthorized || after.Requests.Parked() != 1 {
					t.Errorf("request 1: %+v, parked %d", info, after.Requests.Parked())
				}
			},
		},
		{
			name: "unauthenticated/scope_insufficient (403 to a request sent without a credential)", from: states.Unauthenticated, trigger: states.ScopeInsufficient, to: states.AwaitingCallback,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.CallbackFailure = "the user closed the page"
				s := w.run(t, w.boot(t), w.req(1)) // discovery and the client stay known
				w.CallbackFailure = ""
				s, _ = nextResponse(t, w, s, w.req(2))
				in := machine.ProtectedResponse{Request: 2, Status: 403, Challenges: []string{`Bearer error="insufficient_scope", scope="mcp:write"`}}
				open, await := authOpen(w, "client-1", "mcp:read mcp:write")
				return w, s, in, []effects.Effect{trans("unauthenticated", "scope_insufficient", "awaiting_callback"), open, await}
			},
		},
		{
			name: "unauthenticated/grant_repeated (client credentials, 403 without a credential)", from: states.Unauthenticated, trigger: states.GrantRepeated, to: states.RequestingToken,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := ccWorld()
				s := authenticated(t, w)
				w.AcceptAfter = 1        // at-1 is refused: discovery again...
				w.Status[wPRMPath] = 500 // ...which fails: unauthenticated, grant and discovery known
				s = w.run(t, s, w.req(2))
				s, _ = nextResponse(t, w, s, w.req(3))
				in := machine.ProtectedResponse{Request: 3, Status: 403, Challenges: []string{`Bearer error="insufficient_scope", scope="mcp:write"`}}
				return w, s, in, []effects.Effect{
					trans("unauthenticated", "grant_repeated", "requesting_token"),
					grantPost(5, map[string]string{"grant_type": "client_credentials", "resource": wServer, "scope": "mcp:read mcp:write"}, basic("svc:svc-secret")),
				}
			},
		},
		changedCase(states.Unauthenticated, func(t *testing.T) (*fakeWorld, machine.Snapshot) {
			w := newFakeWorld()
			return w, w.boot(t)
		}),

		// ---- authenticated ----
		{
			name: "authenticated/challenged (401, no refresh token)", from: states.Authenticated, trigger: states.Challenged, to: states.DiscoveringResource,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.AS[0].RefreshTokens = false
				s := authenticated(t, w)
				w.AcceptAfter = 1 // the resource server no longer takes at-1
				s, in := nextResponse(t, w, s, w.req(2))
				return w, s, in, []effects.Effect{
					trans("authenticated", "challenged", "discovering_resource"),
					metadataGet(5, effects.PurposeResourceMetadata, wPRMPath),
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if after.HasCredential() || after.Attempt.KeepOnFailure {
					t.Errorf("the refused credential is kept: %v KeepOnFailure %v", after.Credential, after.Attempt.KeepOnFailure)
				}
			},
		},
		{
			name: "authenticated/credential_expiring (Tick at WakeAt)", from: states.Authenticated, trigger: states.CredentialExpiring, to: states.Refreshing,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s := authenticated(t, w)
				w.Now = w.WakeAt
				return w, s, machine.Tick{}, []effects.Effect{
					trans("authenticated", "credential_expiring", "refreshing"),
					tokenPost(5, effects.PurposeRefresh, wIssuer+"/token", refreshForm, ""),
				}
			},
		},
		{
			name: "authenticated/credential_expiring (401 with a refresh token)", from: states.Authenticated, trigger: states.CredentialExpiring, to: states.Refreshing,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s := authenticated(t, w)
				w.AcceptAfter = 1
				s, in := nextResponse(t, w, s, w.req(2))
				return w, s, in, []effects.Effect{
					trans("authenticated", "credential_expiring", "refreshing"),
					tokenPost(5, effects.PurposeRefresh, wIssuer+"/token", refreshForm, ""),
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if !after.CureTried || after.Requests.Parked() != 1 {
					t.Errorf("CureTried %v parked %d", after.CureTried, after.Requests.Parked())
				}
			},
		},
		{
			name: "authenticated/scope_insufficient (A-STEP-03 union scope)", from: states.Authenticated, trigger: states.ScopeInsufficient, to: states.AwaitingCallback,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s := authenticated(t, w)
				w.RequiredScope = "mcp:write"
				s, in := nextResponse(t, w, s, w.req(2))
				open, await := authOpen(w, "client-1", "mcp:read mcp:write")
				return w, s, in, []effects.Effect{trans("authenticated", "scope_insufficient", "awaiting_callback"), open, await}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if after.RequestedScope != "mcp:read mcp:write" || !after.Attempt.KeepOnFailure || after.Credential.AccessToken != "at-1" {
					t.Errorf("RequestedScope %q KeepOnFailure %v credential %v", after.RequestedScope, after.Attempt.KeepOnFailure, after.Credential)
				}
				if info, _ := after.Requests.Get(2); info.StepUps != 1 {
					t.Errorf("request 2 step-ups %d, want 1 (A-STEP-04)", info.StepUps)
				}
			},
		},
		changedCase(states.Authenticated, func(t *testing.T) (*fakeWorld, machine.Snapshot) {
			w := newFakeWorld()
			return w, authenticated(t, w)
		}),
		{
			name: "authenticated/grant_repeated (client credentials expire)", from: states.Authenticated, trigger: states.GrantRepeated, to: states.RequestingToken,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := ccWorld()
				s := authenticated(t, w)
				w.Now = t0.Add(time.Hour)
				return w, s, machine.Tick{}, []effects.Effect{
					trans("authenticated", "grant_repeated", "requesting_token"),
					grantPost(4, map[string]string{"grant_type": "client_credentials", "resource": wServer, "scope": "mcp:read"}, basic("svc:svc-secret")),
				}
			},
		},

		{
			name: "authenticated/identity_exchange_started (SEP-990 credential expires)", from: states.Authenticated, trigger: states.IdentityExchangeStarted, to: states.ExchangingIdentity,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := enterpriseWorld()
				s := authenticated(t, w)
				w.Now = t0.Add(time.Hour)
				return w, s, machine.Tick{}, []effects.Effect{
					trans("authenticated", "identity_exchange_started", "exchanging_identity"),
					enterpriseExchange(5, "mcp:read"),
				}
			},
		},
		{
			name: "unauthenticated/identity_exchange_started (SEP-990 step-up without a credential)", from: states.Unauthenticated, trigger: states.IdentityExchangeStarted, to: states.ExchangingIdentity,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := enterpriseWorld()
				s := authenticated(t, w)
				w.AcceptAfter = 1
				w.Status[wPRMPath] = 500
				s = w.run(t, s, w.req(2))
				s, _ = nextResponse(t, w, s, w.req(3))
				in := machine.ProtectedResponse{Request: 3, Status: 403, Challenges: []string{`Bearer error="insufficient_scope", scope="mcp:write"`}}
				return w, s, in, []effects.Effect{
					trans("unauthenticated", "identity_exchange_started", "exchanging_identity"),
					enterpriseExchange(6, "mcp:read mcp:write"),
				}
			},
		},

		// ---- discovering_resource ----
		{
			name: "discovering_resource/resource_metadata_missed (A-PRM-03 path then root)", from: states.DiscoveringResource, trigger: states.ResourceMetadataMissed, to: states.DiscoveringResource,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.PRM = prmRootOnly
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeResourceMetadata))
				return w, s, w.answer(held), []effects.Effect{
					trans("discovering_resource", "resource_metadata_missed", "discovering_resource"),
					metadataGet(2, effects.PurposeResourceMetadata, wPRMRoot),
				}
			},
		},
		{
			name: "discovering_resource/resource_metadata_found", from: states.DiscoveringResource, trigger: states.ResourceMetadataFound, to: states.DiscoveringIssuer,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeResourceMetadata))
				return w, s, w.answer(held), []effects.Effect{
					trans("discovering_resource", "resource_metadata_found", "discovering_issuer"),
					metadataGet(2, effects.PurposeServerMetadata, wASMOAuth),
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if after.Attempt.Resource.Resource != wServer || after.Attempt.ResourceMetadataURL != wPRMPath {
					t.Errorf("attempt resource %+v from %s", after.Attempt.Resource, after.Attempt.ResourceMetadataURL)
				}
			},
		},
		{
			name: "discovering_resource/resource_metadata_absent (A-LEG-01/02)", from: states.DiscoveringResource, trigger: states.ResourceMetadataAbsent, to: states.DiscoveringIssuer,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newLegacyFakeWorld()
				s, _ := coldUntil(t, w, holdPurpose(effects.PurposeResourceMetadata))
				w.Held = nil
				w.Hold = nil
				// Answer the path-inserted candidate by hand (404), then hold the root one.
				s, _, err := w.step(s, fakeNotFound(1))
				if err != nil {
					t.Fatal(err)
				}
				w.pendingInputs()
				return w, s, fakeNotFound(2), []effects.Effect{
					trans("discovering_resource", "resource_metadata_absent", "discovering_issuer"),
					metadataGet(3, effects.PurposeServerMetadata, wOrigin+"/.well-known/oauth-authorization-server"),
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if !after.Attempt.Legacy || !slices.Equal(after.Attempt.Servers, []string{wOrigin}) {
					t.Errorf("legacy %v servers %v", after.Attempt.Legacy, after.Attempt.Servers)
				}
			},
		},
		{
			name: "discovering_resource/attempt_failed (500 stops discovery)", from: states.DiscoveringResource, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeResourceMetadata))
				w.Status[wPRMPath] = 500
				return w, s, w.answer(held), []effects.Effect{
					trans("discovering_resource", "attempt_failed", "unauthenticated"),
					fail(1, &machine.HTTPStatusError{Purpose: "resource_metadata", URL: wPRMPath, Status: 500}),
				}
			},
		},
		{
			name: "discovering_resource/attempt_failed_credential_kept", from: states.DiscoveringResource, trigger: states.AttemptFailedCredentialKept, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := keptUntil(t, w, nil, holdPurpose(effects.PurposeResourceMetadata))
				s = park(t, w, s, 3)
				w.Status[wPRMPath] = 500
				return w, s, w.answer(held), []effects.Effect{
					trans("discovering_resource", "attempt_failed_credential_kept", "authenticated"),
					fail(2, &machine.HTTPStatusError{Purpose: "resource_metadata", URL: wPRMPath, Status: 500}),
					effects.SendProtected{Request: 3, Header: bearerHeader("at-1"), Credential: 1},
				}
			},
		},
		changedCase(states.DiscoveringResource, func(t *testing.T) (*fakeWorld, machine.Snapshot) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeResourceMetadata))
			return w, s
		}),

		// ---- discovering_issuer ----
		{
			name: "discovering_issuer/issuer_metadata_missed (A-ASM-04 RFC 8414 then OIDC)", from: states.DiscoveringIssuer, trigger: states.IssuerMetadataMissed, to: states.DiscoveringIssuer,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.AS[0].Meta = metaOIDC
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeServerMetadata))
				return w, s, w.answer(held), []effects.Effect{
					trans("discovering_issuer", "issuer_metadata_missed", "discovering_issuer"),
					metadataGet(3, effects.PurposeServerMetadata, wASMOIDC),
				}
			},
		},
		{
			name: "discovering_issuer/issuer_validated", from: states.DiscoveringIssuer, trigger: states.IssuerValidated, to: states.LoadingClient,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeServerMetadata))
				return w, s, w.answer(held), []effects.Effect{
					effects.SaveDiscovery{Server: wServer, Discovery: fakeDiscovery()},
					trans("discovering_issuer", "issuer_validated", "loading_client"),
					effects.LoadClient{Issuer: wIssuer},
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if diff := cmp.Diff(fakeDiscovery(), after.Discovery); diff != "" || !after.Discovered {
					t.Errorf("discovery (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "discovering_issuer/client_found (pre-registered, A-REG-01)", from: states.DiscoveringIssuer, trigger: states.ClientFound, to: states.AwaitingCallback,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.Config.Clients = []effects.Client{{ClientID: "pre-1"}}
				w.AS[0].addClient("pre-1", "", "none")
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeServerMetadata))
				in := w.answer(held)
				open, await := authOpen(w, "pre-1", "mcp:read")
				return w, s, in, []effects.Effect{
					effects.SaveDiscovery{Server: wServer, Discovery: fakeDiscovery()},
					// kept for later runs without the configuration (a restart that must refresh)
					effects.SaveClient{Client: effects.Client{Issuer: wIssuer, ClientID: "pre-1", AuthMethod: "none", RedirectURIs: []string{wRedirect}, Source: effects.ClientPreRegistered}},
					trans("discovering_issuer", "client_found", "awaiting_callback"),
					open, await,
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				want := effects.Client{Issuer: wIssuer, ClientID: "pre-1", AuthMethod: "none", RedirectURIs: []string{wRedirect}, Source: effects.ClientPreRegistered}
				if diff := cmp.Diff(want, after.Client); diff != "" {
					t.Errorf("client bound to the issuer (A-BIND-01) (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "discovering_issuer/grant_ready (client credentials)", from: states.DiscoveringIssuer, trigger: states.GrantReady, to: states.RequestingToken,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := ccWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeServerMetadata))
				return w, s, w.answer(held), []effects.Effect{
					effects.SaveDiscovery{Server: wServer, Discovery: discoveryWith(metaWith("client_credentials"))},
					// kept so that a restarted client can make the grant again
					effects.SaveClient{Client: effects.Client{Issuer: wIssuer, ClientID: "svc", ClientSecret: "svc-secret", AuthMethod: "client_secret_basic", RedirectURIs: []string{wRedirect}, Source: effects.ClientPreRegistered}},
					trans("discovering_issuer", "grant_ready", "requesting_token"),
					grantPost(3, map[string]string{"grant_type": "client_credentials", "resource": wServer, "scope": "mcp:read"}, basic("svc:svc-secret")),
				}
			},
		},
		{
			name: "discovering_issuer/identity_exchange_started (SEP-990)", from: states.DiscoveringIssuer, trigger: states.IdentityExchangeStarted, to: states.ExchangingIdentity,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := enterpriseWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeServerMetadata))
				x := tokenPost(3, effects.PurposeIdentityExchange, wIdP, formOf(
					"audience", wIssuer, "client_id", "idp-client",
					"grant_type", "urn:ietf:params:oauth:grant-type:token-exchange",
					"requested_token_type", wIDJAG, "resource", wServer, "scope", "mcp:read",
					"subject_token_type", "urn:ietf:params:oauth:token-type:id_token"), "")
				x.Supply = []effects.Supplied{{Source: effects.SourceIDToken, Form: "subject_token"}}
				return w, s, w.answer(held), []effects.Effect{
					effects.SaveDiscovery{Server: wServer, Discovery: discoveryWith(metaWith("authorization_code", wJWTBearer))},
					effects.SaveClient{Client: effects.Client{Issuer: wIssuer, ClientID: "mcp-client", ClientSecret: "s3cret", AuthMethod: "client_secret_basic", RedirectURIs: []string{wRedirect}, Source: effects.ClientPreRegistered}},
					trans("discovering_issuer", "identity_exchange_started", "exchanging_identity"),
					x,
				}
			},
		},
		{
			name: "discovering_issuer/attempt_failed (500 stops discovery)", from: states.DiscoveringIssuer, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeServerMetadata))
				w.Status[wASMOAuth] = 500
				return w, s, w.answer(held), []effects.Effect{
					trans("discovering_issuer", "attempt_failed", "unauthenticated"),
					fail(1, &machine.HTTPStatusError{Purpose: "server_metadata", URL: wASMOAuth, Status: 500}),
				}
			},
		},
		{
			name: "discovering_issuer/attempt_failed_credential_kept", from: states.DiscoveringIssuer, trigger: states.AttemptFailedCredentialKept, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := keptUntil(t, w, nil, holdPurpose(effects.PurposeServerMetadata))
				w.Status[wASMOAuth] = 429
				return w, s, w.answer(held), []effects.Effect{
					trans("discovering_issuer", "attempt_failed_credential_kept", "authenticated"),
					fail(2, &machine.HTTPStatusError{Purpose: "server_metadata", URL: wASMOAuth, Status: 429}),
				}
			},
		},
		changedCase(states.DiscoveringIssuer, func(t *testing.T) (*fakeWorld, machine.Snapshot) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeServerMetadata))
			return w, s
		}),

		// ---- loading_client ----
		{
			name: "loading_client/client_found (stored registration)", from: states.LoadingClient, trigger: states.ClientFound, to: states.AwaitingCallback,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.Store.Clients[wIssuer] = effects.Client{Issuer: wIssuer, ClientID: "stored-1", AuthMethod: "none", RedirectURIs: []string{wRedirect}, Source: effects.ClientDynamic}
				w.AS[0].addClient("stored-1", "", "none")
				s, held := coldUntil(t, w, holdType[effects.LoadClient]())
				in := w.answer(held)
				open, await := authOpen(w, "stored-1", "mcp:read")
				return w, s, in, []effects.Effect{trans("loading_client", "client_found", "awaiting_callback"), open, await}
			},
		},
		{
			name: "loading_client/registration_needed", from: states.LoadingClient, trigger: states.RegistrationNeeded, to: states.Registering,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := coldUntil(t, w, holdType[effects.LoadClient]())
				return w, s, w.answer(held), []effects.Effect{
					trans("loading_client", "registration_needed", "registering"),
					registrationPost(3, wIssuer+"/register", wDCRBody),
				}
			},
		},
		{
			name: "loading_client/attempt_failed (no client, no DCR)", from: states.LoadingClient, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.AS[0].DCR = false
				s, held := coldUntil(t, w, holdType[effects.LoadClient]())
				return w, s, w.answer(held), []effects.Effect{
					trans("loading_client", "attempt_failed", "unauthenticated"),
					fail(1, &machine.NoClientError{Issuer: wIssuer}),
				}
			},
		},
		{
			name: "loading_client/attempt_failed_credential_kept", from: states.LoadingClient, trigger: states.AttemptFailedCredentialKept, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := keptUntil(t, w, func() { w.AS[0].DCR = false }, holdType[effects.LoadClient]())
				return w, s, w.answer(held), []effects.Effect{
					trans("loading_client", "attempt_failed_credential_kept", "authenticated"),
					fail(2, &machine.NoClientError{Issuer: wIssuer}),
				}
			},
		},
		changedCase(states.LoadingClient, func(t *testing.T) (*fakeWorld, machine.Snapshot) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdType[effects.LoadClient]())
			return w, s
		}),

		// ---- registering ----
		{
			name: "registering/client_registered", from: states.Registering, trigger: states.ClientRegistered, to: states.AwaitingCallback,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeRegistration))
				in := w.answer(held)
				open, await := authOpen(w, "client-1", "mcp:read")
				return w, s, in, []effects.Effect{
					trans("registering", "client_registered", "awaiting_callback"),
					effects.SaveClient{Client: dcrClient(wIssuer, 1)},
					open, await,
				}
			},
		},
		{
			name: "registering/attempt_failed (registration refused)", from: states.Registering, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeRegistration))
				return w, s, fakeOAuthError(held.(effects.Fetch).Seq, 400, "invalid_redirect_uri"), []effects.Effect{
					trans("registering", "attempt_failed", "unauthenticated"),
					fail(1, &machine.RegistrationError{Issuer: wIssuer, Err: &machine.OAuthError{Status: 400, Code: "invalid_redirect_uri"}}),
				}
			},
		},
		{
			name: "registering/attempt_failed_credential_kept", from: states.Registering, trigger: states.AttemptFailedCredentialKept, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := keptUntil(t, w, nil, holdPurpose(effects.PurposeRegistration))
				return w, s, fakeOAuthError(held.(effects.Fetch).Seq, 503, "temporarily_unavailable"), []effects.Effect{
					trans("registering", "attempt_failed_credential_kept", "authenticated"),
					fail(2, &machine.RegistrationError{Issuer: wIssuer, Err: &machine.OAuthError{Status: 503, Code: "temporarily_unavailable"}}),
				}
			},
		},
		changedCase(states.Registering, func(t *testing.T) (*fakeWorld, machine.Snapshot) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeRegistration))
			return w, s
		}),

		// ---- awaiting_callback ----
		{
			name: "awaiting_callback/callback_received", from: states.AwaitingCallback, trigger: states.CallbackReceived, to: states.ExchangingCode,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := coldUntil(t, w, holdType[effects.AwaitCallback]())
				return w, s, w.answer(held), []effects.Effect{
					trans("awaiting_callback", "callback_received", "exchanging_code"),
					tokenPost(4, effects.PurposeToken, wIssuer+"/token", formOf(
						"client_id", "client-1", "code", "code-1", "code_verifier", s.Attempt.Verifier,
						"grant_type", "authorization_code", "redirect_uri", wRedirect, "resource", wServer), ""),
				}
			},
			check: func(t *testing.T, w *fakeWorld, before, _ machine.Snapshot) {
				// A-PKCE-04: the challenge sent was S256 of this verifier.
				if got := w.Authorizations[0].Query.Get("code_challenge"); got != pkceS256(before.Attempt.Verifier) || len(before.Attempt.Verifier) != 43 {
					t.Errorf("challenge %q is not S256(%d-char verifier)", got, len(before.Attempt.Verifier))
				}
			},
		},
		{
			name: "awaiting_callback/attempt_failed (state mismatch, A-AUTHZ-02)", from: states.AwaitingCallback, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := coldUntil(t, w, holdType[effects.AwaitCallback]())
				w.TamperCallback = func(q url.Values) { q.Set("state", "forged") }
				return w, s, w.answer(held), []effects.Effect{
					trans("awaiting_callback", "attempt_failed", "unauthenticated"),
					fail(1, &machine.StateMismatchError{}),
				}
			},
		},
		{
			name: "awaiting_callback/attempt_failed (iss mismatch, A-AUTHZ-05)", from: states.AwaitingCallback, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.AS[0].Iss, w.AS[0].IssValue = true, "https://evil.example.com"
				s, held := coldUntil(t, w, holdType[effects.AwaitCallback]())
				return w, s, w.answer(held), []effects.Effect{
					trans("awaiting_callback", "attempt_failed", "unauthenticated"),
					fail(1, &machine.IssuerResponseError{Want: wIssuer, Got: "https://evil.example.com"}),
				}
			},
		},
		{
			name: "awaiting_callback/attempt_failed (iss advertised but missing, A-AUTHZ-04)", from: states.AwaitingCallback, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.AS[0].OmitIss = true
				s, held := coldUntil(t, w, holdType[effects.AwaitCallback]())
				return w, s, w.answer(held), []effects.Effect{
					trans("awaiting_callback", "attempt_failed", "unauthenticated"),
					fail(1, &machine.IssuerResponseError{Want: wIssuer, Missing: true}),
				}
			},
		},
		{
			name: "awaiting_callback/attempt_failed (the user denies, with a valid iss)", from: states.AwaitingCallback, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.AS[0].Deny, w.AS[0].Iss = "access_denied", true
				s, held := coldUntil(t, w, holdType[effects.AwaitCallback]())
				return w, s, w.answer(held), []effects.Effect{
					trans("awaiting_callback", "attempt_failed", "unauthenticated"),
					fail(1, &machine.AuthorizationDeniedError{Code: "access_denied"}),
				}
			},
		},
		{
			name: "awaiting_callback/attempt_failed (error response with a forged iss is not acted on, A-AUTHZ-08)", from: states.AwaitingCallback, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.AS[0].Deny, w.AS[0].Iss, w.AS[0].IssValue = "access_denied", true, "https://evil.example.com"
				s, held := coldUntil(t, w, holdType[effects.AwaitCallback]())
				return w, s, w.answer(held), []effects.Effect{
					trans("awaiting_callback", "attempt_failed", "unauthenticated"),
					fail(1, &machine.IssuerResponseError{Want: wIssuer, Got: "https://evil.example.com"}),
				}
			},
		},
		{
			name: "awaiting_callback/attempt_failed_credential_kept (step-up abandoned)", from: states.AwaitingCallback, trigger: states.AttemptFailedCredentialKept, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, _ := stepUpUntil(t, w, holdType[effects.AwaitCallback]())
				s = park(t, w, s, 3)
				return w, s, machine.CallbackFailed{Reason: "the user closed the page"}, []effects.Effect{
					trans("awaiting_callback", "attempt_failed_credential_kept", "authenticated"),
					fail(2, &machine.CallbackError{Reason: "the user closed the page"}),
					effects.SendProtected{Request: 3, Header: bearerHeader("at-1"), Credential: 1},
				}
			},
		},
		changedCase(states.AwaitingCallback, func(t *testing.T) (*fakeWorld, machine.Snapshot) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdType[effects.AwaitCallback]())
			return w, s
		}),

		// ---- exchanging_code ----
		{
			name: "exchanging_code/token_issued", from: states.ExchangingCode, trigger: states.TokenIssued, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeToken))
				return w, s, w.answer(held), []effects.Effect{
					effects.SaveTokens{Server: wServer, Tokens: tokens1},
					trans("exchanging_code", "token_issued", "authenticated"),
					effects.WakeAt{At: t0.Add(59 * time.Minute)},
					effects.SendProtected{Request: 1, Header: bearerHeader("at-1"), Credential: 1},
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if after.Generation != 1 || after.CredentialVersion != 1 || after.Requests.Parked() != 0 || after.Attempt.Verifier != "" {
					t.Errorf("generation %d version %d parked %d attempt %+v", after.Generation, after.CredentialVersion, after.Requests.Parked(), after.Attempt)
				}
			},
		},
		{
			name: "exchanging_code/attempt_failed (invalid_grant)", from: states.ExchangingCode, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeToken))
				return w, s, fakeOAuthError(held.(effects.Fetch).Seq, 400, "invalid_grant"), []effects.Effect{
					trans("exchanging_code", "attempt_failed", "unauthenticated"),
					fail(1, &machine.TokenError{Grant: "authorization_code", Issuer: wIssuer, Err: &machine.OAuthError{Status: 400, Code: "invalid_grant"}}),
				}
			},
		},
		{
			name: "exchanging_code/attempt_failed (invalid_client forgets the registration)", from: states.ExchangingCode, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeToken))
				return w, s, fakeOAuthError(held.(effects.Fetch).Seq, 401, "invalid_client"), []effects.Effect{
					effects.ForgetClient{Issuer: wIssuer},
					trans("exchanging_code", "attempt_failed", "unauthenticated"),
					fail(1, &machine.TokenError{Grant: "authorization_code", Issuer: wIssuer, Err: &machine.OAuthError{Status: 401, Code: "invalid_client"}}),
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if after.HasClient {
					t.Errorf("the refused registration is kept: %v", after.Client)
				}
			},
		},
		{
			name: "exchanging_code/attempt_failed_credential_kept (step-up token refused)", from: states.ExchangingCode, trigger: states.AttemptFailedCredentialKept, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := stepUpUntil(t, w, holdPurpose(effects.PurposeToken))
				return w, s, fakeOAuthError(held.(effects.Fetch).Seq, 500, "server_error"), []effects.Effect{
					trans("exchanging_code", "attempt_failed_credential_kept", "authenticated"),
					fail(2, &machine.TokenError{Grant: "authorization_code", Issuer: wIssuer, Err: &machine.OAuthError{Status: 500, Code: "server_error"}}),
				}
			},
		},
		changedCase(states.ExchangingCode, func(t *testing.T) (*fakeWorld, machine.Snapshot) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeToken))
			return w, s
		}),

		// ---- refreshing ----
		{
			name: "refreshing/token_issued (refresh token kept when not rotated)", from: states.Refreshing, trigger: states.TokenIssued, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				s, held := refreshUntil(t, w)
				in := w.answer(held)
				tok := fakeTokens(2, "rt-1", "mcp:read", w.Now)
				return w, s, in, []effects.Effect{
					effects.SaveTokens{Server: wServer, Tokens: tok, IfVersion: 1},
					trans("refreshing", "token_issued", "authenticated"),
					effects.WakeAt{At: w.Now.Add(59 * time.Minute)},
					effects.SendProtected{Request: 2, Header: bearerHeader("at-2"), Credential: 2},
				}
			},
		},
		{
			name: "refreshing/token_issued (rotated refresh token saved before the send)", from: states.Refreshing, trigger: states.TokenIssued, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.AS[0].Rotate = true
				s, held := refreshUntil(t, w)
				in := w.answer(held)
				return w, s, in, []effects.Effect{
					effects.SaveTokens{Server: wServer, Tokens: fakeTokens(2, "rt-2", "mcp:read", w.Now), IfVersion: 1},
					trans("refreshing", "token_issued", "authenticated"),
					effects.WakeAt{At: w.Now.Add(59 * time.Minute)},
					effects.SendProtected{Request: 2, Header: bearerHeader("at-2"), Credential: 2},
				}
			},
		},
		{
			name: "refreshing/refresh_rejected (invalid_grant forgets and re-authorizes)", from: states.Refreshing, trigger: states.RefreshRejected, to: states.AwaitingCallback,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.AS[0].RefreshStatus = 400
				s, held := refreshUntil(t, w)
				in := w.answer(held)
				open, await := authOpen(w, "client-1", "mcp:read")
				return w, s, in, []effects.Effect{
					effects.ForgetTokens{Server: wServer, IfVersion: 1},
					trans("refreshing", "refresh_rejected", "awaiting_callback"),
					open, await,
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if after.HasCredential() || after.CredentialVersion != 0 || after.Attempt.KeepOnFailure {
					t.Errorf("credential %v version %d KeepOnFailure %v", after.Credential, after.CredentialVersion, after.Attempt.KeepOnFailure)
				}
			},
		},
		{
			name: "refreshing/attempt_failed_credential_kept (500 keeps the refresh token)", from: states.Refreshing, trigger: states.AttemptFailedCredentialKept, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.AS[0].RefreshStatus = 500
				s, held := refreshUntil(t, w)
				return w, s, w.answer(held), []effects.Effect{
					trans("refreshing", "attempt_failed_credential_kept", "authenticated"),
					effects.SendProtected{Request: 2, Header: bearerHeader("at-1"), Credential: 1},
				}
			},
			check: func(t *testing.T, w *fakeWorld, _, after machine.Snapshot) {
				if diff := cmp.Diff(tokens1, after.Credential); diff != "" {
					t.Errorf("credential after a transient refresh failure (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tokens1, w.Store.Tokens[wServer]); diff != "" {
					t.Errorf("stored credential (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "refreshing/attempt_failed (a client without a user has nobody to ask)", from: states.Refreshing, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := ccWorld()
				w.AS[0].GrantRefresh, w.AS[0].RefreshStatus = true, 400
				w.AS[0].Grants = []string{"client_credentials", "refresh_token"}
				s, held := refreshUntil(t, w)
				f := held.(effects.Fetch)
				if diff := cmp.Diff(tokenPost(4, effects.PurposeRefresh, wIssuer+"/token",
					formOf("grant_type", "refresh_token", "refresh_token", "rt-1", "resource", wServer), basic("svc:svc-secret")), f); diff != "" {
					t.Fatalf("refresh request (-want +got):\n%s", diff)
				}
				return w, s, w.answer(held), []effects.Effect{
					effects.ForgetTokens{Server: wServer, IfVersion: 1},
					trans("refreshing", "attempt_failed", "unauthenticated"),
					fail(2, &machine.TokenError{Grant: "refresh_token", Issuer: wIssuer, Err: &machine.OAuthError{Status: 400, Code: "invalid_grant"}}),
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if after.HasCredential() || after.Grant != machine.GrantClientCredentials {
					t.Errorf("credential %v grant %q", after.Credential, after.Grant)
				}
			},
		},
		changedCase(states.Refreshing, func(t *testing.T) (*fakeWorld, machine.Snapshot) {
			w := newFakeWorld()
			s, _ := refreshUntil(t, w)
			return w, s
		}),

		// ---- exchanging_identity ----
		{
			name: "exchanging_identity/identity_exchanged", from: states.ExchangingIdentity, trigger: states.IdentityExchanged, to: states.RequestingToken,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := enterpriseWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeIdentityExchange))
				return w, s, w.answer(held), []effects.Effect{
					trans("exchanging_identity", "identity_exchanged", "requesting_token"),
					grantPost(4, map[string]string{"assertion": "idjag-1", "grant_type": wJWTBearer, "resource": wServer, "scope": "mcp:read"}, basic("mcp-client:s3cret")),
				}
			},
		},
		{
			name: "exchanging_identity/attempt_failed", from: states.ExchangingIdentity, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := enterpriseWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeIdentityExchange))
				w.IdPStatus = 500
				return w, s, w.answer(held), []effects.Effect{
					trans("exchanging_identity", "attempt_failed", "unauthenticated"),
					fail(1, &machine.TokenError{Grant: "token-exchange", Issuer: wIdP, Err: &machine.OAuthError{Status: 500, Code: "server_error"}}),
				}
			},
		},
		{
			name: "exchanging_identity/attempt_failed_credential_kept", from: states.ExchangingIdentity, trigger: states.AttemptFailedCredentialKept, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := enterpriseWorld()
				s, held := keptUntil(t, w, nil, holdPurpose(effects.PurposeIdentityExchange))
				w.IdPStatus = 503
				return w, s, w.answer(held), []effects.Effect{
					trans("exchanging_identity", "attempt_failed_credential_kept", "authenticated"),
					fail(2, &machine.TokenError{Grant: "token-exchange", Issuer: wIdP, Err: &machine.OAuthError{Status: 503, Code: "server_error"}}),
				}
			},
		},
		changedCase(states.ExchangingIdentity, func(t *testing.T) (*fakeWorld, machine.Snapshot) {
			w := enterpriseWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeIdentityExchange))
			return w, s
		}),

		// ---- requesting_token ----
		{
			name: "requesting_token/token_issued", from: states.RequestingToken, trigger: states.TokenIssued, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := ccWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeGrant))
				tok := effects.Tokens{Resource: wServer, Issuer: wIssuer, ClientID: "svc", AccessToken: "at-1", TokenType: "Bearer", Scope: "mcp:read", ExpiresAt: t0.Add(time.Hour),
					Grant: string(machine.GrantClientCredentials)}
				return w, s, w.answer(held), []effects.Effect{
					effects.SaveTokens{Server: wServer, Tokens: tok},
					trans("requesting_token", "token_issued", "authenticated"),
					effects.WakeAt{At: t0.Add(time.Hour - time.Minute)}, // renewed ahead of expiry, no refresh token needed
					effects.SendProtected{Request: 1, Header: bearerHeader("at-1"), Credential: 1},
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if after.Grant != machine.GrantClientCredentials {
					t.Errorf("grant %q", after.Grant)
				}
			},
		},
		{
			name: "requesting_token/attempt_failed", from: states.RequestingToken, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := ccWorld()
				s, held := coldUntil(t, w, holdPurpose(effects.PurposeGrant))
				return w, s, fakeOAuthError(held.(effects.Fetch).Seq, 401, "invalid_client"), []effects.Effect{
					trans("requesting_token", "attempt_failed", "unauthenticated"),
					fail(1, &machine.TokenError{Grant: "client_credentials", Issuer: wIssuer, Err: &machine.OAuthError{Status: 401, Code: "invalid_client"}}),
				}
			},
		},
		{
			name: "requesting_token/attempt_failed_credential_kept (repeated grant refused)", from: states.RequestingToken, trigger: states.AttemptFailedCredentialKept, to: states.Authenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := ccWorld()
				s := authenticated(t, w)
				w.Now = t0.Add(59 * time.Minute)
				w.Hold = holdPurpose(effects.PurposeGrant)
				s = w.run(t, s, machine.Tick{}, w.req(2))
				held := onlyHeld(t, w)
				return w, s, fakeOAuthError(held.(effects.Fetch).Seq, 503, "temporarily_unavailable"), []effects.Effect{
					trans("requesting_token", "attempt_failed_credential_kept", "authenticated"),
					effects.SendProtected{Request: 2, Header: bearerHeader("at-1"), Credential: 1},
				}
			},
		},
		changedCase(states.RequestingToken, func(t *testing.T) (*fakeWorld, machine.Snapshot) {
			w := ccWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeGrant))
			return w, s
		}),

		// ---- misbehaving servers: typed errors delivered as Fail ----
		{
			name: "misbehaving/issuer mismatch on every candidate (A-ASM-06)", from: states.DiscoveringIssuer, trigger: states.AttemptFailed, to: states.Unauthenticated,
			build: func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input, []effects.Effect) {
				w := newFakeWorld()
				w.AS[0].MetadataIssuer = "https://evil.example.com"
				s, _ := coldUntil(t, w, holdPurpose(effects.PurposeServerMetadata))
				// the RFC 8414 document names another issuer: not used, next candidate
				s, out, err := w.step(s, fakeJSON(2, 200, w.AS[0].document()))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff([]effects.Effect{
					trans("discovering_issuer", "issuer_metadata_missed", "discovering_issuer"),
					metadataGet(3, effects.PurposeServerMetadata, wASMOIDC),
				}, out, effectOpts); diff != "" {
					t.Fatalf("after the mismatching document (-want +got):\n%s", diff)
				}
				w.Held = nil
				return w, s, fakeNotFound(3), []effects.Effect{
					trans("discovering_issuer", "issuer_metadata_missed", "discovering_issuer"),
					trans("discovering_issuer", "attempt_failed", "unauthenticated"),
					fail(1, &machine.DiscoveryError{Server: wServer, Tried: []string{
						(&machine.IssuerMismatchError{Want: wIssuer, Got: "https://evil.example.com"}).Error(),
						wASMOIDC + ": http 404",
					}}),
				}
			},
			check: func(t *testing.T, _ *fakeWorld, _, after machine.Snapshot) {
				if after.Discovered {
					t.Errorf("a mismatching document was used: %+v", after.Discovery)
				}
			},
		},
	}
	return cases
}

// unreachable are the table pairs the machine cannot produce, and why.
var unreachable = map[[2]string]string{}

// runTransitionCase builds and steps one case, returning the transitions
// it produced.
func runTransitionCase(t *testing.T, c transitionCase) []effects.Transition {
	t.Helper()
	w, s, in, want := c.build(t)
	if s.State != c.from {
		t.Fatalf("built state %s, want %s", s.State, c.from)
	}
	got, out, err := machine.Step(s, in, w.env())
	if err != nil {
		t.Fatalf("Step(%T) refused: %v", in, err)
	}
	if diff := cmp.Diff(want, out, effectOpts); diff != "" {
		t.Errorf("effects (-want +got):\n%s", diff)
	}
	if got.State != c.to {
		t.Errorf("state %s, want %s", got.State, c.to)
	}
	var trs []effects.Transition
	seen := false
	for _, e := range out {
		if tr, ok := e.(effects.Transition); ok {
			trs = append(trs, tr)
			if tr == trans(string(c.from), string(c.trigger), string(c.to)) {
				seen = true
			}
		}
	}
	if !seen {
		t.Errorf("no transition %s -%s-> %s among %v", c.from, c.trigger, c.to, trs)
	}
	if c.check != nil {
		c.check(t, w, s, got)
	}
	return trs
}

func TestTransitions(t *testing.T) {
	for _, c := range transitionCases() {
		t.Run(c.name, func(t *testing.T) { runTransitionCase(t, c) })
	}
}

// TestTransitionTableCovered: every (src, trigger) pair of states.Table is
// produced by at least one case, or listed in unreachable with a reason;
// every transition a case produced is a table entry.
func TestTransitionTableCovered(t *testing.T) {
	declared := map[[2]string]string{}
	for _, e := range states.Table {
		for _, src := range e.Src {
			declared[[2]string{src, e.Name}] = e.Dst
		}
	}
	covered := map[[2]string]bool{}
	for _, c := range transitionCases() {
		t.Run(c.name, func(t *testing.T) {
			for _, tr := range runTransitionCase(t, c) {
				k := [2]string{tr.From, tr.Trigger}
				if dst, ok := declared[k]; !ok || dst != tr.To {
					t.Errorf("transition %s is not in states.Table", tr)
				}
				covered[k] = true
			}
		})
	}
	var missing []string
	for k := range declared {
		if !covered[k] {
			if _, ok := unreachable[k]; !ok {
				missing = append(missing, k[0]+" -"+k[1]+"->")
			}
		} else if why, ok := unreachable[k]; ok {
			t.Errorf("%v is listed unreachable (%s) but a case produced it", k, why)
		}
	}
	for k := range unreachable {
		if _, ok := declared[k]; !ok {
			t.Errorf("unreachable lists %v, which is not in states.Table", k)
		}
	}
	sort.Strings(missing)
	if diff := cmp.Diff([]string(nil), missing); diff != "" {
		t.Errorf("table pairs no case covers (-want +got):\n%s", diff)
	}
}

// TestIllegalInputsAreRefused: failure channel (a). An input that is
// illegal in the current state returns *machine.UnexpectedInputError, the
// snapshot unchanged and no effects (design §3).
func TestIllegalInputsAreRefused(t *testing.T) {
	cases := []struct {
		name  string
		build func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input)
	}{
		{"stale fetch Seq in discovering_issuer", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeServerMetadata))
			return w, s, fakeNotFound(1) // the PRM request, already answered
		}},
		{"fetch Seq from the future", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeResourceMetadata))
			return w, s, fakeNotFound(7)
		}},
		{"fetch failure for a request nobody sent", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeResourceMetadata))
			return w, s, machine.FetchFailed{Seq: 0, Reason: "timeout"}
		}},
		{"fetch answer while authenticated", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			return w, authenticated(t, w), fakeNotFound(4)
		}},
		{"callback nobody awaits (authenticated)", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			return w, authenticated(t, w), machine.CallbackReceived{Query: "code=code-1&state=x"}
		}},
		{"callback nobody awaits (discovering_resource)", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeResourceMetadata))
			return w, s, machine.CallbackReceived{Query: "code=code-1&state=x"}
		}},
		{"callback failure nobody awaits", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeToken))
			return w, s, machine.CallbackFailed{Reason: "late"}
		}},
		{"response for an unknown request id", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			return w, authenticated(t, w), machine.ProtectedResponse{Request: 99, Credential: 1, Status: 200}
		}},
		{"response for a parked request", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeResourceMetadata))
			return w, s, machine.ProtectedResponse{Request: 1, Status: 200}
		}},
		{"transport failure for an unknown request", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			return w, authenticated(t, w), machine.ProtectedFailed{Request: 42}
		}},
		{"request id already in flight", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeResourceMetadata))
			return w, s, w.req(1)
		}},
		{"store loaded twice", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			return w, w.boot(t), machine.StoredLoaded{}
		}},
		{"client loaded when none is being loaded", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			s, _ := coldUntil(t, w, holdPurpose(effects.PurposeRegistration))
			return w, s, machine.ClientLoaded{}
		}},
		{"credential not newer", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			s := authenticated(t, w)
			return w, s, machine.CredentialChanged{Tokens: otherTokens(wIssuer), Version: s.CredentialVersion - 1}
		}},
		{"credential from another authorization server", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			s := authenticated(t, w)
			return w, s, machine.CredentialChanged{Tokens: otherTokens(wIssuer2), Version: s.CredentialVersion + 1}
		}},
		{"late token answer after the attempt was abandoned", func(t *testing.T) (*fakeWorld, machine.Snapshot, machine.Input) {
			w := newFakeWorld()
			s, held := coldUntil(t, w, holdPurpose(effects.PurposeToken))
			s, _, err := w.step(s, machine.CredentialChanged{Tokens: otherTokens(wIssuer), Version: 1})
			if err != nil {
				t.Fatal(err)
			}
			w.pendingInputs()
			return w, s, w.answer(held)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, s, in := c.build(t)
			got, out, err := machine.Step(s, in, w.env())
			var unexpected *machine.UnexpectedInputError
			if !errors.As(err, &unexpected) {
				t.Fatalf("err = %v (%T), want *machine.UnexpectedInputError", err, err)
			}
			if unexpected.State != s.State {
				t.Errorf("error names state %s, snapshot is in %s", unexpected.State, s.State)
			}
			if out != nil {
				t.Errorf("effects %v, want none", out)
			}
			if diff := cmp.Diff(s, got); diff != "" {
				t.Errorf("snapshot changed (-want +got):\n%s", diff)
			}
		})
	}
}

// TestIllegalInputAtTheStepBudgetIsRefused: an illegal input must be
// refused whatever the attempt's step count (failure channel a), not
// counted against the budget and turned into a failed attempt.
func TestIllegalInputAtTheStepBudgetIsRefused(t *testing.T) {
	w := newFakeWorld()
	w.Config.Limits.StepsPerAttempt = 1
	s, _ := coldUntil(t, w, holdPurpose(effects.PurposeServerMetadata)) // one step used: the PRM answer
	got, out, err := machine.Step(s, fakeNotFound(1), w.env())          // stale: request 1 was answered
	var unexpected *machine.UnexpectedInputError
	if !errors.As(err, &unexpected) {
		if len(out) > 0 {
			t.Fatalf("regression: step.go run() checks the step budget before the input's legality: a stale fetch answer at the budget "+
				"ends the attempt (%v) instead of being refused with *UnexpectedInputError", out)
		}
		t.Fatalf("err = %v, want *machine.UnexpectedInputError", err)
	}
	if diff := cmp.Diff(s, got); diff != "" || out != nil {
		t.Errorf("snapshot changed (-want +got):\n%s; effects %v", diff, out)
	}
}

// enterpriseExchange is the SEP-990 token exchange at the identity provider.
func enterpriseExchange(seq uint64, scope string) effects.Fetch {
	x := tokenPost(seq, effects.PurposeIdentityExchange, wIdP, formOf(
		"audience", wIssuer, "client_id", "idp-client",
		"grant_type", "urn:ietf:params:oauth:grant-type:token-exchange",
		"requested_token_type", wIDJAG, "resource", wServer, "scope", scope,
		"subject_token_type", "urn:ietf:params:oauth:token-type:id_token"), "")
	x.Supply = []effects.Supplied{{Source: effects.SourceIDToken, Form: "subject_token"}}
	return x
}
