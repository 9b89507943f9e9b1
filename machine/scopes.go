package machine

import (
	"slices"
	"strings"
)

// initialScope selects the scope of a first authorization (MCP 2025-11-25
// Scope Selection Strategy, A-SCP-02): configured scopes, else the 401
// challenge's scope, else every PRM scopes_supported, else none.
// offline_access is added only when the authorization server lists it and
// the client may hold refresh tokens (SEP-2207, A-REF-03).
func (st *step) initialScope() string {
	a := st.s.Attempt
	var scope string
	switch {
	case len(st.s.Config.Scopes) > 0:
		scope = strings.Join(st.s.Config.Scopes, " ")
	case a.ChallengeScope != "":
		scope = a.ChallengeScope
	case len(st.s.Discovery.Resource.ScopesSupported) > 0:
		scope = strings.Join(st.s.Discovery.Resource.ScopesSupported, " ")
	}
	// A-REF-05: offline_access named by the resource server is not a
	// resource requirement; it is asked for only on the terms above.
	scope = st.cleanScope(scope)
	if st.wantsOfflineAccess() {
		scope = unionScopes(scope, "offline_access")
	}
	return scope
}

// cleanScope makes a scope list from a server fit to send: each scope once
// (RFC 6749 §3.3 scope-tokens, space-delimited), none with characters a
// scope-token may not hold, and offline_access only on the client's terms.
func (st *step) cleanScope(list string) string {
	var keep []string
	for _, s := range strings.Fields(list) {
		if validScopeToken(s) && s != "offline_access" {
			keep = append(keep, s)
		}
	}
	return unionScopes(strings.Join(keep, " "))
}

// validScopeToken: 1*( %x21 / %x23-5B / %x5D-7E ) (RFC 6749 §3.3).
func validScopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

// wantsOfflineAccess reports whether offline_access should be asked for.
func (st *step) wantsOfflineAccess() bool {
	if st.s.Config.NoRefreshTokens {
		return false
	}
	return slices.Contains(st.s.Discovery.Authorization.ScopesSupported, "offline_access")
}

// unionScopes joins space-delimited scope lists (RFC 6749 §3.3), keeping
// the first occurrence of each scope in order.
func unionScopes(lists ...string) string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, s := range strings.Fields(l) {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return strings.Join(out, " ")
}
