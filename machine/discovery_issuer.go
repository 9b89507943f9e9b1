package machine

import (
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// tryServer starts metadata discovery for authorization server i of the
// list (RFC 9728 §7.6: the client chooses; we take them in the PRM's order
// until one validates). The caller has already moved to
// discovering_issuer.
func (st *step) tryServer(i int) error {
	a := &st.s.Attempt
	for ; i < len(a.Servers); i++ {
		issuer := a.Servers[i]
		if err := CheckSecureURL(issuer); err != nil {
			a.Problems = appendCopy(a.Problems, err.Error())
			continue
		}
		candidates, err := ServerMetadataURLs(issuer)
		if err != nil {
			a.Problems = appendCopy(a.Problems, err.Error())
			continue
		}
		a.Server = i
		a.Candidates = candidates
		a.Next = 0
		st.fetchMetadata(effects.PurposeServerMetadata, candidates[0])
		return nil
	}
	// A-LEG-04: the default endpoints stand in for metadata that does not
	// exist, never for metadata that exists and was refused (A-ASM-06,
	// A-PKCE-05).
	if a.Legacy && !a.Refused {
		return st.issuerValidated(legacyMetadata(a.Servers[0]), true)
	}
	return st.fail(&DiscoveryError{Server: st.s.Config.Server, Tried: a.Problems})
}

// legacyMetadata is the MCP 2025-03-26 default: with no metadata at all,
// the endpoints are /authorize, /token and /register at the server's
// origin (A-LEG-04), and PKCE still applies (A-LEG-05).
func legacyMetadata(origin string) effects.ServerMetadata {
	return effects.ServerMetadata{
		Issuer:                        origin,
		AuthorizationEndpoint:         origin + "/authorize",
		TokenEndpoint:                 origin + "/token",
		RegistrationEndpoint:          origin + "/register",
		CodeChallengeMethodsSupported: []string{"S256"},
		ResponseTypesSupported:        []string{"code"},
	}
}

// serverMetadataAnswered judges one metadata candidate's answer.
func (st *step) serverMetadataAnswered(r FetchResponse) error {
	a := &st.s.Attempt
	u := a.Candidates[a.Next]
	issuer := a.Servers[a.Server]
	switch outcome(r.Status) {
	case stopped:
		return st.fail(&HTTPStatusError{Purpose: string(effects.PurposeServerMetadata), URL: u, Status: r.Status})
	case missed:
		return st.nextCandidate(u + ": http " + strconv.Itoa(r.Status))
	}
	m, err := ParseServerMetadata(r.Body)
	if err != nil {
		a.Refused = true
		return st.nextCandidate(u + ": " + err.Error())
	}
	// RFC 8414 §3.3, A-ASM-06: the issuer must be the identifier the URL was
	// built from; a mismatching document is never used, not even its
	// registration endpoint (conformance metadata-issuer-mismatch).
	if !IssuerMatches(m.Issuer, issuer, st.s.Config.TolerateIssuerSlash) {
		a.Refused = true
		return st.nextCandidate((&IssuerMismatchError{Want: issuer, Got: m.Issuer}).Error())
	}
	if err := st.checkServer(m); err != nil {
		a.Refused = true
		a.Problems = appendCopy(a.Problems, err.Error())
		return st.nextServer()
	}
	return st.issuerValidated(m, false)
}

// checkServer holds validated metadata to what the flow needs: PKCE S256
// (A-PKCE-03..06), the endpoints it will use, each safe to send secrets to.
func (st *step) checkServer(m effects.ServerMetadata) error {
	if !SupportsS256(m) && !(st.s.Config.AllowMissingPKCE && len(m.CodeChallengeMethodsSupported) == 0) {
		return &PKCEUnsupportedError{Issuer: m.Issuer}
	}
	for _, e := range []string{m.AuthorizationEndpoint, m.TokenEndpoint} {
		if e == "" {
			return &MalformedError{Document: "authorization server metadata", Field: "authorization_endpoint/token_endpoint", Reason: "missing"}
		}
	}
	for _, e := range []string{m.AuthorizationEndpoint, m.TokenEndpoint, m.RegistrationEndpoint} {
		if e == "" {
			continue
		}
		if err := CheckSecureURL(e); err != nil {
			return err
		}
	}
	// RFC 8414 §2: REQUIRED; the code flow needs "code" in it.
	if len(m.ResponseTypesSupported) == 0 {
		return &MalformedError{Document: "authorization server metadata", Field: "response_types_supported", Reason: "missing"}
	}
	if g, _ := chooseGrant(st.s.Config.Grants, m.GrantTypesSupported); g == GrantAuthorizationCode && !slices.Contains(m.ResponseTypesSupported, "code") {
		return &MalformedError{Document: "authorization server metadata", Field: "response_types_supported", Reason: "does not list code"}
	}
	return nil
}

// nextCandidate records why the current candidate was refused and tries the
// next metadata URL of the same issuer, or the next issuer.
func (st *step) nextCandidate(problem string) error {
	a := &st.s.Attempt
	a.Problems = appendCopy(a.Problems, problem)
	if a.Next+1 < len(a.Candidates) {
		if err := st.to(states.IssuerMetadataMissed); err != nil {
			return err
		}
		st.s.Attempt.Next++
		st.fetchMetadata(effects.PurposeServerMetadata, st.s.Attempt.Candidates[st.s.Attempt.Next])
		return nil
	}
	return st.nextServer()
}

func (st *step) nextServer() error {
	if err := st.to(states.IssuerMetadataMissed); err != nil {
		return err
	}
	return st.tryServer(st.s.Attempt.Server + 1)
}

// issuerValidated records the validated discovery and finds the client
// identity for the issuer.
func (st *step) issuerValidated(m effects.ServerMetadata, synthesized bool) error {
	a := st.s.Attempt
	d := effects.Discovery{
		Server:              st.s.Config.Server,
		ResourceMetadataURL: a.ResourceMetadataURL,
		Resource:            a.Resource,
		Authorization:       m,
		Legacy:              a.Legacy,
		Synthesized:         synthesized,
	}
	st.s.Discovery = d
	st.s.Discovered = true
	st.emit(effects.SaveDiscovery{Server: st.s.Config.Server, Discovery: d})
	// SEP-2352: nothing issued by or registered at another authorization
	// server is kept for this one.
	if st.s.Credential.Issuer != "" && st.s.Credential.Issuer != m.Issuer {
		st.s.Credential = effects.Tokens{}
		st.s.Attempt.KeepOnFailure = false
	}
	if st.s.HasClient && st.s.Client.Issuer != m.Issuer {
		st.s.Client = effects.Client{}
		st.s.HasClient = false
	}
	g, ok := chooseGrant(st.s.Config.Grants, m.GrantTypesSupported)
	if !ok {
		return st.fail(&UnsupportedGrantError{Issuer: m.Issuer, Configured: st.s.Config.Grants, Supported: m.GrantTypesSupported})
	}
	st.s.Attempt.Grant = g
	if g != GrantAuthorizationCode {
		return st.beginGrantWithoutUser(m, g)
	}
	if c, ok := st.knownClient(m); ok {
		if c.AuthMethod == "" {
			return st.fail(&AuthMethodError{Issuer: m.Issuer, Supported: m.TokenEndpointAuthMethodsSupported})
		}
		if c.Source != effects.ClientDynamic && (!st.s.HasClient || st.s.Client.ClientID != c.ClientID) {
			// Kept so that a later run without this configuration (a
			// token command, a restart) can refresh and revoke.
			st.emit(effects.SaveClient{Client: c})
		}
		st.s.Client, st.s.HasClient = c, true
		if err := st.to(states.ClientFound); err != nil {
			return err
		}
		return st.authorize(st.initialScope())
	}
	if err := st.to(states.IssuerValidated); err != nil {
		return err
	}
	st.emit(effects.LoadClient{Issuer: m.Issuer})
	return nil
}

// hasPath reports whether a URL is https with a path beyond "/"
// (A-CIMD-04).
func hasPath(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https" && u.Host != "" && strings.Trim(u.Path, "/") != ""
}
