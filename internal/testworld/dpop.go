package testworld

// DPoP (RFC 9449). The AS checks the proof sent to /token and binds what it
// issues to the proof's key (token_type DPoP; the binding, cnf.jkt, is kept
// in the AS's memory, which the RS shares). The RS requires the DPoP scheme
// for a bound token, with a fresh proof per request carrying ath and made
// by the bound key. Either may require its server nonce.
//
// Deliberate strictness: an htu with a query or a fragment is refused (the
// RFC tells servers to ignore them, and clients to leave them out — we want
// to see a client that does not); every jti is accepted once per server,
// whatever the request.

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// proofWindow is how far a proof's iat may be from the server's clock.
const proofWindow = 60 * time.Second

// DPoPProof is one proof a server checked. It holds no secret (ath is a
// hash).
type DPoPProof struct {
	// Server is "as" or "rs".
	Server string
	// Method and URL are the request's (URL without query).
	Method, URL string
	// Typ and Alg are the JOSE header's; JKT is the RFC 7638 thumbprint of
	// its jwk (empty when the proof did not parse).
	Typ, Alg, JKT string
	// The claims (RFC 9449 §4.2).
	JTI, HTM, HTU, Nonce, ATH string
	IAT                       int64
	// Outcome is "accepted", "use_dpop_nonce", or why it was refused.
	Outcome string
}

// Outcomes of DPoPProof.
const (
	ProofAccepted = "accepted"
	ProofNonce    = "use_dpop_nonce"
)

// DPoPProofs returns every proof the servers checked, in order.
func (w *World) DPoPProofs() []DPoPProof {
	w.ext.mu.Lock()
	defer w.ext.mu.Unlock()
	return slices.Clone(w.ext.proofs)
}

// RotateDPoPNonces gives the AS and the RS new nonces: a proof with the old
// one is answered use_dpop_nonce.
func (w *World) RotateDPoPNonces() {
	for _, as := range w.allAS() {
		as.ext.dpop.rotate()
	}
	w.ext.rsDPoP.rotate()
}

// dpopServer is one server's proof state: its nonce and the jti it saw.
type dpopServer struct {
	mu    sync.Mutex
	nonce string
	jtis  map[string]time.Time // jti -> when seen
}

func (d *dpopServer) rotate() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nonce != "" {
		d.nonce = newSecret("nonce_")
	}
}

// fresh records jti and reports whether it is new. A jti is forgotten once
// no proof carrying it could pass the iat window any more.
func (d *dpopServer) fresh(jti string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.jtis == nil {
		d.jtis = map[string]time.Time{}
	}
	for k, seen := range d.jtis {
		if now.Sub(seen) > 4*proofWindow {
			delete(d.jtis, k)
		}
	}
	if _, seen := d.jtis[jti]; seen {
		return false
	}
	d.jtis[jti] = now
	return true
}

// checkNonce reports whether got is the server's nonce, and the nonce to
// send. A stubborn server makes a new one every time and accepts none.
func (d *dpopServer) checkNonce(got string, stubborn bool) (bool, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nonce == "" || stubborn {
		d.nonce = newSecret("nonce_")
		return false, d.nonce
	}
	return got == d.nonce, d.nonce
}

type proofClaims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   *int64 `json:"iat"`
	Nonce string `json:"nonce"`
	ATH   string `json:"ath"`
}

