package pgstore_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/driver/pgstore"
	"github.com/mcpauth/mcpauth/httpdriver"
	"github.com/mcpauth/mcpauth/internal/pgtest"
	"github.com/mcpauth/mcpauth/internal/testworld"
)

// FleetDurationEnv overrides how long TestFleet's replicas make requests
// (a Go duration). The default keeps `make test` short; the full
// run is MCPAUTH_FLEET_DURATION=30s.
const FleetDurationEnv = "MCPAUTH_FLEET_DURATION"

const (
	fleetReplicas   = 8
	fleetGoroutines = 16
	fleetAccessTTL  = 2 * time.Second
	fleetMargin     = 500 * time.Millisecond // refresh this long before expiry
	fleetLeaseTTL   = 5 * time.Second
	defaultFleetRun = 8 * time.Second
)

// TestFleet: 8 processes, each with one transport on the PostgreSQL store
// and 16 goroutines making MCP requests through it, against a world with
// rotating refresh tokens and 2-second access tokens. The parent signs in
// once beforehand, so the replicas start warm from the database. Across
// the fleet: no invalid_grant, exactly one refresh per credential
// generation (each refresh grant stored exactly one new version), a
// refresh cadence of one per access-token lifetime minus the refresh
// margin, no authorization or registration by any replica, and every
// request answered 200.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster and 8 processes")
	}
	duration := defaultFleetRun
	if v := os.Getenv(FleetDurationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", FleetDurationEnv, err)
		}
		duration = d
	}
	dsn := pgtest.Start(t)
	w := startWorld(t, testworld.Options{DCR: true, RotateRefresh: true, AccessTTL: fleetAccessTTL})
	preauthorize(t, dsn, w, fleetMargin)
	before := w.Stats()

	// The observer records when each credential version appears.
	obs := openStore(t, dsn, pgstore.Config{})
	firstExpiry := storedExpiry(t, obs, w.MCPURL())
	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	ch, err := obs.Watch(wctx, "tokens:"+w.MCPURL())
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	type seen struct {
		version uint64
		at      time.Time
	}
	var (
		timelineMu sync.Mutex
		timeline   []seen
	)
	go func() {
		for r := range ch {
			timelineMu.Lock()
			timeline = append(timeline, seen{r.Version, time.Now()})
			timelineMu.Unlock()
		}
	}()

	spec := replicaSpec{dsn: dsn, mcpURL: w.MCPURL(), duration: duration, goroutines: fleetGoroutines, leaseTTL: fleetLeaseTTL, margin: fleetMargin}
	rs := make([]*replica, fleetReplicas)
	for i := range rs {
		rs[i] = startReplica(t, spec)
	}
	waitReady(t, rs, 60*time.Second)
	start := time.Now()
	for _, r := range rs {
		r.send("go")
	}
	results := make([]replicaResult, len(rs))
	for i, r := range rs {
		results[i] = r.collect(t, duration+60*time.Second)
	}
	// Settle: wait for a moment with no refresh in flight (every refresh
	// grant counted by the world has been stored), and read the counters
	// then. Refreshes are a period apart, so this takes milliseconds.
	var (
		st   testworld.Stats
		last uint64
		end  time.Time
	)
	for settle := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st, last, end = w.Stats(), tokenVersion(t, obs, w.MCPURL()), time.Now()
		if uint64(st.TokenRequests["refresh_token"]-before.TokenRequests["refresh_token"]) == last-1 || time.Now().After(settle) {
			break
		}
	}
	for _, r := range rs {
		r.stdin.Close()
	}
	for _, r := range rs {
		<-r.done
	}
	stopWatch()

	var total replicaResult
	total.Statuses = map[string]int{}
	perReplica := make([]int, len(results))
	for i, res := range results {
		total.Requests += res.Requests
		total.OK += res.OK
		total.Errors += res.Errors
		total.Refreshes += res.Refreshes
		total.Other += res.Other
		for k, v := range res.Statuses {
			total.Statuses[k] += v
		}
		if total.FirstError == "" {
			total.FirstError = res.FirstError
		}
		perReplica[i] = res.Refreshes
	}
	refreshes := st.TokenRequests["refresh_token"] - before.TokenRequests["refresh_token"]

	// Credential generations due within the run, by the clock: the
	// first comes due at its expiry minus the margin, each next one a
	// lifetime minus the margin after the refresh before it. Each
	// refresh lands a little after it is due (timer, lease, round trip,
	// more under -race on a busy machine), so the slow count allows
	// refreshLag per generation.
	const refreshLag = 100 * time.Millisecond
	period := fleetAccessTTL - fleetMargin
	dueBy := func(p time.Duration) int {
		if end.Before(firstExpiry.Add(-fleetMargin)) {
			return 0
		}
		return int(end.Sub(firstExpiry.Add(-fleetMargin))/p) + 1
	}
	dueFast, dueSlow := dueBy(period), dueBy(period+refreshLag)
	lastExpiry := storedExpiry(t, obs, w.MCPURL())
	timelineMu.Lock()
	var maxGap time.Duration
	for i := 1; i < len(timeline); i++ {
		maxGap = max(maxGap, timeline[i].at.Sub(timeline[i-1].at))
	}
	versionsSeen := len(timeline)
	timelineMu.Unlock()

	t.Logf("fleet: %d replicas x %d goroutines for %v (wall %v from go to the counters)", fleetReplicas, fleetGoroutines, duration, end.Sub(start).Round(time.Millisecond))
	t.Logf("requests %d, answered 200 %d, other statuses %v, unanswered %d (%.0f req/s)", total.Requests, total.OK, total.Statuses, total.Errors, float64(total.Requests)/duration.Seconds())
	t.Logf("refresh grants %d (sent by replica, until its result: %v), generations due by the clock %d..%d, stored versions 1..%d, invalid_grant %d, families revoked %d, 401s %d, longest gap between versions %v",
		refreshes, perReplica, dueSlow, dueFast, last, st.InvalidGrants, st.FamiliesRevoked, st.Unauthorized-before.Unauthorized, maxGap.Round(time.Millisecond))

	if st.InvalidGrants != 0 || st.FamiliesRevoked != 0 {
		t.Errorf("invalid_grant %d, families revoked %d: want 0 (two replicas redeemed one refresh token)", st.InvalidGrants, st.FamiliesRevoked)
	}
	if st.Authorizations != 1 || st.Registrations != 1 || st.TokenRequests["authorization_code"] != 1 || total.Other != 0 {
		t.Errorf("authorizations %d, registrations %d, code grants %d, replica auxiliary requests other than refresh %d: want 1, 1, 1, 0 (only the parent signs in)",
			st.Authorizations, st.Registrations, st.TokenRequests["authorization_code"], total.Other)
	}
	// Exactly one token request per expiry. Generations 1..last-1 each
	// came due and were refreshed: every refresh grant became exactly one
	// stored version, and none was redeemed twice (under rotation that is
	// the invalid_grant above). Generation last has not come due yet,
	// give or take the lag of a refresh that is due but not yet sent.
	if uint64(refreshes) != last-1 {
		t.Errorf("refresh grants %d, versions stored after the first %d: want them equal", refreshes, last-1)
	}
	if due := lastExpiry.Add(-fleetMargin); due.Before(end.Add(-5 * refreshLag)) {
		t.Errorf("the last credential (version %d) came due at %v, before the end at %v, and was not refreshed",
			last, due.Format(time.StampMilli), end.Format(time.StampMilli))
	}
	// And one per lifetime by the clock: the run's ends fall anywhere
	// within a period, so allow one either way.
	if refreshes < dueSlow-1 || refreshes > dueFast+1 {
		t.Errorf("refresh grants %d, want %d..%d (one per %v from the first due time %v to the end at %v, ±1)",
			refreshes, dueSlow-1, dueFast+1, period, firstExpiry.Add(-fleetMargin).Format(time.StampMilli), end.Format(time.StampMilli))
	}
	if total.Errors != 0 || total.OK != total.Requests || total.Requests == 0 {
		t.Errorf("requests %d: 200 %d, other statuses %v, unanswered %d (first error: %s): want every request answered 200",
			total.Requests, total.OK, total.Statuses, total.Errors, total.FirstError)
	}
	if versionsSeen < int(last)-1 {
		t.Logf("the observer saw %d of %d versions (Watch may skip some)", versionsSeen, last)
	}
}

