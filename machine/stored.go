package machine

import (
	"time"

	"github.com/mcpauth/mcpauth/states"
)

// storedLoaded starts the context from what the store holds: with a
// credential for this server, requests carry it at once, with no discovery
// and no authorization (design §3, "Storage is an effect").
func (st *step) storedLoaded(in StoredLoaded) error {
	if st.s.State != states.Loading {
		return st.unexpected(in, "the store was already loaded")
	}
	server := st.s.Config.Server
	if d := in.Discovery; d != nil && d.Server == server && d.Authorization.Issuer != "" {
		st.s.Discovery, st.s.Discovered = *d, true
		if c := in.Client; c != nil && c.Issuer == d.Authorization.Issuer && c.ClientID != "" {
			st.s.Client, st.s.HasClient = *c, true
		}
	}
	st.s.CredentialVersion = in.TokensVersion
	if t := in.Tokens; t != nil && t.AccessToken != "" && st.s.Discovered && t.Issuer == st.s.Discovery.Authorization.Issuer && st.sameResource(t.Resource) {
		st.s.Credential = *t
		st.s.RefreshAt = time.Time{}
		st.s.Grant = Grant(t.Grant)
		st.s.Generation++
		if err := st.to(states.StoredCredentialLoaded); err != nil {
			return err
		}
		st.wake()
		return st.dispatchParked()
	}
	if err := st.to(states.NothingStored); err != nil {
		return err
	}
	return st.dispatchParked()
}

// dispatchParked sends the requests that waited for the store, or starts
// the refresh they need.
func (st *step) dispatchParked() error {
	if st.s.State == states.Authenticated && st.s.expiring(st.env.Now) && st.s.Requests.Parked() > 0 {
		switch {
		case st.s.canRefresh():
			return st.startRefresh()
		case st.s.canRepeatGrant():
			return st.repeatGrant(st.s.Credential.Scope)
		}
	}
	st.releaseParked(nil)
	return nil
}

// credentialChanged adopts a credential another writer stored, when it is
// for this server and issuer and newer than ours: the parked requests are
// sent with it, and the running attempt, if any, is abandoned (its late
// answers are then unexpected inputs).
func (st *step) credentialChanged(in CredentialChanged) error {
	t := in.Tokens
	// Newer, or as new as ours but different: our compare-and-swap to that
	// version lost to another writer, whose credential is the stored one.
	// (A credential the machine dropped, refused by the server, is not ours
	// to take back at the same version.)
	lostRace := in.Version > 0 && in.Version == st.s.CredentialVersion && st.s.HasCredential() &&
		t.AccessToken != st.s.Credential.AccessToken
	if t.AccessToken == "" || (in.Version < st.s.CredentialVersion || in.Version == st.s.CredentialVersion && !lostRace) {
		return st.unexpected(in, "the stored credential is not newer")
	}
	if !st.sameResource(t.Resource) {
		return st.unexpected(in, "the stored credential is for another resource")
	}
	if st.s.Discovered && t.Issuer != st.s.Discovery.Authorization.Issuer {
		return st.unexpected(in, "the stored credential is from another authorization server")
	}
	st.s.Credential = t
	st.s.RefreshAt = time.Time{}
	st.s.Grant = Grant(t.Grant)
	st.s.CredentialVersion = in.Version
	st.s.Generation++
	st.s.CureTried = false
	if err := st.to(states.CredentialChanged); err != nil {
		return err
	}
	st.wake()
	st.releaseParked(nil)
	return nil
}

// sameResource reports whether a credential issued for resource may be sent
// to this server: a token only ever goes to its resource's origin (design
// §4.1, A-SEC-01).
func (st *step) sameResource(resource string) bool {
	return SameOrigin(resource, st.s.Config.Server)
}

// tick refreshes ahead of expiry when nothing else is running (A-STO-02:
// short-lived tokens, renewed before requests see them expire).
func (st *step) tick() error {
	if st.s.State != states.Authenticated || !st.s.expiring(st.env.Now) {
		return nil
	}
	switch {
	case st.s.canRefresh():
		return st.startRefresh()
	case st.s.canRepeatGrant():
		return st.repeatGrant(st.s.Credential.Scope)
	}
	return nil
}
