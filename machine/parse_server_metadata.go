package machine

import (
	"strings"

	"github.com/mcpauth/mcpauth/effects"
)

// RFC 8414 §2 authorization server metadata (also OpenID Connect Discovery
// 1.0 §3 documents: the members the client uses have the same names).

// asmMembers are the members the parser reads; a member that differs from
// one of them only by case is refused (E-14).
var asmMembers = []string{
	"issuer",
	"authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint",
	"scopes_supported", "response_types_supported", "grant_types_supported",
	"code_challenge_methods_supported", "token_endpoint_auth_methods_supported",
	"token_endpoint_auth_signing_alg_values_supported", "dpop_signing_alg_values_supported",
	"client_id_metadata_document_supported", "authorization_response_iss_parameter_supported",
}

// ParseServerMetadata parses an RFC 8414 §2 document. issuer is required:
// an absolute https URL (http only on a loopback host) without query,
// fragment or template braces (RFC 8414 §2; Q-03: Entra's common endpoint
// says "https://login.microsoftonline.com/{tenantid}/v2.0"). Endpoints,
// when present, are absolute http(s) URLs without userinfo or fragment
// (E-36); they may lie on other hosts. Missing endpoints are not an
// error here: the flow fails precisely when it needs one (Q-29, the 2016
// Cognito document has no token_endpoint). Lists must be arrays of strings
// and flags booleans (E-15, E-39). Unknown members and nulls are ignored
//
//
// It does not compare issuer with the identifier the document was fetched
// for (A-ASM-06) nor check PKCE support (A-PKCE-03): the flow does, with
// IssuerMatches and SupportsS256. Errors are *MalformedError.
func ParseServerMetadata(body []byte) (effects.ServerMetadata, error) {
	var m effects.ServerMetadata
	o, err := decodeJSONObject(docServerMetadata, body, asmMembers)
	if err != nil {
		return effects.ServerMetadata{}, err
	}
	bad := func(field, reason string) (effects.ServerMetadata, error) {
		return effects.ServerMetadata{}, &MalformedError{Document: docServerMetadata, Field: field, Reason: reason}
	}

	issuer, ok, err := o.str("issuer")
	if err != nil {
		return effects.ServerMetadata{}, err
	}
	if !ok || issuer == "" {
		return bad("issuer", "missing")
	}
	if reason := issuerShape(issuer); reason != "" {
		return bad("issuer", reason)
	}
	m.Issuer = issuer // verbatim: compared code point by code point (RFC 8414 §4)

	endpoints := []struct {
		name string
		dst  *string
	}{
		{"authorization_endpoint", &m.AuthorizationEndpoint},
		{"token_endpoint", &m.TokenEndpoint},
		{"registration_endpoint", &m.RegistrationEndpoint},
		{"revocation_endpoint", &m.RevocationEndpoint},
	}
	for _, ep := range endpoints {
		v, ok, err := o.str(ep.name)
		if err != nil {
			return effects.ServerMetadata{}, err
		}
		if !ok {
			continue
		}
		if reason := endpointShape(v); reason != "" {
			return bad(ep.name, reason)
		}
		*ep.dst = v
	}

	lists := []struct {
		name string
		dst  *[]string
	}{
		{"scopes_supported", &m.ScopesSupported},
		{"response_types_supported", &m.ResponseTypesSupported},
		{"grant_types_supported", &m.GrantTypesSupported},
		{"code_challenge_methods_supported", &m.CodeChallengeMethodsSupported},
		{"token_endpoint_auth_methods_supported", &m.TokenEndpointAuthMethodsSupported},
		{"token_endpoint_auth_signing_alg_values_supported", &m.TokenEndpointAuthSigningAlgValuesSupported},
		{"dpop_signing_alg_values_supported", &m.DPoPSigningAlgValuesSupported},
	}
	for _, l := range lists {
		if *l.dst, _, err = o.strs(l.name); err != nil {
			return effects.ServerMetadata{}, err
		}
	}

	if m.ClientIDMetadataDocumentSupported, _, err = o.boolean("client_id_metadata_document_supported"); err != nil {
		return effects.ServerMetadata{}, err
	}
	if m.AuthorizationResponseIssParameterSupported, _, err = o.boolean("authorization_response_iss_parameter_supported"); err != nil {
		return effects.ServerMetadata{}, err
	}
	return m, nil
}

// endpointShape returns why s cannot be an endpoint URL, or "": it must be
// an absolute http(s) URL without userinfo or fragment (RFC 8414 §2, RFC
// 6749 §3.1, §3.2). A query is allowed and must be kept (B-6749-12); https
// is checked where the endpoint is used (CheckSecureURL), so a loopback
// development server and its http endpoints parse.
func endpointShape(s string) string {
	u, reason := parseAbsoluteHTTP(s)
	if u == nil {
		return reason
	}
	if u.User != nil {
		return "has userinfo"
	}
	if strings.Contains(s, "#") {
		return "has a fragment"
	}
	return ""
}

// SupportsS256 reports whether code_challenge_methods_supported lists S256
// (A-PKCE-03..06; Q-08: other values, "plain" or bogus ones like "RS256",
// are ignored, never used as a fallback).
func SupportsS256(m effects.ServerMetadata) bool {
	for _, v := range m.CodeChallengeMethodsSupported {
		if v == "S256" { // RFC 7636 §4.3: method names are case-sensitive
			return true
		}
	}
	return false
}