// checkProof checks what a proof says on its own (RFC 9449 §4.3, checks 1
// to 10 but the nonce and the jti's freshness): one compact JWS, typ
// dpop+jwt, alg ES256, a public jwk that verifies the signature, jti, htm,
// htu (normalised), iat within the window, and ath when a token comes with
// it. reason is "" when it passes; it is fixed text.
func checkProof(raw, method, target, accessToken string, now time.Time) (rec DPoPProof, reason string) {
	rec.Method, rec.URL = method, target
	hdr, _, err := peekJWT(raw)
	if err != nil {
		return rec, "not a compact JWS"
	}
	rec.Typ, rec.Alg = hdr.Typ, hdr.Alg
	switch {
	case hdr.Typ != "dpop+jwt":
		return rec, "typ is not dpop+jwt"
	case hdr.Alg != "ES256":
		return rec, "alg is not ES256"
	case len(hdr.JWK) == 0:
		return rec, "no jwk in the header"
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(hdr.JWK, &members) != nil {
		return rec, "jwk is not an object"
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
		if _, ok := members[private]; ok {
			return rec, "jwk holds private key material"
		}
	}
	obj, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(obj.Signatures) != 1 {
		return rec, "not a compact JWS"
	}
	key := obj.Signatures[0].Protected.JSONWebKey
	if key == nil || !key.IsPublic() || !key.Valid() {
		return rec, "no valid public jwk"
	}
	if tp, err := key.Thumbprint(crypto.SHA256); err == nil {
		rec.JKT = base64.RawURLEncoding.EncodeToString(tp)
	}
	payload, err := obj.Verify(key)
	if err != nil {
		return rec, "signature does not verify"
	}
	var c proofClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return rec, "claims are not a JSON object"
	}
	rec.JTI, rec.HTM, rec.HTU, rec.Nonce, rec.ATH = c.JTI, c.HTM, c.HTU, c.Nonce, c.ATH
	if c.IAT != nil {
		rec.IAT = *c.IAT
	}
	want, _ := normalizeHTU(target)
	got, herr := normalizeHTU(c.HTU)
	switch {
	case c.JTI == "":
		return rec, "no jti"
	case c.HTM != method:
		return rec, "htm is not the request method"
	case herr != nil:
		return rec, herr.Error()
	case got != want:
		return rec, "htu is not the request URI"
	case c.IAT == nil:
		return rec, "no iat"
	case time.Unix(*c.IAT, 0).Before(now.Add(-proofWindow)) || time.Unix(*c.IAT, 0).After(now.Add(proofWindow)):
		return rec, "iat outside the acceptance window"
	case accessToken != "" && c.ATH != tokenHash(accessToken):
		return rec, "ath is not the hash of the access token"
	}
	return rec, ""
}

// tokenHash is ath: base64url(SHA-256(token)) (RFC 9449 §4.2).
func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

type htuError string

func (e htuError) Error() string { return string(e) }

