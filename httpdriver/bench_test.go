package httpdriver_test

// Benchmarks for issue 6, items 2-5: the transport's overhead on the hot
// path, what multiplexing buys over a transport that serializes round
// trips, the storms (expiry, first requests), and the HTTP round trips of
// each flow next to the official Go SDK and mcp-go. cmd/benchreport runs
// them and writes docs/benchmarks.md. Every ratio compares two measurements
// of the same run; the storm and round-trip figures are counts.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/bench"
	"github.com/mcpauth/mcpauth/internal/testworld"
)

// benchWarm starts a world that mcpauth has authorized against once.
func benchWarm(b *testing.B, opts testworld.Options) *bench.Warm {
	b.Helper()
	wm, err := bench.NewWarm(opts)
	if err != nil {
		b.Fatalf("warm world: %v", err)
	}
	b.Cleanup(wm.Close)
	return wm
}

// benchNoPrompt fails every authorization: the hot-path benchmarks must
// never reach the user.
type benchNoPrompt struct{}

func (benchNoPrompt) Authorize(context.Context, string, string) (string, error) {
	return "", errors.New("bench: no authorization expected on the hot path")
}

func benchTransport(b *testing.B, wm *bench.Warm, base http.RoundTripper, clock *bench.OffsetClock) *httpdriver.Transport {
	b.Helper()
	var tr *httpdriver.Transport
	var err error
	if clock != nil {
		tr, err = wm.Transport(base, clock, benchNoPrompt{})
	} else {
		tr, err = wm.Transport(base, nil, benchNoPrompt{})
	}
	if err != nil {
		b.Fatalf("NewTransport: %v", err)
	}
	b.Cleanup(tr.Close)
	return tr
}

func benchPost(c *http.Client, url string) func(int) error {
	body := bench.ListTools(1)
	return func(int) error {
		ctx, cancel := context.WithTimeout(context.Background(), bench.Timeout)
		defer cancel()
		return bench.Post(ctx, c, url, body, http.StatusOK)
	}
}

// BenchmarkTransportOverhead (item 2): requests with a valid token held
// (warm store: the hot path) through httpdriver.Transport and through a
// bare http.Transport that sets the same token, to the same loopback
// server, in alternating rounds. server=testworld is the in-repo MCP server
// (the official SDK's streamable handler behind the bearer check);
// server=minimal answers a fixed 200 after comparing the header, where a
// client's own cost shows the most. ns/op and allocs/op are mcpauth's per
// request; bare-* the baseline's; allocations are the whole process's
// (the server runs in it), so extra-allocs/op is what mcpauth adds.
// cpu-overhead-ratio divides the process CPU time per request the same
// way: on a shared machine it does not move with the neighbours' load as
// the wall-time ratio does.
func BenchmarkTransportOverhead(b *testing.B) {
	wm := benchWarm(b, testworld.Options{DCR: true})
	for _, server := range []string{"testworld", "minimal"} {
		for _, p := range []int{1, 64} {
			b.Run(fmt.Sprintf("server=%s/parallel=%d", server, p), func(b *testing.B) {
				var redirect map[string]string
				if server == "minimal" {
					srv, err := bench.StartServer(wm.Token, 0)
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(srv.Close)
					redirect = map[string]string{bench.RSAddr(wm.World): srv.Addr}
				}
				bareBase, mcpBase := bench.NewBase(2*p, redirect), bench.NewBase(2*p, redirect)
				b.Cleanup(bareBase.CloseIdleConnections)
				b.Cleanup(mcpBase.CloseIdleConnections)
				bare := benchPost(&http.Client{Transport: &bench.Bearer{Base: bareBase, Token: wm.Token}}, wm.World.MCPURL())
				mcp := benchPost(&http.Client{Transport: benchTransport(b, wm, mcpBase, nil)}, wm.World.MCPURL())
				// Open the connections before measuring.
				if _, _, err := bench.Alternate(4*p, p, 2, bare, mcp); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				m, base, err := bench.Alternate(b.N, p, 16, mcp, bare)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(m.NsPerOp(), "ns/op")
				b.ReportMetric(base.NsPerOp(), "bare-ns/op")
				b.ReportMetric(m.NsPerOp()/base.NsPerOp(), "overhead-ratio")
				b.ReportMetric(m.CPUPerOp(), "cpu-ns/op")
				b.ReportMetric(base.CPUPerOp(), "bare-cpu-ns/op")
				b.ReportMetric(m.CPUPerOp()/base.CPUPerOp(), "cpu-overhead-ratio")
				b.ReportMetric(m.AllocsPerOp(), "allocs/op")
				b.ReportMetric(base.AllocsPerOp(), "bare-allocs/op")
				b.ReportMetric(m.AllocsPerOp()-base.AllocsPerOp(), "extra-allocs/op")
				b.ReportMetric(m.BytesPerOp(), "B/op")
				b.ReportMetric(m.BytesPerOp()-base.BytesPerOp(), "extra-B/op")
			})
		}
	}
}

