package effects

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Design §4.10: no secret in String() output, whatever the verb.
func TestPrintingNeverShowsSecrets(t *testing.T) {
	const (
		access  = "AT-very-secret"
		refresh = "RT-very-secret"
		secret  = "CS-very-secret"
		code    = "CODE-very-secret"
		state   = "STATE-very-secret"
	)
	values := []any{
		Tokens{AccessToken: access, RefreshToken: refresh, Resource: "https://mcp.example/mcp"},
		Client{ClientID: "c1", ClientSecret: secret},
		Fetch{Method: "POST", URL: "https://as.example/token",
			Header: map[string][]string{"Authorization": {"Basic " + secret}},
			Body:   []byte("grant_type=refresh_token&refresh_token=" + refresh + "&client_secret=" + secret + "&code=" + code)},
		Fetch{Method: "POST", URL: "https://as.example/register", Body: []byte(`{"client_secret": "` + secret + `", "access_token":"` + access + `"}`)},
		SendProtected{Request: 1, Header: map[string][]string{"Authorization": {"Bearer " + access}}},
		OpenURL{URL: "https://as.example/authorize?client_id=c1&state=" + state + "&code_challenge=xyz"},
		SaveTokens{Server: "https://mcp.example/mcp", Tokens: Tokens{AccessToken: access, RefreshToken: refresh}},
		SaveClient{Client: Client{ClientSecret: secret}},
	}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(verb, v)
			for _, s := range []string{access, refresh, secret, code, state} {
				if strings.Contains(out, s) {
					t.Errorf("%s of %T shows a secret: %s", verb, v, out)
				}
			}
		}
	}
}

func TestRedactQueryKeepsOrderAndPublicValues(t *testing.T) {
	got := RedactQuery("client_id=c1&code=abc&state=xyz&scope=mcp%3Aread")
	want := "client_id=c1&code=[redacted]&state=[redacted]&scope=mcp%3Aread"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestRedactHeaderKeepsSchemeOnly(t *testing.T) {
	got := RedactHeader(map[string][]string{"Authorization": {"DPoP tok"}, "Accept": {"application/json"}})
	want := map[string][]string{"Authorization": {"DPoP [redacted]"}, "Accept": {"application/json"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
