package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// The key ids of the command's signer: the client's key for
// private_key_jwt, and the key DPoP-bound tokens are bound to.
const (
	clientKeyID = "client"
	dpopKeyID   = "dpop"
)

// allGrants are the values of --grant, in the order help lists them.
var allGrants = []machine.Grant{
	machine.GrantAuthorizationCode, machine.GrantClientCredentials,
	machine.GrantWorkloadIdentity, machine.GrantEnterprise,
}

// grantList is --grant: repeatable, each value one grant or a comma list.
type grantList []machine.Grant

func (g *grantList) String() string {
	if g == nil {
		return ""
	}
	parts := make([]string, len(*g))
	for i, v := range *g {
		parts[i] = string(v)
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value.
func (g *grantList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		p := machine.Grant(strings.TrimSpace(part))
		if p == "" {
			continue
		}
		if !slices.Contains(allGrants, p) {
			return fmt.Errorf("unknown grant %q (want authorization_code, client_credentials, workload_identity or enterprise_managed)", p)
		}
		if !slices.Contains(*g, p) {
			*g = append(*g, p)
		}
	}
	return nil
}

// extFlags are the flags of the MCP authorization extensions, on login,
// token and tools.
type extFlags struct {
	fs           *flag.FlagSet
	grants       grantList
	clientKey    *string
	dpop         *string
	workloadFile *string
	workloadEnv  *string
	idpEndpoint  *string
	idpClientID  *string
	idTokenFile  *string
}

func bindExtFlags(fs *flag.FlagSet) *extFlags {
	f := &extFlags{fs: fs}
	fs.Var(&f.grants, "grant", "how to get a credential, in order of preference (repeat it or give a comma list; the first the server supports is used): `GRANT` authorization_code (you, in a browser; the default), client_credentials, workload_identity or enterprise_managed")
	f.clientKey = fs.String("client-key", "", "the client's private key for private_key_jwt (RFC 7523), a PEM `FILE`: EC P-256/P-384, RSA or Ed25519")
	f.dpop = fs.String("dpop", "auto", "bind the tokens to a key (RFC 9449): `MODE` auto (when the authorization server supports it), always or never")
	f.workloadFile = fs.String("workload-token-file", "", "workload_identity: read the token your platform issued the workload from `FILE`, afresh for every grant")
	f.workloadEnv = fs.String("workload-token-env", "", "workload_identity: read the token your platform issued the workload from the environment `VARIABLE`")
	f.idpEndpoint = fs.String("idp-token-endpoint", "", "enterprise_managed: the identity provider's token exchange endpoint `URL` (RFC 8693)")
	f.idpClientID = fs.String("idp-client-id", "", "enterprise_managed: this client's `ID` at the identity provider")
	f.idTokenFile = fs.String("id-token-file", "", "enterprise_managed: read your ID token from the identity provider from `FILE`")
	return f
}

// set reports whether the flag was given on the command line.
func (f *extFlags) set(name string) bool {
	found := false
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == name {
			found = true
		}
	})
	return found
}

// extSettings are the extension settings of one sign-in, stored with it
// (settingsKey) so that token, tools and logout renew and revoke it the way
// it was made. Only names are kept: file paths, variable names, URLs and
// ids, never a secret or a key.
type extSettings struct {
	Grants            []string `json:"grants,omitempty"`
	ClientKeyFile     string   `json:"client_key_file,omitempty"`
	DPoP              string   `json:"dpop,omitempty"` // "" (auto), always, never
	WorkloadTokenFile string   `json:"workload_token_file,omitempty"`
	WorkloadTokenEnv  string   `json:"workload_token_env,omitempty"`
	IdPTokenEndpoint  string   `json:"idp_token_endpoint,omitempty"`
	IdPClientID       string   `json:"idp_client_id,omitempty"`
	IDTokenFile       string   `json:"id_token_file,omitempty"`
}

func (s extSettings) isZero() bool {
	return len(s.Grants) == 0 && s.ClientKeyFile == "" && s.DPoP == "" && s.WorkloadTokenFile == "" &&
		s.WorkloadTokenEnv == "" && s.IdPTokenEndpoint == "" && s.IdPClientID == "" && s.IDTokenFile == ""
}

// syntax checks the flag values that are wrong whatever is stored.
func (f *extFlags) syntax() error {
	switch strings.ToLower(*f.dpop) {
	case "auto", "", string(machine.DPoPAlways), string(machine.DPoPNever):
	default:
		return usageError("--dpop must be auto, always or never, not %q", *f.dpop)
	}
	if *f.workloadFile != "" && *f.workloadEnv != "" {
		return usageError("pass --workload-token-file or --workload-token-env, not both")
	}
	return nil
}