// BenchmarkThroughput (item 3): 64 concurrent callers against a server
// that takes 5 ms per request, through mcpauth, through the serialized
// baseline (one lock across each round trip: the MCP Python SDK's
// OAuthClientProvider design) and through a bare http.Transport (the
// ceiling), in alternating rounds. One op is one round; ns/op is mcpauth's
// wall time per request.
func BenchmarkThroughput(b *testing.B) {
	const (
		p         = 64
		delay     = 5 * time.Millisecond
		mcpN      = 64 * 40 // 40 requests per caller
		serialN   = 128     // at 5 ms each, 0.65 s
		bareN     = mcpN
		perCaller = 2
	)
	wm := benchWarm(b, testworld.Options{DCR: true})
	srv, err := bench.StartServer(wm.Token, delay)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	redirect := map[string]string{bench.RSAddr(wm.World): srv.Addr}
	bases := []*http.Transport{bench.NewBase(2*p, redirect), bench.NewBase(2*p, redirect), bench.NewBase(2*p, redirect)}
	for _, t := range bases {
		b.Cleanup(t.CloseIdleConnections)
	}
	url := wm.World.MCPURL()
	mcp := benchPost(&http.Client{Transport: benchTransport(b, wm, bases[0], nil)}, url)
	serial := benchPost(&http.Client{Transport: &bench.Serialized{Base: bases[1], Token: wm.Token}}, url)
	bare := benchPost(&http.Client{Transport: &bench.Bearer{Base: bases[2], Token: wm.Token}}, url)
	for _, do := range []func(int) error{mcp, serial, bare} {
		if _, err := bench.Run(perCaller*p, p, do); err != nil {
			b.Fatal(err)
		}
	}
	var tm, ts, tb time.Duration
	var nm, ns, nb int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		order := []int{0, 1, 2}
		if i%2 == 1 {
			order = []int{2, 1, 0}
		}
		for _, k := range order {
			var d time.Duration
			var err error
			switch k {
			case 0:
				d, err = bench.Run(mcpN, p, mcp)
				tm, nm = tm+d, nm+mcpN
			case 1:
				d, err = bench.Run(serialN, p, serial)
				ts, ns = ts+d, ns+serialN
			case 2:
				d, err = bench.Run(bareN, p, bare)
				tb, nb = tb+d, nb+bareN
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	rate := func(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }
	b.ReportMetric(float64(tm.Nanoseconds())/float64(nm), "ns/op")
	b.ReportMetric(rate(nm, tm), "mcpauth-req/s")
	b.ReportMetric(rate(ns, ts), "serialized-req/s")
	b.ReportMetric(rate(nb, tb), "bare-req/s")
	b.ReportMetric(rate(nm, tm)/rate(ns, ts), "throughput-ratio")
	b.ReportMetric(rate(nm, tm)/rate(nb, tb), "of-bare")
	if r := srv.Refused.Load(); r != 0 {
		b.Fatalf("the server refused %d requests", r)
	}
}

// BenchmarkStormExpiry (item 4): 1,000 concurrent requests right after the
// access token expired, with a refresh token held and rotation on (a
// second redemption would revoke the grant). cause=clock: the client's
// clock is past expires_at, so requests park before they are sent;
// cause=401: the server expired every token, so all 1,000 are sent and
// refused. One op is one storm; before it, 1,000 concurrent requests with
// the valid token give the baseline latency. token-requests is the most
// /token requests any storm caused; added-p99-ms is the p99 latency of the
// storm minus that of the baseline, averaged over the storms.
func BenchmarkStormExpiry(b *testing.B) {
	const n = 1000
	for _, cause := range []string{"clock", "401"} {
		b.Run("cause="+cause, func(b *testing.B) {
			wm := benchWarm(b, testworld.Options{DCR: true, RotateRefresh: true})
			clock := &bench.OffsetClock{}
			base := bench.NewBase(n+16, nil)
			b.Cleanup(base.CloseIdleConnections)
			tr := benchTransport(b, wm, base, clock)
			do := benchPost(&http.Client{Transport: tr}, wm.World.MCPURL())
			if _, err := bench.Storm(n, do); err != nil { // open the connections
				b.Fatal(err)
			}
			var (
				maxTok, sumTok                  int
				addP99, addP50, p99Base, p99Exp time.Duration
				storms                          int
			)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				valid, err := bench.Storm(n, do)
				if err != nil {
					b.Fatalf("baseline storm: %v", err)
				}
				before := wm.World.Stats()
				if cause == "clock" {
					clock.JumpPast(tr.Session().Snapshot().Credential.ExpiresAt)
				} else {
					wm.World.ExpireAccessTokens()
				}
				expired, err := bench.Storm(n, do)
				if err != nil {
					b.Fatalf("storm after expiry: %v", err)
				}
				after := wm.World.Stats()
				tok := after.TokenRequests["refresh_token"] - before.TokenRequests["refresh_token"]
				if g := after.FamiliesRevoked - before.FamiliesRevoked; g != 0 {
					b.Errorf("a refresh token was redeemed twice: %d grants revoked", g)
				}
				maxTok = max(maxTok, tok)
				sumTok += tok
				pb, pe := bench.Percentile(valid, 0.99), bench.Percentile(expired, 0.99)
				p99Base += pb
				p99Exp += pe
				addP99 += pe - pb
				addP50 += bench.Percentile(expired, 0.5) - bench.Percentile(valid, 0.5)
				storms++
			}
			b.StopTimer()
			ms := func(d time.Duration) float64 { return float64(d) / float64(storms) / 1e6 }
			b.ReportMetric(float64(maxTok), "token-requests")
			b.ReportMetric(float64(sumTok)/float64(storms), "mean-token-requests")
			b.ReportMetric(ms(p99Base), "p99-valid-ms")
			b.ReportMetric(ms(p99Exp), "p99-expired-ms")
			b.ReportMetric(ms(addP99), "added-p99-ms")
			b.ReportMetric(ms(addP50), "added-p50-ms")
		})
	}
}

// BenchmarkStormFirstRequests (item 4): 100 concurrent first requests to a
// server that demands authorization (fresh world, empty store, DCR). One op
// is one storm; the counts are the most any storm caused. user-prompts
// counts the HeadlessUserAgent calls. client=go-sdk is the baseline: 100
// sessions of the official Go SDK sharing one AuthorizationCodeHandler
// connect at once.
func BenchmarkStormFirstRequests(b *testing.B) {
	const n = 100
	for _, client := range []string{"mcpauth", "go-sdk"} {
		b.Run("client="+client, func(b *testing.B) {
			var worst struct{ auth, reg, prompts, codes, prm, meta, unauth int }
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				w, err := testworld.Start(testworld.Options{DCR: true})
				if err != nil {
					b.Fatal(err)
				}
				base := bench.NewBase(n+16, nil)
				prompts, err := benchFirstStorm(b, client, w, base, n)
				base.CloseIdleConnections()
				if err != nil {
					w.Close()
					b.Fatalf("storm: %v", err)
				}
				st := w.Stats()
				w.Close()
				worst.auth = max(worst.auth, st.Authorizations)
				worst.reg = max(worst.reg, st.Registrations)
				worst.prompts = max(worst.prompts, prompts)
				worst.codes = max(worst.codes, st.TokenRequests["authorization_code"])
				worst.prm = max(worst.prm, st.PRMRequests)
				worst.meta = max(worst.meta, st.MetadataRequests)
				worst.unauth = max(worst.unauth, st.Unauthorized)
			}
			b.ReportMetric(float64(worst.auth), "authorizations")
			b.ReportMetric(float64(worst.reg), "registrations")
			b.ReportMetric(float64(worst.prompts), "user-prompts")
			b.ReportMetric(float64(worst.codes), "code-exchanges")
			b.ReportMetric(float64(worst.prm), "prm-requests")
			b.ReportMetric(float64(worst.meta), "metadata-requests")
			b.ReportMetric(float64(worst.unauth), "401s")
		})
	}
}

