package effects

import (
	"fmt"
	"net/url"
	"strings"
)

// Redacted replaces a secret wherever an effect, record or trace is printed.
const Redacted = "[redacted]"

// secretFormFields are the form and query parameters that carry secrets.
var secretFormFields = map[string]bool{
	"code": true, "code_verifier": true, "client_secret": true, "refresh_token": true,
	"access_token": true, "assertion": true, "client_assertion": true, "subject_token": true,
	"state": true, "id_token": true,
	// Not secret, but derived from the verifier: masking it keeps traces
	// free of anything that depends on the entropy drawn, so they replay.
	"code_challenge": true,
}

// secretHeaders are the request headers that carry secrets.
var secretHeaders = map[string]bool{"Authorization": true, "Dpop": true, "DPoP": true, "Cookie": true}

// RedactHeader returns a copy of h with secret values replaced.
func RedactHeader(h map[string][]string) map[string][]string {
	if h == nil {
		return nil
	}
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		if secretHeaders[k] {
			masked := make([]string, len(vs))
			for i, v := range vs {
				scheme, _, _ := strings.Cut(v, " ")
				masked[i] = scheme + " " + Redacted
			}
			out[k] = masked
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// RedactBody returns body with secret form fields, or the values of secret
// JSON members, replaced. Bodies it cannot read are replaced whole.
func RedactBody(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	s := string(body)
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		return redactJSON(s)
	}
	return RedactQuery(s)
}

// RedactQuery returns a URL query (or form body) with secret values
// replaced; parameter order is kept.
func RedactQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, _, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil || (hasValue && secretFormFields[name]) {
			parts[i] = k + "=" + Redacted
		}
	}
	return strings.Join(parts, "&")
}

// RedactURL returns u with secret query parameters replaced.
func RedactURL(u string) string {
	base, q, ok := strings.Cut(u, "?")
	if !ok {
		return u
	}
	return base + "?" + RedactQuery(q)
}

// redactJSON masks the string values of secret members in a JSON body
// without parsing it fully: good enough for logs, never used for protocol.
func redactJSON(s string) string {
	for name := range secretFormFields {
		s = maskJSONMember(s, name)
	}
	for _, name := range []string{"client_secret", "registration_access_token"} {
		s = maskJSONMember(s, name)
	}
	return s
}

func maskJSONMember(s, name string) string {
	key := `"` + name + `"`
	var b strings.Builder
	for {
		i := strings.Index(s, key)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+len(key)])
		s = s[i+len(key):]
		j := 0
		for j < len(s) && (s[j] == ' ' || s[j] == ':' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r') {
			j++
		}
		if j >= len(s) || s[j] != '"' {
			continue
		}
		end := j + 1
		for end < len(s) && s[end] != '"' {
			if s[end] == '\\' {
				end++
			}
			end++
		}
		b.WriteString(s[:j])
		b.WriteString(`"` + Redacted + `"`)
		if end < len(s) {
			end++
		}
		s = s[end:]
	}
}

func secretMark(s string) string {
	if s == "" {
		return `""`
	}
	return Redacted
}

// String prints a credential without its secrets.
func (t Tokens) String() string {
	return fmt.Sprintf("Tokens{Resource:%q Issuer:%q ClientID:%q AccessToken:%s TokenType:%q RefreshToken:%s Scope:%q ExpiresAt:%s}",
		t.Resource, t.Issuer, t.ClientID, secretMark(t.AccessToken), t.TokenType, secretMark(t.RefreshToken), t.Scope, t.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
}

// GoString keeps %#v from printing secrets too.
func (t Tokens) GoString() string { return t.String() }

// String prints a client identity without its secret.
func (c Client) String() string {
	return fmt.Sprintf("Client{Issuer:%q ClientID:%q ClientSecret:%s AuthMethod:%q Source:%s}",
		c.Issuer, c.ClientID, secretMark(c.ClientSecret), c.AuthMethod, c.Source)
}

// GoString keeps %#v from printing secrets too.
func (c Client) GoString() string { return c.String() }

// String prints an auxiliary request without its secrets.
func (f Fetch) String() string {
	return fmt.Sprintf("Fetch{Seq:%d Purpose:%s %s %s Header:%v Body:%q}",
		f.Seq, f.Purpose, f.Method, RedactURL(f.URL), RedactHeader(f.Header), RedactBody(f.Body))
}

// GoString keeps %#v from printing secrets too.
func (f Fetch) GoString() string { return f.String() }

// String prints a protected send without its credential.
func (s SendProtected) String() string {
	return fmt.Sprintf("SendProtected{Request:%d Credential:%d Header:%v}", s.Request, s.Credential, RedactHeader(s.Header))
}

// GoString keeps %#v from printing secrets too.
func (s SendProtected) GoString() string { return s.String() }

// String prints the authorization URL without state or other secrets.
func (o OpenURL) String() string { return "OpenURL{" + RedactURL(o.URL) + "}" }

// GoString keeps %#v from printing secrets too.
func (o OpenURL) GoString() string { return o.String() }

// String prints a save without the secrets it saves.
func (s SaveTokens) String() string {
	return fmt.Sprintf("SaveTokens{Server:%q IfVersion:%d %s}", s.Server, s.IfVersion, s.Tokens)
}

// GoString keeps %#v from printing secrets too.
func (s SaveTokens) GoString() string { return s.String() }

// String prints a save without the secret it saves.
func (s SaveClient) String() string { return "SaveClient{" + s.Client.String() + "}" }

// GoString keeps %#v from printing secrets too.
func (s SaveClient) GoString() string { return s.String() }

// String prints a transition as "from -trigger-> to".
func (t Transition) String() string { return t.From + " -" + t.Trigger + "-> " + t.To }
