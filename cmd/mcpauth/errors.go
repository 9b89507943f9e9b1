package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/driver/pgstore"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/machine"
)

// failure is an error the user can act on: what went wrong, and what to do
// next. Commands return it when they know better than explain.
type failure struct {
	msg  string
	next string
	code int   // exit code; 0 means exitFailure
	err  error // the cause, if any (errors.As sees through failure)
}

func (f *failure) Error() string { return f.msg }
func (f *failure) Unwrap() error { return f.err }

// usageError is a failure with exit code 2.
func usageError(format string, args ...any) *failure {
	return &failure{msg: fmt.Sprintf(format, args...), code: exitUsage}
}

// loginNeededError says that a command that must not open a browser would
// have needed the user to sign in.
type loginNeededError struct {
	server string
	msg    string   // why: nothing stored, or the stored sign-in cannot be renewed
	stored []string // the servers the store holds sign-ins for, when server is not one
}

func (e *loginNeededError) Error() string { return e.msg }

// report prints err with the next step and returns the exit code.
func report(e *env, c *command, inv *invocation, err error) int {
	msg, next := explain(err, inv)
	out := e.stderrConsole()
	out.printf("%s %s\n", out.paint(styleRed, "mcpauth "+c.name+":"), msg)
	if next != "" {
		out.printf("  next: %s\n", next)
	}
	var f *failure
	if errors.As(err, &f) && f.code != 0 {
		return f.code
	}
	return exitFailure
}

