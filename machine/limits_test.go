package machine_test

import (
	"slices"
	"testing"

	"github.com/mcpauth/mcpauth/effects"
	"github.com/mcpauth/mcpauth/machine"
)

// Design §4.8, issue 7 item 7: Limits.AuthorizationServers bounds how many
// listed authorization servers are tried, at its edge: with the limit at
// 2 and the first two refused, the third is never asked; at 3 it is.
func TestLimitAuthorizationServersAtItsEdge(t *testing.T) {
	const wIssuer3 = "https://auth3.example.com"
	for _, limit := range []int{2, 3} {
		w := newFakeWorld()
		w.AS = []*fakeAS{newFakeAS(wIssuer), newFakeAS(wIssuer2), newFakeAS(wIssuer3)}
		w.AS[0].NoS256 = true
		w.AS[1].MetadataIssuer = "https://evil.example.com"
		w.PRMServers = []string{wIssuer, wIssuer2, wIssuer3}
		w.Config.Limits.AuthorizationServers = limit
		w.run(t, w.boot(t), w.req(1))
		asked := slices.ContainsFunc(w.fetchURLs(effects.PurposeServerMetadata), func(u string) bool {
			return u == wIssuer3+"/.well-known/oauth-authorization-server"
		})
		switch limit {
		case 2:
			requireFailed[*machine.DiscoveryError](t, w, 1)
			if asked {
				t.Errorf("limit 2: the third server was asked for metadata")
			}
		case 3:
			requireDelivered(t, w, 1)
			if !asked {
				t.Errorf("limit 3: the third server was not asked")
			}
		}
		w.requireClean(t)
	}
}