// over returns the stored settings with the flags given on the command
// line in their place; a workload token's file and variable are one
// setting.
func (f *extFlags) over(stored extSettings) (extSettings, error) {
	s := stored
	s.Grants = slices.Clone(s.Grants)
	if f.set("grant") {
		s.Grants = nil
		for _, g := range f.grants {
			s.Grants = append(s.Grants, string(g))
		}
	}
	abs := func(flagName, p string) (string, error) {
		if p == "" {
			return "", nil
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return "", usageError("--%s %s: %v", flagName, p, err)
		}
		return a, nil
	}
	var err error
	if f.set("client-key") {
		if s.ClientKeyFile, err = abs("client-key", *f.clientKey); err != nil {
			return s, err
		}
	}
	if f.set("dpop") {
		switch m := strings.ToLower(*f.dpop); m {
		case "auto", "":
			s.DPoP = ""
		case string(machine.DPoPAlways), string(machine.DPoPNever):
			s.DPoP = m
		default:
			return s, usageError("--dpop must be auto, always or never, not %q", *f.dpop)
		}
	}
	if f.set("workload-token-file") || f.set("workload-token-env") {
		if *f.workloadFile != "" && *f.workloadEnv != "" {
			return s, usageError("pass --workload-token-file or --workload-token-env, not both")
		}
		if s.WorkloadTokenFile, err = abs("workload-token-file", *f.workloadFile); err != nil {
			return s, err
		}
		s.WorkloadTokenEnv = *f.workloadEnv
	}
	if f.set("idp-token-endpoint") {
		s.IdPTokenEndpoint = *f.idpEndpoint
	}
	if f.set("idp-client-id") {
		s.IdPClientID = *f.idpClientID
	}
	if f.set("id-token-file") {
		if s.IDTokenFile, err = abs("id-token-file", *f.idTokenFile); err != nil {
			return s, err
		}
	}
	return s, s.check()
}

// check refuses settings that cannot work: a grant without what it needs,
// or what a grant needs without the grant.
func (s extSettings) check() error {
	workload := s.has(machine.GrantWorkloadIdentity)
	enterprise := s.has(machine.GrantEnterprise)
	switch {
	case workload && s.WorkloadTokenFile == "" && s.WorkloadTokenEnv == "":
		return usageError("--grant workload_identity needs --workload-token-file or --workload-token-env")
	case !workload && (s.WorkloadTokenFile != "" || s.WorkloadTokenEnv != ""):
		return usageError("--workload-token-file and --workload-token-env are for --grant workload_identity")
	case enterprise && (s.IdPTokenEndpoint == "" || s.IDTokenFile == ""):
		return usageError("--grant enterprise_managed needs --idp-token-endpoint and --id-token-file (and --idp-client-id when the identity provider asks for one)")
	case !enterprise && (s.IdPTokenEndpoint != "" || s.IdPClientID != "" || s.IDTokenFile != ""):
		return usageError("--idp-token-endpoint, --idp-client-id and --id-token-file are for --grant enterprise_managed")
	}
	if s.IdPTokenEndpoint != "" {
		if err := machine.CheckSecureURL(s.IdPTokenEndpoint); err != nil {
			return usageError("--idp-token-endpoint %s is not usable: %s", s.IdPTokenEndpoint, reasonOf(err))
		}
	}
	return nil
}

func (s extSettings) has(g machine.Grant) bool { return slices.Contains(s.Grants, string(g)) }

// needsUser reports whether the sign-in may need a person in a browser.
func (s extSettings) needsUser() bool {
	return len(s.Grants) == 0 || s.has(machine.GrantAuthorizationCode)
}

// needsClient reports whether every grant asked for needs a
// pre-registered client (client credentials, enterprise-managed).
func (s extSettings) needsClient() bool {
	for _, g := range s.Grants {
		if g != string(machine.GrantClientCredentials) && g != string(machine.GrantEnterprise) {
			return false
		}
	}
	return len(s.Grants) > 0
}

// configure puts the settings into a machine configuration.
func (s extSettings) configure(cfg *machine.Config) {
	cfg.Grants = nil
	for _, g := range s.Grants {
		cfg.Grants = append(cfg.Grants, machine.Grant(g))
	}
	cfg.DPoP = machine.DPoPMode(s.DPoP)
	cfg.DPoPKeyID = dpopKeyID
	cfg.IdentityProvider = machine.IdentityProvider{TokenEndpoint: s.IdPTokenEndpoint, ClientID: s.IdPClientID}
}

// sources are the secrets the machine asks the driver for: read afresh
// each time, so a platform can rotate a token file.
func (s extSettings) sources() map[string]driver.Source {
	m := map[string]driver.Source{}
	switch {
	case s.WorkloadTokenFile != "":
		m[effects.SourceWorkloadToken] = driver.FileSource(s.WorkloadTokenFile)
	case s.WorkloadTokenEnv != "":
		m[effects.SourceWorkloadToken] = driver.EnvSource(s.WorkloadTokenEnv)
	}
	if s.IDTokenFile != "" {
		m[effects.SourceIDToken] = driver.FileSource(s.IDTokenFile)
	}
	return m
}

// addClientKey reads the --client-key file into signer under clientKeyID
// and returns the key's JWS algorithm; "" when there is no key.
func (s extSettings) addClientKey(signer *driver.KeySigner) (string, error) {
	if s.ClientKeyFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(s.ClientKeyFile)
	if err != nil {
		return "", &failure{msg: "cannot read the client key: " + err.Error(), next: "check --client-key (the sign-in remembers the file it was made with; pass --client-key to use another)", err: err}
	}
	alg, err := signer.AddPEM(clientKeyID, b)
	if err != nil {
		var se *driver.SignError
		reason := trim(err.Error())
		if errors.As(err, &se) {
			reason = se.Reason
		}
		return "", &failure{msg: "the client key in " + s.ClientKeyFile + " is not usable: " + reason, next: "--client-key takes a PEM private key: EC P-256/P-384, RSA or Ed25519 (PKCS #8, SEC 1 or PKCS #1)", code: exitUsage, err: err}
	}
	return alg, nil
}