// explain turns an error into one line saying which step failed and what
// the server said, plus the next thing to try. It finds the library's typed
// errors through any wrapping (the MCP SDK's, net/http's).
func explain(err error, inv *invocation) (msg, next string) {
	var (
		f        *failure
		login    *loginNeededError
		corrupt  *driver.CorruptStoreError
		denied   *machine.AuthorizationDeniedError
		tokenErr *machine.TokenError
		regErr   *machine.RegistrationError
		noClient *machine.NoClientError
		disc     *machine.DiscoveryError
		pkce     *machine.PKCEUnsupportedError
		issMis   *machine.IssuerMismatchError
		issResp  *machine.IssuerResponseError
		stateMis *machine.StateMismatchError
		cbErr    *machine.CallbackError
		trErr    *machine.TransportError
		status   *machine.HTTPStatusError
		insecure *machine.InsecureURLError
		resMis   *machine.ResourceMismatchError
		stepUp   *machine.StepUpLimitError
		unauth   *machine.UnauthorizedError
		cfgErr   *machine.ConfigError
		budget   *machine.BudgetError
		oauth    *machine.OAuthError
		noRedir  *httpdriver.NoRedirectError
		source   *driver.SourceError
		sign     *driver.SignError
		grants   *machine.UnsupportedGrantError
		pgDown   *pgstore.UnavailableError
		pgQuery  *pgstore.QueryError
		pgSchema *pgstore.SchemaError
		opErr    *net.OpError
		urlErr   *url.Error
		certErr  *tls.CertificateVerificationError
		hostErr  x509.HostnameError
		authErr  x509.UnknownAuthorityError
	)
	timeout := "the --timeout"
	if inv != nil && inv.timeout > 0 {
		timeout = inv.timeout.String()
	}
	again := "run the command again"
	if inv != nil && len(inv.args) > 0 {
		again = "run 'mcpauth " + inv.cmd.name + " " + inv.args[0] + "' again"
	}
	switch {
	case errors.As(err, &f) && f.next != "":
		return f.msg, f.next
	case errors.As(err, &login):
		next := "sign in first: mcpauth login " + login.server
		if len(login.stored) > 0 {
			next += " (the store holds sign-ins for " + strings.Join(login.stored, ", ") + "; the URL must be the one used at login)"
		}
		return login.Error(), next
	case errors.As(err, &corrupt):
		if corrupt.MovedTo == "" {
			return fmt.Sprintf("the store file %s is unreadable (%v) and could not be moved aside", corrupt.Path, corrupt.Err),
				"inspect or remove it by hand, then " + again
		}
		return fmt.Sprintf("the store file %s was unreadable (%v); it was moved aside, unchanged, to %s", corrupt.Path, corrupt.Err, corrupt.MovedTo),
			"the store is now empty: " + again + " (sign in again if needed); keep or delete the moved file"
	case errors.As(err, &source):
		return "cannot read the " + sourceName(source.Source) + ": " + trim(source.Reason), sourceNext(source.Source)
	case errors.As(err, &sign):
		if sign.KeyID == clientKeyID {
			return "cannot sign the client assertion (private_key_jwt): " + sign.Reason,
				"pass --client-key with the PEM private key registered for the client (EC P-256/P-384, RSA or Ed25519)"
		}
		return "cannot sign with key " + sign.KeyID + ": " + sign.Reason, "sign in again: mcpauth login " + argOf(inv)
	case errors.As(err, &grants):
		supported := strings.Join(grants.Supported, ", ")
		if supported == "" {
			supported = "only the default authorization_code"
		}
		asked := make([]string, len(grants.Configured))
		for i, g := range grants.Configured {
			asked[i] = string(g)
		}
		return fmt.Sprintf("%s supports none of the grants asked for (%s); it lists: %s", grants.Issuer, strings.Join(asked, ", "), supported),
			"pass --grant with a grant the server supports"
	case errors.As(err, &pgDown):
		return "the PostgreSQL store cannot be reached: " + trim(pgDown.Error()), "check that the database is running and reachable, then " + again
	case errors.As(err, &pgQuery):
		return "the PostgreSQL store refused a statement: " + trim(pgQuery.Error()), "check the database user's privileges on the store's schema"
	case errors.As(err, &pgSchema):
		return trim(pgSchema.Error()), "use the mcpauth that created the store's schema, or a newer one"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out (after " + timeout + ")", "check that the servers answer, or allow longer with a larger --timeout (e.g. --timeout 5m)"
	case errors.Is(err, context.Canceled):
		return "interrupted", ""
	case errors.As(err, &denied):
		m := "the authorization server denied the sign-in: " + denied.Code
		if denied.Description != "" {
			m += fmt.Sprintf(" (%q)", denied.Description)
		}
		return m, again + " and approve the request, or ask the server's administrator for access"
	case errors.As(err, &tokenErr):
		m := fmt.Sprintf("the %s grant at %s failed: %s", tokenErr.Grant, tokenErr.Issuer, oauthText(tokenErr.Err))
		if errors.As(err, &oauth) {
			switch oauth.Code {
			case "invalid_grant":
				return m, "the grant is no longer valid: sign in again with 'mcpauth login'"
			case "invalid_client", "unauthorized_client":
				return m, "the server does not accept this client: check --client-id and its secret, or sign in again with 'mcpauth login' to register anew"
			}
			if oauth.Transient() {
				return m, "the server had a temporary problem: try again later"
			}
		}
		return m, again
	case errors.As(err, &regErr):
		return fmt.Sprintf("client registration at %s failed: %s", regErr.Issuer, oauthText(regErr.Err)),
			"use a pre-registered client (--client-id, --client-secret-file) or a client metadata document (--client-metadata-url)"
	case errors.As(err, &noClient):
		return fmt.Sprintf("no way to get a client identity at %s: it offers neither dynamic registration nor client metadata documents", noClient.Issuer),
			"register mcpauth with the server's administrator and pass --client-id (and --client-secret-file for a confidential client)"
	case errors.As(err, &pkce):
		return trim(pkce.Error()), "the authorization server does not support PKCE S256, which MCP requires; ask its administrator to enable it"
	case errors.As(err, &issMis):
		return securityCheck(issMis)
	case errors.As(err, &issResp):
		return securityCheck(issResp)
	case errors.As(err, &stateMis):
		return securityCheck(stateMis)
	case errors.As(err, &resMis):
		return "the server's protected resource metadata names another resource: " + trim(resMis.Error()),
			"check that the URL is the MCP endpoint itself (for example https://host/mcp)"
	case errors.As(err, &disc):
		return trim(disc.Error()), "check that the URL is the MCP endpoint (for example https://host/mcp) and that it is an OAuth-protected MCP server"
	case errors.As(err, &cbErr):
		return trim(cbErr.Error()), again + "; the browser sign-in must finish within " + timeout
	case errors.As(err, &noRedir):
		return trim(noRedir.Error()), "the authorization server wants a person at the browser: sign in without the automated user agent"
	case errors.As(err, &insecure):
		return trim(insecure.Error()), "use an https URL (plain http is allowed only for localhost and 127.0.0.1)"
	case errors.As(err, &stepUp):
		return trim(stepUp.Error()), "the account lacks the scope this call needs: ask the server's administrator"
	case errors.As(err, &unauth):
		return trim(unauth.Error()), "the server refuses every new credential: sign in again with 'mcpauth login', or check the account's access"
	case errors.As(err, &budget):
		return trim(budget.Error()), "the servers keep the flow going in circles; report it to their administrator"
	case errors.As(err, &status):
		m := trim(status.Error())
		if status.Retryable() {
			return m, "the server had a temporary problem: try again later"
		}
		return m, "check the URL"
	case errors.As(err, &trErr):
		return trim(trErr.Error()), "check the URL and your network connection"
	case errors.As(err, &cfgErr):
		return trim(cfgErr.Error()), "check the command's arguments ('mcpauth " + cmdName(inv) + " --help')"
	case errors.As(err, &certErr):
		return "the server's TLS certificate is not valid: " + certErr.Error(), "check the URL's host name; mcpauth never skips certificate checks"
	case errors.As(err, &hostErr):
		return "the server's TLS certificate is not valid: " + hostErr.Error(), "check the URL's host name; mcpauth never skips certificate checks"
	case errors.As(err, &authErr):
		return "the server's TLS certificate is not valid: " + authErr.Error(), "check the URL's host name; mcpauth never skips certificate checks"
	case errors.As(err, &opErr):
		return "cannot reach the server: " + opErr.Error(), "check the URL and that the server is running"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "cannot reach the server: " + rootMessage(err), "check the URL and that the server is running"
	case errors.As(err, &urlErr):
		return fmt.Sprintf("%s %s failed: %s", urlErr.Op, stripQuery(urlErr.URL), rootMessage(err)), "check the URL and your network connection"
	}
	return trim(err.Error()), ""
}