// benchFirstStorm runs n concurrent first requests (timed) and returns the
// user prompts they caused.
func benchFirstStorm(b *testing.B, client string, w *testworld.World, base *http.Transport, n int) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), bench.Timeout)
	defer cancel()
	switch client {
	case "mcpauth":
		agent := &bench.CountingAgent{Agent: httpdriver.HeadlessUserAgent{}}
		tr, err := httpdriver.NewTransport(ctx, bench.Config(w), httpdriver.Options{Base: base, UserAgent: agent})
		if err != nil {
			return 0, err
		}
		defer tr.Close()
		do := benchPost(&http.Client{Transport: tr}, w.MCPURL())
		b.StartTimer()
		_, err = bench.Storm(n, do)
		b.StopTimer()
		return int(agent.Prompts.Load()), err
	case "go-sdk":
		g := bench.NewGoSDK()
		hc := &http.Client{Transport: base}
		h, err := g.Handler(hc, false)
		if err != nil {
			return 0, err
		}
		var mu sync.Mutex
		var sessions []bench.Session
		b.StartTimer()
		_, err = bench.Storm(n, func(int) error {
			s, err := bench.ConnectGoSDK(ctx, w, h, hc, base)
			if err != nil {
				return err
			}
			mu.Lock()
			sessions = append(sessions, s)
			mu.Unlock()
			return nil
		})
		b.StopTimer()
		for _, s := range sessions {
			s.Close()
		}
		return g.Prompts(), err
	}
	return 0, fmt.Errorf("unknown client %q", client)
}

