package machine

import (
	"net/url"
	"slices"
	"strconv"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/states"
)

// startDiscovery begins protected resource metadata discovery (RFC 9728)
// from a 401 challenge: the challenge's resource_metadata URL first, then
// the path-inserted well-known URL, then the root one (A-PRM-02/03).
func (st *step) startDiscovery(c Challenge) error {
	if err := st.to(states.Challenged); err != nil {
		return err
	}
	a := &st.s.Attempt
	a.ChallengeScope = c.Params["scope"]
	var candidates []string
	if u := c.Params["resource_metadata"]; u != "" {
		if err := CheckSecureURL(u); err != nil {
			return st.fail(err)
		}
		candidates = append(candidates, u)
	}
	pathInserted, root, err := ResourceMetadataURLs(st.s.Config.Server)
	if err != nil {
		return st.fail(err)
	}
	for _, u := range []string{pathInserted, root} {
		if u != "" && !slices.Contains(candidates, u) {
			candidates = append(candidates, u)
		}
	}
	a.Candidates = candidates
	a.Next = 0
	st.fetchMetadata(effects.PurposeResourceMetadata, candidates[0])
	return nil
}

// fetchMetadata emits a discovery GET. MCP-Protocol-Version goes with it
// (A-ASM-07), so servers that vary by version answer for ours.
func (st *step) fetchMetadata(p effects.Purpose, u string) {
	st.fetch(p, "GET", u, map[string][]string{
		"Accept":               {"application/json"},
		"Mcp-Protocol-Version": {st.s.Config.ProtocolVersion},
	}, nil)
}

// resourceMetadataAnswered judges one PRM candidate's answer.
func (st *step) resourceMetadataAnswered(r FetchResponse) error {
	a := &st.s.Attempt
	u := a.Candidates[a.Next]
	switch outcome(r.Status) {
	case missed:
		a.Problems = appendCopy(a.Problems, u+": http "+strconv.Itoa(r.Status))
		if a.Next+1 < len(a.Candidates) {
			if err := st.to(states.ResourceMetadataMissed); err != nil {
				return err
			}
			st.s.Attempt.Next++
			st.fetchMetadata(effects.PurposeResourceMetadata, st.s.Attempt.Candidates[st.s.Attempt.Next])
			return nil
		}
		return st.resourceMetadataAbsent()
	case stopped:
		return st.fail(&HTTPStatusError{Purpose: string(effects.PurposeResourceMetadata), URL: u, Status: r.Status})
	}
	// A document that exists but is wrong stops discovery: falling back to
	// another candidate, or to the legacy flow, would let a hostile server
	// choose where the client goes (A-PRM-06, conformance resource-mismatch).
	prm, err := ParseResourceMetadata(r.Body)
	if err != nil {
		return st.fail(err)
	}
	if err := st.checkResource(prm.Resource, u); err != nil {
		return st.fail(err)
	}
	if err := st.to(states.ResourceMetadataFound); err != nil {
		return err
	}
	a = &st.s.Attempt
	a.Resource = prm
	a.ResourceMetadataURL = u
	servers := prm.AuthorizationServers
	if limit := st.s.Config.Limits.AuthorizationServers; len(servers) > limit {
		servers = servers[:limit]
	}
	a.Servers = servers
	return st.tryServer(0)
}

// resourceMetadataAbsent enters the MCP 2025-03-26 flow: with no PRM, the
// server's origin is the authorization server (A-LEG-01/02).
func (st *step) resourceMetadataAbsent() error {
	if err := st.to(states.ResourceMetadataAbsent); err != nil {
		return err
	}
	origin, err := originOf(st.s.Config.Server)
	if err != nil {
		return st.fail(err)
	}
	st.s.Attempt.Legacy = true
	st.s.Attempt.Servers = []string{origin}
	return st.tryServer(0)
}

func originOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", &ConfigError{Field: "Server", Reason: "not a URL"}
	}
	return u.Scheme + "://" + u.Host, nil
}

// The three ways a discovery candidate can answer.
type answer int

const (
	found   answer = iota // 2xx: judge the document
	missed                // 404, 410, other 4xx: try the next candidate
	stopped               // 5xx, 429, anything else: stop with a retryable error
)

// outcome classifies a discovery status. Server errors stop discovery
// rather than moving on, so a flaky server cannot silently downgrade the
// client to another discovery path.
func outcome(status int) answer {
	switch {
	case status >= 200 && status < 300:
		return found
	case status == 429:
		return stopped
	case status >= 400 && status < 500:
		return missed
	}
	return stopped
}

// appendCopy appends without writing into a backing array the caller's
// snapshot may share.
func appendCopy(xs []string, x ...string) []string {
	out := make([]string, 0, len(xs)+len(x))
	return append(append(out, xs...), x...)
}

// checkResource validates the resource a PRM fetched from u names (RFC
// 9728 §3.3, A-PRM-06): the server URL; or, for the root well-known URL
// (the identifier it was built from is the origin), the origin too.
// Never another origin.
func (st *step) checkResource(resource, u string) error {
	server := st.s.Config.Server
	err := ResourceMatches(resource, server, st.s.Config.ResourcePrefixMatch)
	if err == nil {
		return nil
	}
	if _, root, rerr := ResourceMetadataURLs(server); rerr == nil && u == root {
		if origin, oerr := originOf(server); oerr == nil && ResourceMatches(resource, origin, false) == nil {
			return nil
		}
	}
	return err
}