// sourceName says which configured secret a source is, in words.
func sourceName(source string) string {
	switch source {
	case effects.SourceWorkloadToken:
		return "workload token"
	case effects.SourceIDToken:
		return "ID token"
	}
	return source
}

func sourceNext(source string) string {
	switch source {
	case effects.SourceWorkloadToken:
		return "check --workload-token-file or --workload-token-env: the platform's token for the workload must be there"
	case effects.SourceIDToken:
		return "check --id-token-file: your ID token from the identity provider must be there"
	}
	return ""
}

// argOf is the command's <mcp-url>, or a placeholder.
func argOf(inv *invocation) string {
	if inv == nil || len(inv.args) == 0 {
		return "<mcp-url>"
	}
	return inv.args[0]
}

func cmdName(inv *invocation) string {
	if inv == nil || inv.cmd == nil {
		return "<command>"
	}
	return inv.cmd.name
}

// securityCheck explains a check that protects the user (RFC 8414 §3.3,
// RFC 9207, RFC 6749 §10.12): never something to work around.
func securityCheck(err error) (msg, next string) {
	return "a security check failed: " + trim(err.Error()),
		"nothing was stored; try again, and if it persists the server is misconfigured (or someone is interfering): do not work around it"
}

// oauthText shows an OAuth error as the server sent it: error and
// error_description.
func oauthText(err error) string {
	var oe *machine.OAuthError
	if errors.As(err, &oe) {
		s := oe.Code
		if s == "" {
			s = fmt.Sprintf("http %d", oe.Status)
		}
		if oe.Description != "" {
			s += fmt.Sprintf(" (%q)", oe.Description)
		}
		return s
	}
	if err == nil {
		return "no reason given"
	}
	return trim(err.Error())
}

// trim drops the package prefixes of the library's error messages, which
// say where an error comes from to a programmer, not to a user.
func trim(s string) string {
	for _, p := range []string{"machine: ", "httpdriver: ", "driver: ", "pgstore: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}

// rootMessage is the innermost error's message.
func rootMessage(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return trim(err.Error())
		}
		err = u
	}
}