// TestHelperReplica is one replica of a fleet when run as a helper
// process (see startReplica); otherwise it skips.
func TestHelperReplica(t *testing.T) {
	if os.Getenv(helperEnv) != "replica" {
		t.Skip("helper process for the fleet tests")
	}
	code := runReplica()
	os.Exit(code)
}

// syncWriter serializes writes to stdout.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func runReplica() int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "replica %d: "+format+"\n", append([]any{os.Getpid()}, args...)...)
		return 2
	}
	duration, err1 := time.ParseDuration(os.Getenv(durationEnv))
	leaseTTL, err2 := time.ParseDuration(os.Getenv(leaseTTLEnv))
	margin, err3 := time.ParseDuration(os.Getenv(marginEnv))
	goroutines, err4 := strconv.Atoi(os.Getenv(goroutinesEnv))
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return fail("bad parameters")
	}
	mcpURL := os.Getenv(mcpURLEnv)
	ctx := context.Background()
	store, err := pgstore.OpenConfig(ctx, os.Getenv(dsnEnv), pgstore.Config{LeaseTTL: leaseTTL})
	if err != nil {
		return fail("open: %v", err)
	}
	defer store.Close()
	out := &syncWriter{w: os.Stdout}
	res := &replicaResult{PID: os.Getpid(), Statuses: map[string]int{}}
	req := &markingRequester{inner: &httpdriver.Requester{}, out: out, res: res, hangFile: os.Getenv(hangFileEnv)}
	tr, base, err := newTransport(ctx, worldConfig(mcpURL, margin), store, req)
	if err != nil {
		return fail("transport: %v", err)
	}
	defer tr.Close()
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	fmt.Fprintln(out, "ready")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "go" {
		return fail("no go")
	}
	stop, eof := make(chan struct{}), make(chan struct{})
	go func() {
		stopped := false
		for in.Scan() {
			if in.Text() == "stop" && !stopped {
				close(stop)
				stopped = true
			}
		}
		if !stopped {
			close(stop)
		}
		close(eof)
	}()
	running := func() bool {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	deadline := time.Now().Add(duration)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var requests, ok, errs int
			statuses := map[string]int{}
			first := ""
			for i := 0; time.Now().Before(deadline) && running(); i++ {
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				code, err := postMCP(rctx, client, mcpURL, g*1_000_000+i)
				cancel()
				requests++
				switch {
				case err != nil:
					errs++
					if first == "" {
						first = err.Error()
					}
				case code == http.StatusOK:
					ok++
				default:
					statuses[strconv.Itoa(code)]++
				}
			}
			mu.Lock()
			res.Requests += requests
			res.OK += ok
			res.Errors += errs
			for k, v := range statuses {
				res.Statuses[k] += v
			}
			if res.FirstError == "" {
				res.FirstError = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	req.mu.Lock()
	b, _ := json.Marshal(res)
	req.mu.Unlock()
	fmt.Fprintf(out, "result %s\n", b)
	// The transport keeps refreshing ahead of expiry until the parent,
	// having read the counters, closes stdin: a replica that shut down
	// in the middle of a refresh could lose the rotated refresh token.
	<-eof
	return 0
}
