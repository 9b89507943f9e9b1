package testworld

import (
	"net/http"
	"slices"
)

// prmDocument is RFC 9728 §2 Protected Resource Metadata.
type prmDocument struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
}

// prmPath is the single path PRM is served at in each mode.
//
//   - PRMHeader, PRMPathOnly: RFC 9728 §3.1 inserts the well-known string
//     between host and the resource path: /.well-known/oauth-protected-resource/mcp.
//   - PRMRootOnly: the root well-known URL (MCP 2025-11-25 second fallback);
//     its "resource" still names the MCP URL.
//   - PRMNone: nothing.
func prmPath(m PRMMode) string {
	switch m {
	case PRMHeader, PRMPathOnly:
		return "/.well-known/oauth-protected-resource/mcp"
	case PRMRootOnly:
		return "/.well-known/oauth-protected-resource"
	}
	return ""
}

func (rs *resourceServer) prm() prmDocument {
	return prmDocument{
		Resource:               rs.mcpURL,
		AuthorizationServers:   []string{rs.w.currentAS().issuer},
		ScopesSupported:        slices.Clone(rs.w.opts.ScopesSupported),
		BearerMethodsSupported: []string{"header"},
	}
}

func (rs *resourceServer) handlePRM(w http.ResponseWriter, r *http.Request) {
	rs.w.stats.add(func(s *Stats) { s.PRMRequests++ })
	f := rs.w.faults.takePRM()
	if f.body != nil {
		writeRawJSON(w, http.StatusOK, f.body)
		return
	}
	doc := rs.prm()
	if f.resource != "" {
		doc.Resource = f.resource
	}
	writeJSON(w, http.StatusOK, doc)
}
