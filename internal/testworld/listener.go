package testworld

import (
	"bufio"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// listener is one loopback HTTP server. We do not use net/http/httptest: it
// registers a global flag, which would leak into the demo command's flags.
type listener struct {
	name    string // "rs", "as", "rs+as": only for the request log
	origin  string // http://127.0.0.1:port
	srv     *http.Server
	done    chan struct{}
	mu      sync.Mutex
	closing bool
	active  sync.WaitGroup // handlers in flight, so close can wait for them
}

// listen binds 127.0.0.1:0 and starts serving h, wrapped in the request
// counter/logger, in the background.
func listen(name string, h http.Handler, st *stats, logf func(string, ...any)) (*listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &listener{
		name:   name,
		origin: "http://" + ln.Addr().String(),
		done:   make(chan struct{}),
	}
	l.srv = &http.Server{
		Handler:           l.track(observe(name, h, st, logf)),
		ReadHeaderTimeout: 10 * time.Second,
		// Connection-level noise (client hang-ups during fault tests) is
		// not worth a line on stderr; our own request log is Logf.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			if logf != nil {
				logf("testworld: %s: serve: %v", name, err)
			}
		}
	}()
	return l, nil
}

// close cuts every connection at once and waits for the handlers to return
// (their request contexts are cancelled, so a Delay fault ends early).
// Not Shutdown: it waits up to 5s for connections that were dialled but
// never used, which clients open speculatively under load.
func (l *listener) close() {
	l.mu.Lock()
	l.closing = true // no Add after this, so Wait below is well-defined
	l.mu.Unlock()
	_ = l.srv.Close()
	<-l.done
	l.active.Wait()
}

func (l *listener) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			return // the connection is being cut anyway
		}
		l.active.Add(1)
		l.mu.Unlock()
		defer l.active.Done()
		h.ServeHTTP(w, r)
	})
}

// observe counts "METHOD /path" and logs method, path and status. It never
// looks at the query, headers or body: they carry codes, tokens and secrets.
func observe(name string, h http.Handler, st *stats, logf func(string, ...any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + r.URL.Path
		st.add(func(s *Stats) { s.Paths[key]++ })
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if logf != nil {
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			logf("testworld: %s %s %s -> %d", name, r.Method, r.URL.Path, status)
		}
	})
}

// statusRecorder remembers the status code. It forwards Flush and exposes
// Unwrap so http.ResponseController and the MCP SDK's streaming still work.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