// BenchmarkRoundTrips (item 5): the HTTP requests each library makes for
// a cold start, a restart with a valid stored token, a restart with an
// expired one, and a step-up, against the same strict in-repo servers.
// Each case is a whole MCP session (initialize, then one tools/call of
// echo), or for step-up the one tools/call of a tool that needs a scope
// not yet granted. http-requests counts every request the servers saw for
// the case; auth-requests those that were not useful MCP work (discovery,
// registration, authorization, token, and every 401 or 403). A case a
// library cannot do is reported with ok=0 and a NOTE saying why.
func BenchmarkRoundTrips(b *testing.B) {
	for _, c := range []string{"cold", "warm", "expired", "step-up"} {
		for _, lib := range []string{"mcpauth", "go-sdk", "mcp-go"} {
			b.Run("case="+c+"/client="+lib, func(b *testing.B) {
				var r bench.RoundTrips
				for i := 0; i < b.N; i++ {
					r = bench.RunRoundTrips(c, lib)
				}
				if r.Setup != nil {
					b.Fatalf("setup: %v", r.Setup)
				}
				b.ReportMetric(float64(r.Counts.HTTP), "http-requests")
				b.ReportMetric(float64(r.Counts.Auth()), "auth-requests")
				b.ReportMetric(float64(r.Counts.Discovery), "discovery")
				b.ReportMetric(float64(r.Counts.Registrations), "registrations")
				b.ReportMetric(float64(r.Counts.Authorizations), "authorizations")
				b.ReportMetric(float64(r.Counts.TokenRequests), "token-requests")
				b.ReportMetric(float64(r.Counts.Refused), "refused")
				b.ReportMetric(float64(r.Prompts), "user-prompts")
				ok := 1.0
				if r.Err != nil {
					ok = 0
					b.Logf("NOTE: %s", r.Err)
				}
				b.ReportMetric(ok, "ok")
			})
		}
	}
}
