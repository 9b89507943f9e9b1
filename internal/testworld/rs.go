package testworld

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
)

// resourceServer is the MCP server behind a bearer-token guard (RFC 6750,
// MCP 2025-11-25 "Authorization").
type resourceServer struct {
	w       *World
	origin  string
	mcpURL  string
	prmPath string // "" with PRMNone
	prmURL  string
	mcp     http.Handler
}

func newResourceServer(w *World, origin string) *resourceServer {
	rs := &resourceServer{w: w, origin: origin, mcpURL: origin + "/mcp", prmPath: prmPath(w.opts.PRM), mcp: newMCPHandler()}
	if rs.prmPath != "" {
		rs.prmURL = origin + rs.prmPath
	}
	return rs
}

func (rs *resourceServer) routes(mux *http.ServeMux) {
	mux.Handle("/mcp", rs.guard(rs.mcp))
	if rs.prmPath != "" {
		mux.HandleFunc("GET "+rs.prmPath, rs.handlePRM)
	}
}

// maxMCPBody bounds the JSON-RPC body the guard reads to check tool scopes.
const maxMCPBody = 4 << 20

// guard admits a request only with a live access token of the current AS
// issued for this resource (RFC 8707 audience), and a tools/call only when
// the token carries the tool's scope.
func (rs *resourceServer) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.w.stats.add(func(s *Stats) { s.ProtectedRequests++ })

		// MCP 2025-11-25: access tokens MUST NOT be in the query string.
		if r.URL.Query().Has("access_token") {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_request", error_description="access token in URI"`)
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
			return
		}
		tok, present, wellFormed := bearerToken(r)
		if rs.w.opts.DPoP {
			var ok bool
			if tok, present, wellFormed, ok = rs.dpopCredential(w, r, tok, present, wellFormed); !ok {
				return // answered (dpop.go)
			}
		}
		if !present {
			// RFC 6750 §3.1: no error code when no credentials were sent.
			rs.unauthorized(w, "", "")
			return
		}
		if !wellFormed {
			rs.unauthorized(w, "invalid_token", "malformed Authorization header")
			return
		}
		scope, reason, ok := rs.w.currentAS().introspect(tok, rs.mcpURL)
		if !ok {
			rs.unauthorized(w, "invalid_token", reason)
			return
		}

		if r.Method == http.MethodPost && len(rs.w.opts.ToolScopes) > 0 {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMCPBody))
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
					return
				}
				http.Error(w, "cannot read body", http.StatusBadRequest)
				return
			}
			// Hand the SDK an untouched body.
			r.Body = io.NopCloser(bytes.NewReader(body))
			for _, name := range toolCalls(body) {
				if need := rs.w.opts.ToolScopes[name]; need != "" && !slices.Contains(scope, need) {
					rs.forbidden(w, need)
					return
				}
			}
		}
		rs.w.stats.add(func(s *Stats) { s.Authorized++ })
		next.ServeHTTP(w, r)
	})
}

// unauthorized answers 401 with the challenge the PRM mode calls for:
// resource_metadata only with PRMHeader (RFC 9728 §5.1), scope when
// configured (RFC 6750 §3).
func (rs *resourceServer) unauthorized(w http.ResponseWriter, errCode, desc string) {
	rs.w.stats.add(func(s *Stats) { s.Unauthorized++ })
	var attrs []string
	if errCode != "" {
		attrs = append(attrs, param6750("error", errCode), param6750("error_description", desc))
	}
	if rs.w.opts.PRM == PRMHeader {
		attrs = append(attrs, param6750("resource_metadata", rs.prmURL))
	}
	if s := rs.w.opts.ChallengeScope; s != "" {
		attrs = append(attrs, param6750("scope", s))
	}
	w.Header().Set("WWW-Authenticate", challenge(attrs))
	if rs.w.opts.DPoP {
		w.Header().Add("WWW-Authenticate", `DPoP algs="ES256"`) // RFC 9449 §7.1
	}
	body := map[string]string{"error": "unauthorized"}
	if errCode != "" {
		body = map[string]string{"error": errCode, "error_description": desc}
	}
	writeJSON(w, http.StatusUnauthorized, body)
}

// forbidden answers 403 insufficient_scope naming the scope the call needs
// (RFC 6750 §3.1, MCP 2025-11-25 "Scope Challenge Handling").
func (rs *resourceServer) forbidden(w http.ResponseWriter, need string) {
	rs.w.stats.add(func(s *Stats) { s.Forbidden++ })
	attrs := []string{param6750("error", "insufficient_scope"), param6750("scope", need)}
	if rs.w.opts.PRM == PRMHeader {
		attrs = append(attrs, param6750("resource_metadata", rs.prmURL))
	}
	attrs = append(attrs, param6750("error_description", "the tool requires scope "+need))
	w.Header().Set("WWW-Authenticate", challenge(attrs))
	writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "scope": need})
}

func challenge(attrs []string) string {
	if len(attrs) == 0 {
		return "Bearer"
	}
	return "Bearer " + strings.Join(attrs, ", ")
}

// param6750 renders name="value" as an RFC 9110 quoted-string.
func param6750(name, value string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return name + `="` + r.Replace(value) + `"`
}

// bearerToken extracts an RFC 6750 §2.1 bearer token. present: an
// Authorization header was sent at all; wellFormed: it is exactly one
// "Bearer <b64token>".
func bearerToken(r *http.Request) (tok string, present, wellFormed bool) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return "", false, false
	}
	if len(hs) > 1 {
		return "", true, false
	}
	scheme, tok, ok := strings.Cut(hs[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t,\"") {
		return "", true, false
	}
	return tok, true, true
}

// toolCalls returns the tool names of every tools/call in a JSON-RPC message
// or batch. Anything unparsable yields nothing: the SDK rejects it properly.
func toolCalls(body []byte) []string {
	type call struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	var msgs []call
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var raws []json.RawMessage
		if json.Unmarshal(trimmed, &raws) != nil {
			return nil
		}
		for _, raw := range raws {
			var c call
			if json.Unmarshal(raw, &c) == nil {
				msgs = append(msgs, c)
			}
		}
	} else {
		var c call
		if json.Unmarshal(trimmed, &c) != nil {
			return nil
		}
		msgs = append(msgs, c)
	}
	var names []string
	for _, m := range msgs {
		if m.Method == "tools/call" {
			names = append(names, m.Params.Name)
		}
	}
	return names
}
