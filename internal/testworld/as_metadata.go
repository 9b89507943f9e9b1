package testworld

import (
	"net/http"
	"slices"
)

// asMetadata is the RFC 8414 §2 document. Optional members use omitempty so
// that "not advertised" is absence, as clients must treat it.
type asMetadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	RegistrationEndpoint                       string   `json:"registration_endpoint,omitempty"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported,omitempty"`
	ClientIDMetadataDocumentSupported          bool     `json:"client_id_metadata_document_supported,omitempty"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	DPoPSigningAlgValuesSupported              []string `json:"dpop_signing_alg_values_supported,omitempty"`
}

// metadataPaths lists the only paths the metadata is served at.
//
//   - RFC 8414 §3.1: "/.well-known/oauth-authorization-server" inserted
//     between the host and the issuer path.
//   - OIDC Discovery §4 appends "/.well-known/openid-configuration" to the
//     issuer; RFC 8414 §5 also defines the path-inserted form. Clients (MCP
//     2025-11-25 "Authorization Server Metadata Discovery") try both.
func (as *authServer) metadataPaths() []string {
	p := as.opts.IssuerPath
	switch as.opts.Metadata {
	case MetadataRFC8414:
		return []string{"/.well-known/oauth-authorization-server" + p}
	case MetadataOIDC:
		if p == "" {
			return []string{"/.well-known/openid-configuration"}
		}
		return []string{"/.well-known/openid-configuration" + p, p + "/.well-known/openid-configuration"}
	}
	return nil
}

// metadata builds the document the AS serves, before faults.
func (as *authServer) metadata() asMetadata {
	o := as.opts
	m := asMetadata{
		Issuer:                                     as.issuer,
		AuthorizationEndpoint:                      as.url("/authorize"),
		TokenEndpoint:                              as.url("/token"),
		RevocationEndpoint:                         as.url("/revoke"),
		ScopesSupported:                            slices.Clone(o.ASScopesSupported),
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethodsSupported:          slices.Clone(o.AuthMethods),
		RevocationEndpointAuthMethodsSupported:     slices.Clone(o.AuthMethods),
		CodeChallengeMethodsSupported:              []string{"S256"},
		ClientIDMetadataDocumentSupported:          o.CIMD,
		AuthorizationResponseIssParameterSupported: o.IssParameter,
	}
	if o.DCR {
		m.RegistrationEndpoint = as.url("/register")
	}
	if o.NoRefreshTokens {
		m.GrantTypesSupported = []string{"authorization_code"}
	}
	as.extendMetadata(&m)
	return m
}

func (as *authServer) handleMetadata(w http.ResponseWriter, r *http.Request) {
	as.w.stats.add(func(s *Stats) { s.MetadataRequests++ })
	f := as.w.faults.takeMetadata()
	if f.body != nil {
		writeRawJSON(w, http.StatusOK, f.body)
		return
	}
	m := as.metadata()
	if f.issuer != "" {
		m.Issuer = f.issuer
	}
	if f.dropS256 {
		m.CodeChallengeMethodsSupported = nil
	}
	writeJSON(w, http.StatusOK, m)
}