// normalizeHTU is the comparison form of an htu (RFC 9449 §4.3 check 9,
// RFC 3986 §6.2.2–6.2.3): scheme and host lowercased, default port
// dropped, empty path as "/". A query or fragment is refused.
func normalizeHTU(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.User != nil:
		return "", htuError("htu is not an absolute URI")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(raw, "?#"):
		return "", htuError("htu has a query or fragment")
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

type proofVerdict int

const (
	verdictAccepted proofVerdict = iota
	verdictNonce
	verdictRefused
)

// judgeProof applies a server's state to a proof that checkProof judged:
// the jti must be new, and the nonce the server's when it requires one. It
// counts and logs the outcome, and returns the nonce to send (if any) and
// the outcome.
func (w *World) judgeProof(d *dpopServer, rec DPoPProof, reason string, needNonce bool) (proofVerdict, string, string) {
	verdict, nonce := verdictAccepted, ""
	switch {
	case reason != "":
		verdict = verdictRefused
	case !d.fresh(rec.JTI, w.now()):
		verdict, reason = verdictRefused, "jti already used"
		w.stats.add(func(s *Stats) { s.JTIReplays++ })
	case needNonce:
		var ok bool
		ok, nonce = d.checkNonce(rec.Nonce, w.opts.DPoPStubbornNonce)
		if !ok {
			verdict, reason = verdictNonce, ProofNonce
		}
	}
	switch verdict {
	case verdictAccepted:
		rec.Outcome = ProofAccepted
		w.stats.add(func(s *Stats) { s.DPoPProofsAccepted++ })
	case verdictNonce:
		rec.Outcome = reason
		w.stats.add(func(s *Stats) {
			if rec.Server == "as" {
				s.ASNonceChallenges++
			} else {
				s.RSNonceChallenges++
			}
		})
	default:
		rec.Outcome = reason
		w.stats.add(func(s *Stats) { s.DPoPProofsRefused++ })
	}
	w.ext.mu.Lock()
	w.ext.proofs = append(w.ext.proofs, rec)
	w.ext.mu.Unlock()
	return verdict, nonce, rec.Outcome
}

func errInvalidDPoPProof(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_dpop_proof", desc: desc}
}

// tokenProof checks the proof of a token request (RFC 9449 §5) and returns
// the thumbprint to bind the tokens to: "" when DPoP is off or no proof was
// sent (the tokens are then Bearer).
func (as *authServer) tokenProof(w http.ResponseWriter, r *http.Request) (string, *oauthError) {
	if !as.opts.DPoP {
		return "", nil
	}
	proofs := r.Header.Values("DPoP")
	target := as.origin + r.URL.EscapedPath()
	switch len(proofs) {
	case 0:
		return "", nil
	case 1:
	default:
		as.w.judgeProof(&as.ext.dpop, DPoPProof{Server: "as", Method: r.Method, URL: target}, "more than one DPoP header", false)
		return "", errInvalidDPoPProof("more than one DPoP header")
	}
	rec, reason := checkProof(proofs[0], r.Method, target, "", as.w.now())
	rec.Server = "as"
	verdict, nonce, outcome := as.w.judgeProof(&as.ext.dpop, rec, reason, as.opts.DPoPNonceAS)
	if nonce != "" {
		w.Header().Set("DPoP-Nonce", nonce)
	}
	switch verdict {
	case verdictNonce:
		return "", &oauthError{status: http.StatusBadRequest, code: "use_dpop_nonce", desc: "the authorization server requires a nonce in the DPoP proof"}
	case verdictRefused:
		return "", errInvalidDPoPProof(outcome)
	}
	return rec.JKT, nil
}

// dpopCredential is the RS's DPoP check, before the bearer check. It passes
// the access token on (ok) or has answered the request itself. A bound
// token sent as Bearer is refused (RFC 9449 §7.2); a DPoP credential needs
// exactly one proof by the bound key, with ath, fresh, and the RS nonce
// when required.
func (rs *resourceServer) dpopCredential(w http.ResponseWriter, r *http.Request, tok string, present, wellFormed bool) (string, bool, bool, bool) {
	hs := r.Header.Values("Authorization")
	if len(hs) != 1 {
		return tok, present, wellFormed, true
	}
	scheme, cred, _ := strings.Cut(hs[0], " ")
	as := rs.w.currentAS()
	if strings.EqualFold(scheme, "Bearer") {
		if wellFormed && as.boundKey(tok) != "" {
			rs.dpopUnauthorized(w, "invalid_token", "a DPoP-bound token must be sent with the DPoP scheme")
			return "", true, false, false
		}
		return tok, present, wellFormed, true
	}
	if !strings.EqualFold(scheme, "DPoP") {
		return tok, present, wellFormed, true
	}
	if cred == "" || strings.ContainsAny(cred, " \t,\"") {
		rs.dpopUnauthorized(w, "invalid_token", "malformed DPoP credentials")
		return "", true, false, false
	}
	target := rs.origin + r.URL.EscapedPath()
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		rs.w.judgeProof(&rs.w.ext.rsDPoP, DPoPProof{Server: "rs", Method: r.Method, URL: target}, "exactly one DPoP proof is required", false)
		rs.dpopUnauthorized(w, "invalid_dpop_proof", "exactly one DPoP proof is required")
		return "", true, false, false
	}
	rec, reason := checkProof(proofs[0], r.Method, target, cred, rs.w.now())
	rec.Server = "rs"
	code := "invalid_dpop_proof"
	if reason == "" && as.tokenResource(cred) != "" {
		switch bound := as.boundKey(cred); {
		case bound == "":
			reason, code = "the token is not bound to a DPoP key", "invalid_token"
		case bound != rec.JKT:
			reason, code = "the proof is not made by the key the token is bound to", "invalid_token"
		}
	}
	verdict, nonce, outcome := rs.w.judgeProof(&rs.w.ext.rsDPoP, rec, reason, rs.w.opts.DPoPNonceRS)
	switch verdict {
	case verdictNonce:
		w.Header().Set("DPoP-Nonce", nonce)
		rs.dpopUnauthorized(w, "use_dpop_nonce", "the resource server requires a nonce in the DPoP proof")
		return "", true, false, false
	case verdictRefused:
		rs.dpopUnauthorized(w, code, outcome)
		return "", true, false, false
	}
	return cred, true, true, true
}

// dpopUnauthorized answers 401 with a DPoP challenge (RFC 9449 §7.1).
func (rs *resourceServer) dpopUnauthorized(w http.ResponseWriter, code, desc string) {
	rs.w.stats.add(func(s *Stats) { s.Unauthorized++ })
	attrs := []string{param6750("error", code), param6750("error_description", desc), param6750("algs", "ES256")}
	if rs.w.opts.PRM == PRMHeader {
		attrs = append(attrs, param6750("resource_metadata", rs.prmURL))
	}
	w.Header().Set("WWW-Authenticate", "DPoP "+strings.Join(attrs, ", "))
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": code, "error_description": desc})
}
