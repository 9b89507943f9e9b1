package httpdriver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver"
	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/testworld"
	"github.com/mcpauth/mcpauth/machine"
)

// TestNoSecretsInErrors forces failures at every stage of the flow and
// checks that no error a caller or a tracer sees quotes a token, a code, a
// verifier, a state or a client secret.
func TestNoSecretsInErrors(t *testing.T) {
	const clientSecret = "client-secret-VALUE-0123456789"
	const bodyToken = "at-from-a-broken-body-0123456789"
	const bodyRefresh = "rt-from-a-broken-body-0123456789"
	cases := []struct {
		name string
		// before runs after a first successful request; fault is armed
		// before the request that must fail.
		warm   bool
		expire bool
		fault  testworld.Fault
		opts   testworld.Options
		// slowToken delays the token endpoint past the requester's timeout.
		slowToken bool
	}{
		{name: "token 500", fault: testworld.Fault{TokenStatus: 500}},
		{name: "token 401 invalid_client", fault: testworld.Fault{TokenStatus: 401}},
		{name: "token body malformed", fault: testworld.Fault{TokenBody: []byte(`{"access_token":"` + bodyToken + `","token_type":5,"refresh_token":"` + bodyRefresh + `"}`)}},
		{name: "token type unknown", fault: testworld.Fault{TokenBody: []byte(`{"access_token":"` + bodyToken + `","token_type":"mac","refresh_token":"` + bodyRefresh + `"}`)}},
		{name: "token body not JSON", fault: testworld.Fault{TokenBody: []byte(`access_token=` + bodyToken + `&refresh_token=` + bodyRefresh)}},
		{name: "token error echoes", fault: testworld.Fault{TokenStatus: 400, TokenBody: []byte(`{"error":"invalid_grant","refresh_token":"` + bodyRefresh + `"}`)}},
		{name: "wrong state", fault: testworld.Fault{WrongState: true}},
		{name: "wrong iss", opts: testworld.Options{IssParameter: true}, fault: testworld.Fault{WrongIss: "https://evil.example"}},
		{name: "authorization denied", fault: testworld.Fault{AuthorizeError: "access_denied"}},
		{name: "token timeout", slowToken: true},
		{name: "refresh 500", warm: true, expire: true, fault: testworld.Fault{TokenStatus: 503}},
		{name: "refresh invalid_grant then denied", warm: true, expire: true, fault: testworld.Fault{InvalidGrantOnRefresh: true, AuthorizeError: "access_denied"}},
		{name: "refresh body malformed", warm: true, expire: true, fault: testworld.Fault{TokenBody: []byte(`{"access_token":"` + bodyToken + `","token_type":"Bearer","expires_in":"soon"}`), Sticky: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.PreRegistered = map[string]string{"app": clientSecret}
			opts.AuthMethods = []string{testworld.AuthMethodPost}
			w := startWorld(t, opts)
			cfg := worldConfig(w)
			cfg.Clients = []effects.Client{{ClientID: "app", ClientSecret: clientSecret}}
			log := newSecretLog()
			log.add(clientSecret, bodyToken, bodyRefresh)
			var next driver.Requester = &httpdriver.Requester{}
			if tc.slowToken {
				next = slowTokenRequester{w: w}
			}
			store := driver.NewMemoryStore()
			tracer := newEffectTracer()
			tr := newTransport(t, cfg, httpdriver.Options{
				Store:     store,
				Requester: spyRequester{next: next, log: log},
				UserAgent: spyAgent{next: httpdriver.HeadlessUserAgent{}, log: log},
				Tracer:    tracer,
			})
			c := &http.Client{Transport: tr}
			if tc.warm {
				mustPost(t, c, w.MCPURL(), rpcBody(1))
				if tok := storedTokens(t, store, w.MCPURL()); tok != nil {
					log.add(tok.AccessToken, tok.RefreshToken)
				}
			}
			if tc.expire {
				w.ExpireAccessTokens()
			}
			w.SetFault(tc.fault)
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			_, _, err := postMCP(ctx, c, w.MCPURL(), rpcBody(2))
			w.SetFault(testworld.Fault{})
			if err == nil {
				t.Fatalf("request succeeded despite the fault")
			}
			if tc.slowToken && !machine.IsRetryable(err) {
				t.Errorf("a timeout is not retryable: %v", err)
			}
			if tok := storedTokens(t, store, w.MCPURL()); tok != nil {
				log.add(tok.AccessToken, tok.RefreshToken)
			}
			secrets := log.list()
			if len(secrets) < 4 {
				t.Fatalf("only %d secrets collected: the spies saw nothing", len(secrets))
			}
			wantNoSecret(t, "the caller's error", err.Error(), secrets)
			wantNoSecret(t, "the caller's error (%+v)", fmt.Sprintf("%+v %#v", err, err), secrets)
			for _, e := range tracer.Errors() {
				wantNoSecret(t, "a traced error", e, secrets)
			}
			wantNoSecret(t, "the traced effects", strings.Join(tracer.Described(), "\n"), secrets)
			wantNoSecret(t, "the snapshot", fmt.Sprintf("%v %+v %#v", tr.Session().Snapshot(), tr.Session().Snapshot(), tr.Session().Snapshot()), secrets)
		})
	}
}

// slowTokenRequester arms a Delay fault just before the token request and
// gives that request a short timeout, so that only it times out. (The
// world's handler cannot see the client leave before it reads the body, so
// the delay is kept short: the world waits for it when it closes.)
type slowTokenRequester struct {
	w *testworld.World
}

func (s slowTokenRequester) Fetch(ctx context.Context, f effects.Fetch) (machine.FetchResponse, error) {
	if f.Purpose == effects.PurposeToken {
		s.w.SetFault(testworld.Fault{Delay: 500 * time.Millisecond})
		return (&httpdriver.Requester{Timeout: 50 * time.Millisecond}).Fetch(ctx, f)
	}
	return (&httpdriver.Requester{}).Fetch(ctx, f)
}
