package machine

import (
	"strconv"
	"strings"

	"github.com/mcpauth/mcpauth/effects"
)

// RFC 9728 §2 protected resource metadata: the document an MCP server
// publishes to name its authorization servers.

// maxAuthorizationServers bounds authorization_servers (E-17; the
// spec-checklist suggests 8, Config.Limits bounds how many are tried).
const maxAuthorizationServers = 16

// prmMembers are the members the parser reads; a member that differs from
// one of them only by case is refused (E-14).
var prmMembers = []string{
	"resource", "authorization_servers", "scopes_supported",
	"bearer_methods_supported", "resource_name",
}

// ParseResourceMetadata parses an RFC 9728 §2 document. resource is
// REQUIRED and must be a string (a JSON array is refused: the self-managed
// GitLab quirk, Q-15), an absolute http(s) URL without fragment, kept
// verbatim: it is compared byte for byte and sent as the RFC 8707 resource
// (never re-serialized, Q-15). authorization_servers must list at least one
// issuer (A-PRM-07), each an absolute https URL (http only on a loopback
// host) without query or fragment (RFC 8414 §2, E-22). Whether resource
// names the server being accessed is ResourceMatches' job (RFC 9728 §3.3).
// Errors are *MalformedError.
func ParseResourceMetadata(body []byte) (effects.ResourceMetadata, error) {
	var m effects.ResourceMetadata
	o, err := decodeJSONObject(docResourceMetadata, body, prmMembers)
	if err != nil {
		return effects.ResourceMetadata{}, err
	}
	bad := func(field, reason string) (effects.ResourceMetadata, error) {
		return effects.ResourceMetadata{}, &MalformedError{Document: docResourceMetadata, Field: field, Reason: reason}
	}

	resource, ok, err := o.str("resource")
	if err != nil {
		return bad("resource", "not a string")
	}
	if !ok || resource == "" {
		return bad("resource", "missing")
	}
	if u, reason := parseAbsoluteHTTP(resource); u == nil {
		return bad("resource", reason)
	}
	if strings.Contains(resource, "#") { // RFC 9728 §1.2 / RFC 8707 §2: no fragment
		return bad("resource", "has a fragment")
	}
	m.Resource = resource

	servers, ok, err := o.strs("authorization_servers")
	if err != nil {
		return effects.ResourceMetadata{}, err
	}
	if !ok || len(servers) == 0 { // A-PRM-07: MCP requires at least one
		return bad("authorization_servers", "missing or empty")
	}
	if len(servers) > maxAuthorizationServers {
		return bad("authorization_servers", "more than "+strconv.Itoa(maxAuthorizationServers)+" entries")
	}
	for i, s := range servers {
		if reason := issuerShape(s); reason != "" {
			return bad("authorization_servers["+strconv.Itoa(i)+"]", reason)
		}
	}
	m.AuthorizationServers = servers

	if m.ScopesSupported, _, err = o.strs("scopes_supported"); err != nil {
		return effects.ResourceMetadata{}, err
	}
	if m.BearerMethodsSupported, _, err = o.strs("bearer_methods_supported"); err != nil {
		return effects.ResourceMetadata{}, err
	}
	if m.ResourceName, _, err = o.str("resource_name"); err != nil {
		return effects.ResourceMetadata{}, err
	}
	return m, nil
}

// issuerShape returns why s cannot be an issuer identifier, or "": an
// absolute URL, https unless the host is a loopback host (RFC 8414 §2,
// A-TLS-01, E-66), no userinfo, query, fragment, or template braces (Q-03:
// Entra's "{tenantid}" equals no URL).
func issuerShape(s string) string {
	u, reason := parseAbsoluteHTTP(s)
	if u == nil {
		return reason
	}
	if u.User != nil {
		return "has userinfo"
	}
	if _, _, hasQuery := splitRawURL(s); hasQuery || strings.Contains(s, "#") {
		return "has a query or fragment"
	}
	if strings.ContainsAny(s, "{}") {
		return "is a template, not a url"
	}
	if u.Scheme != "https" && !IsLoopbackHost(u.Hostname()) {
		return "https is required for a host that is not a loopback host"
	}
	return ""
}
