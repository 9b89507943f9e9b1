package httpdriver

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/mcpauth/mcpauth/machine"
)

// HeadlessUserAgent is a user agent with no user: it fetches the
// authorization URL without following redirects and takes the
// authorization response from the Location of the redirect. Authorization
// servers that approve without a page (test servers, the conformance
// suite, pre-approved clients) work with it.
type HeadlessUserAgent struct {
	Client  *http.Client  // default: a client over http.DefaultTransport
	Timeout time.Duration // default 30 s
}

// NoRedirectError reports an authorization endpoint that did not redirect.
type NoRedirectError struct{ Status int }

func (e *NoRedirectError) Error() string {
	return fmt.Sprintf("httpdriver: authorization endpoint answered http %d, not a redirect", e.Status)
}

// Authorize implements driver.UserAgent.
func (h HeadlessUserAgent) Authorize(ctx context.Context, authURL, redirectURI string) (string, error) {
	if err := machine.CheckSecureURL(authURL); err != nil {
		return "", err
	}
	timeout := h.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	base := h.Client
	if base == nil {
		base = &http.Client{}
	}
	c := *base
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("httpdriver: authorization request: %w", unwrapURLError(err))
	}
	defer drainAndClose(resp.Body)
	loc := resp.Header.Get("Location")
	if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == "" {
		return "", &NoRedirectError{Status: resp.StatusCode}
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("httpdriver: authorization redirect is not a URL")
	}
	// Only a redirect to our own redirect URI is an authorization response.
	want, err := url.Parse(redirectURI)
	if err != nil || u.Scheme != want.Scheme || u.Host != want.Host || u.Path != want.Path {
		return "", fmt.Errorf("httpdriver: authorization redirect goes to %s, not to the redirect URI", stripQuery(u.String()))
	}
	return u.RawQuery, nil
}
