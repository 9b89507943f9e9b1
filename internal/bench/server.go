package bench

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Server is a loopback resource server with a fixed answer: 200 and a small
// JSON-RPC result for a request carrying exactly "Bearer <Token>", 401
// otherwise, after Delay. It stands for "a server that takes 5 ms per
// request" (issue 6, item 3) and, with no delay, for the cheapest possible
// server, where a client's overhead shows the most.
type Server struct {
	Addr  string // host:port it listens on
	token string
	delay time.Duration
	srv   *http.Server
	done  chan struct{}

	// Requests and Refused count the requests served and refused.
	Requests, Refused atomic.Int64
}

var fixedAnswer = []byte(`{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}`)

// StartServer listens on 127.0.0.1:0.
func StartServer(token string, delay time.Duration) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), token: "Bearer " + token, delay: delay, done: make(chan struct{})}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ErrorLog: log.New(io.Discard, "", 0)}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("bench: server: %v", err)
		}
	}()
	return s, nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if s.delay > 0 {
		t := time.NewTimer(s.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	s.Requests.Add(1)
	if r.Header.Get("Authorization") != s.token {
		s.Refused.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(fixedAnswer)
}

// Close stops the server and cuts its connections.
func (s *Server) Close() {
	_ = s.srv.Close()
	<-s.done
}
