package machine

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const jsonCT = "application/json"

func TestParseTokenResponse(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		ct, body string
		want     TokenResponse
	}{
		{
			name: "B-6749-01 full success", status: 200, ct: jsonCT,
			body: `{"access_token":"at-1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt 1","scope":"a b","id_token":"h.p.s"}`,
			want: TokenResponse{AccessToken: "at-1", TokenType: "Bearer", ExpiresIn: 3600, HasExpiresIn: true, RefreshToken: "rt 1", Scope: "a b", IDToken: "h.p.s"},
		},
		{
			name: "Q-21 lower-case bearer normalised", status: 200, ct: jsonCT,
			body: `{"access_token":"at","token_type":"bearer"}`,
			want: TokenResponse{AccessToken: "at", TokenType: "Bearer"},
		},
		{
			name: "Q-21 BEARER", status: 200, ct: jsonCT,
			body: `{"access_token":"at","token_type":"BEARER"}`,
			want: TokenResponse{AccessToken: "at", TokenType: "Bearer"},
		},
		{
			name: "RFC 9449 dpop normalised", status: 200, ct: jsonCT,
			body: `{"access_token":"at","token_type":"dpop"}`,
			want: TokenResponse{AccessToken: "at", TokenType: "DPoP"},
		},
		{
			name: "Q-20 expires_in as a digit string (Entra v1)", status: 200, ct: "application/json; charset=utf-8",
			body: `{"token_type":"Bearer","expires_in":"3599","ext_expires_in":"3599","expires_on":"1547440166","access_token":"x"}`,
			want: TokenResponse{AccessToken: "x", TokenType: "Bearer", ExpiresIn: 3599, HasExpiresIn: true},
		},
		{
			name: "expires_in 0 is a lifetime, not an absence", status: 200, ct: jsonCT,
			body: `{"access_token":"at","token_type":"Bearer","expires_in":0}`,
			want: TokenResponse{AccessToken: "at", TokenType: "Bearer", HasExpiresIn: true},
		},
		{
			name: "expires_in one year exactly", status: 200, ct: jsonCT,
			body: `{"access_token":"at","token_type":"Bearer","expires_in":31536000}`,
			want: TokenResponse{AccessToken: "at", TokenType: "Bearer", ExpiresIn: 31536000, HasExpiresIn: true},
		},
		{
			name: "Q-22 Q-25 null expires_in is an unknown lifetime", status: 200, ct: jsonCT,
			body: `{"access_token":"at","token_type":"Bearer","expires_in":null,"refresh_token":null}`,
			want: TokenResponse{AccessToken: "at", TokenType: "Bearer"},
		},
		{
			name: "Q-23 unknown members ignored (Salesforce)", status: 200, ct: jsonCT,
			body: `{"access_token":"XXXX","instance_url":"https://x.salesforce.com","id":"https://login.salesforce.com/id/X","token_type":"Bearer","issued_at":"1487324604890","signature":"S","ok":true,"not-before-policy":0}`,
			want: TokenResponse{AccessToken: "XXXX", TokenType: "Bearer"},
		},
		{
			name: "RFC 8693 issued_token_type", status: 200, ct: jsonCT,
			body: `{"access_token":"at","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}`,
			want: TokenResponse{AccessToken: "at", TokenType: "Bearer", IssuedTokenType: "urn:ietf:params:oauth:token-type:access_token"},
		},
		{
			name: "Q-17 form-encoded success (GitHub without Accept)", status: 200, ct: "application/x-www-form-urlencoded; charset=utf-8",
			body: "access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist&token_type=bearer",
			want: TokenResponse{AccessToken: "gho_16C7e42F292c6912E7710c838347Ae178B4a", TokenType: "Bearer", Scope: "repo,gist"},
		},
		{
			name: "Q-17 form-encoded expires_in is a digit string", status: 200, ct: "application/x-www-form-urlencoded",
			body: "access_token=at&token_type=bearer&expires_in=28800&refresh_token=ghr_1&refresh_token_expires_in=15811200",
			want: TokenResponse{AccessToken: "at", TokenType: "Bearer", ExpiresIn: 28800, HasExpiresIn: true, RefreshToken: "ghr_1"},
		},
		{
			name: "Q-30 doubled content type", status: 200, ct: "application/json, application/json",
			body: `{"access_token":"at","token_type":"Bearer"}`,
			want: TokenResponse{AccessToken: "at", TokenType: "Bearer"},
		},
		{
			name: "no content type, JSON body", status: 200, ct: "",
			body: `{"access_token":"at","token_type":"Bearer"}`,
			want: TokenResponse{AccessToken: "at", TokenType: "Bearer"},
		},
		{
			name: "201 is 2xx", status: 201, ct: jsonCT,
			body: `{"access_token":"at","token_type":"Bearer"}`,
			want: TokenResponse{AccessToken: "at", TokenType: "Bearer"},
		},
		{
			name: "RFC 6749 §3.1 empty error counts as omitted", status: 200, ct: jsonCT,
			body: `{"access_token":"at","token_type":"Bearer","error":""}`,
			want: TokenResponse{AccessToken: "at", TokenType: "Bearer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokenResponse(tt.status, tt.ct, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseTokenResponse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTokenResponseOAuthErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		ct, body string
		want     *OAuthError
	}{
		{
			name: "B-6749-06 invalid_grant", status: 400, ct: jsonCT,
			body: `{"error":"invalid_grant","error_description":"PKCE verification failed.","error_uri":"https://as/e"}`,
			want: &OAuthError{Status: 400, Code: "invalid_grant", Description: "PKCE verification failed.", URI: "https://as/e"},
		},
		{
			name: "Q-18 E-09 HTTP 200 with an error (GitHub)", status: 200, ct: jsonCT,
			body: `{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired.","error_uri":"https://docs.github.com/apps/oauth"}`,
			want: &OAuthError{Status: 200, Code: "bad_verification_code", Description: "The code passed is incorrect or expired.", URI: "https://docs.github.com/apps/oauth"},
		},
		{
			name: "Q-18 error wins over an access_token", status: 200, ct: jsonCT,
			body: `{"access_token":"at","token_type":"Bearer","error":"invalid_request"}`,
			want: &OAuthError{Status: 200, Code: "invalid_request"},
		},
		{
			name: "Q-18 ok:false (Slack)", status: 200, ct: jsonCT,
			body: `{"ok":false,"error":"invalid_code"}`,
			want: &OAuthError{Status: 200, Code: "invalid_code"},
		},
		{
			name: "Q-18 ok:false without an error", status: 200, ct: jsonCT,
			body: `{"ok":false,"access_token":"at","token_type":"Bearer"}`,
			want: &OAuthError{Status: 200, Description: "response says ok: false"},
		},
		{
			name: "Q-17 form-encoded error with HTTP 200", status: 200, ct: "application/x-www-form-urlencoded",
			body: "error=invalid_grant&error_description=The+refresh+token+passed+is+incorrect+or+expired.",
			want: &OAuthError{Status: 200, Code: "invalid_grant", Description: "The refresh token passed is incorrect or expired."},
		},
		{
			name: "Q-19 relative error_uri kept for display", status: 401, ct: jsonCT,
			body: `{"error":"incorrect_client_credentials","error_uri":"/apps/managing-oauth-apps"}`,
			want: &OAuthError{Status: 401, Code: "incorrect_client_credentials", URI: "/apps/managing-oauth-apps"},
		},
		{
			name: "E-10 HTML 502", status: 502, ct: "text/html",
			body: `<html><body>Bad gateway</body></html>`,
			want: &OAuthError{Status: 502, Description: "http 502"},
		},
		{
			name: "E-10 empty 400", status: 400, ct: jsonCT, body: ``,
			want: &OAuthError{Status: 400, Description: "http 400"},
		},
		{
			name: "non-2xx with a token but no error is still an error", status: 400, ct: jsonCT,
			body: `{"access_token":"at","token_type":"Bearer"}`,
			want: &OAuthError{Status: 400, Description: "http 400"},
		},
		{
			name: "3xx is not a success", status: 302, ct: jsonCT,
			body: `{"access_token":"at","token_type":"Bearer"}`,
			want: &OAuthError{Status: 302, Description: "http 302"},
		},
		{
			name: "error member of the wrong type", status: 400, ct: jsonCT,
			body: `{"error":{"code":"x"}}`,
			want: &OAuthError{Status: 400, Description: "error member is not a string"},
		},
		{
			name: "RFC 6749 §5.2 error code outside NQSCHAR is not shown", status: 400, ct: jsonCT,
			body: `{"error":"bad\ncode","error_description":"d"}`,
			want: &OAuthError{Status: 400, Description: "error code is not a valid rfc 6749 error code"},
		},
		{
			name: "error_uri with a quote is dropped", status: 400, ct: jsonCT,
			body: `{"error":"invalid_request","error_uri":"javascript:\"x\""}`,
			want: &OAuthError{Status: 400, Code: "invalid_request"},
		},
		{
			name: "E-44 huge description truncated", status: 400, ct: jsonCT,
			body: `{"error":"invalid_request","error_description":"` + strings.Repeat("d", 600) + `"}`,
			want: &OAuthError{Status: 400, Code: "invalid_request", Description: strings.Repeat("d", 512)},
		},
		{
			name: "429 without a body", status: 429, ct: "", body: ``,
			want: &OAuthError{Status: 429, Description: "http 429"},
		},
		{
			name: "duplicate error members on a 400: no code is trusted", status: 400, ct: jsonCT,
			body: `{"error":"invalid_grant","error":"server_error"}`,
			want: &OAuthError{Status: 400, Description: "http 400"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokenResponse(tt.status, tt.ct, []byte(tt.body))
			var oe *OAuthError
			if !errors.As(err, &oe) {
				t.Fatalf("got %+v, %v; want *OAuthError", got, err)
			}
			if diff := cmp.Diff(tt.want, oe); diff != "" {
				t.Errorf("OAuthError mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(TokenResponse{}, got); diff != "" {
				t.Errorf("an error returned a token (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTokenResponseMalformed(t *testing.T) {
	tests := []struct {
		name, ct, body, field string
	}{
		{"E-16 no access_token", jsonCT, `{"token_type":"Bearer"}`, "access_token"},
		{"empty access_token", jsonCT, `{"access_token":"","token_type":"Bearer"}`, "access_token"},
		{"access_token as a number", jsonCT, `{"access_token":12,"token_type":"Bearer"}`, "access_token"},
		{"E-51 access_token with a space", jsonCT, `{"access_token":"a b","token_type":"Bearer"}`, "access_token"},
		{"E-51 access_token with CRLF", jsonCT, `{"access_token":"a\r\nX-Evil: 1","token_type":"Bearer"}`, "access_token"},
		{"E-51 access_token non-ASCII", jsonCT, `{"access_token":"jéton","token_type":"Bearer"}`, "access_token"},
		{"E-17 access_token over 16 KiB", jsonCT, `{"access_token":"` + strings.Repeat("a", 16<<10+1) + `","token_type":"Bearer"}`, "access_token"},
		{"E-49 no token_type", jsonCT, `{"access_token":"at"}`, "token_type"},
		{"Q-21 token_type bot (Slack)", jsonCT, `{"access_token":"at","token_type":"bot"}`, "token_type"},
		{"E-49 token_type mac", jsonCT, `{"access_token":"at","token_type":"mac"}`, "token_type"},
		{"E-49 token_type N_A", jsonCT, `{"access_token":"at","token_type":"N_A"}`, "token_type"},
		{"token_type as an array", jsonCT, `{"access_token":"at","token_type":["Bearer"]}`, "token_type"},
		{"E-50 negative expires_in", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":-1}`, "expires_in"},
		{"E-50 fractional expires_in", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":3600.5}`, "expires_in"},
		{"E-50 3600.0", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":3600.0}`, "expires_in"},
		{"E-50 1e308", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":1e308}`, "expires_in"},
		{"E-50 overflowing integer", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":99999999999999999999}`, "expires_in"},
		{"E-50 over one year", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":31536001}`, "expires_in"},
		{"Q-20 string over one year", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":"99999999"}`, "expires_in"},
		{"Q-20 string with a sign", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":"+3600"}`, "expires_in"},
		{"Q-20 negative string", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":"-1"}`, "expires_in"},
		{"Q-20 string with a fraction", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":"3600.0"}`, "expires_in"},
		{"Q-20 string with spaces", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":" 3600"}`, "expires_in"},
		{"Q-20 empty string", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":""}`, "expires_in"},
		{"Q-20 non-ASCII digits", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":"３６００"}`, "expires_in"},
		{"expires_in as a bool", jsonCT, `{"access_token":"at","token_type":"Bearer","expires_in":true}`, "expires_in"},
		{"E-15 scope as an array", jsonCT, `{"access_token":"at","token_type":"Bearer","scope":["a","b"]}`, "scope"},
		{"refresh_token as a number", jsonCT, `{"access_token":"at","token_type":"Bearer","refresh_token":5}`, "refresh_token"},
		{"refresh_token with a newline", jsonCT, `{"access_token":"at","token_type":"Bearer","refresh_token":"a\nb"}`, "refresh_token"},
		{"E-13 duplicate access_token", jsonCT, `{"access_token":"a","access_token":"b","token_type":"Bearer"}`, "access_token"},
		{"E-14 Access_Token", jsonCT, `{"Access_Token":"a","token_type":"Bearer"}`, "access_token"},
		{"E-14 Token_Type", jsonCT, `{"access_token":"a","token_type":"Bearer","Token_Type":"mac"}`, "token_type"},
		{"E-11 trailing data", jsonCT, `{"access_token":"a","token_type":"Bearer"}{}`, ""},
		{"E-08 HTML with 200", "text/html; charset=utf-8", `<html>login</html>`, ""},
		{"E-08 JSON body but HTML type", "text/html", `{"access_token":"a","token_type":"Bearer"}`, ""},
		{"Q-17 XML (GitHub Accept: xml)", "application/xml", `<OAuth><access_token>a</access_token></OAuth>`, ""},
		{"form duplicates", "application/x-www-form-urlencoded", `access_token=a&access_token=b&token_type=bearer`, "access_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokenResponse(200, tt.ct, []byte(tt.body))
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("got %+v, %v; want *MalformedError", got, err)
			}
			want := &MalformedError{Document: "token response", Field: tt.field, Reason: me.Reason}
			if diff := cmp.Diff(want, me); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Design §4.10: no error of the token parser shows a token. Every body
// here carries secrets the server echoed where it should not have.
func TestParseTokenResponseErrorsNeverShowSecrets(t *testing.T) {
	const at, rt, id = "AT-Secret-9f8e7d6c5b4a", "RT-Secret-0a1b2c3d4e5f", "ID-Secret-h.p.s"
	tests := []struct {
		status   int
		ct, body string
	}{
		{400, jsonCT, `{"error":"invalid_grant","error_description":"token ` + at + ` was revoked","access_token":"` + at + `"}`},
		{400, jsonCT, `{"error":"` + at + `","access_token":"` + at + `"}`},
		{200, jsonCT, `{"error":"x","error_description":"` + rt + `","refresh_token":"` + rt + `"}`},
		{200, jsonCT, `{"ok":false,"error_description":"id ` + id + `","id_token":"` + id + `"}`},
		{200, jsonCT, `{"error":"x","error_uri":"https://as/` + at + `","access_token":"` + at + `"}`},
		{200, jsonCT, `{"access_token":"` + at + `","token_type":"mac","refresh_token":"` + rt + `"}`},
		{200, jsonCT, `{"access_token":"` + at + ` x","token_type":"Bearer"}`},
		{200, jsonCT, `{"access_token":"` + at + `","token_type":"Bearer","expires_in":"` + at + `"}`},
		{200, jsonCT, `{"access_token":"` + at + `","token_type":"Bearer","refresh_token":"` + rt + "\n" + `"}`},
		{200, jsonCT, `{"access_token":"` + at + `","access_token":"` + at + `"}`},
		{200, jsonCT, `{"` + at + `":1,"` + at + `":2}`},
		{200, jsonCT, `{"access_token":"` + at + `","token_type":"` + at + `"}`},
		{200, "application/x-www-form-urlencoded", "access_token=" + at + "&" + at + "=%zz"},
		{200, "application/x-www-form-urlencoded", "error=x&error_description=" + at + "&access_token=" + at},
	}
	for _, tt := range tests {
		_, err := ParseTokenResponse(tt.status, tt.ct, []byte(tt.body))
		if err == nil {
			t.Errorf("ParseTokenResponse(%d, %q) accepted a bad response", tt.status, tt.body)
			continue
		}
		msg := err.Error()
		var oe *OAuthError
		if errors.As(err, &oe) {
			msg += " " + oe.Code + " " + oe.Description + " " + oe.URI
		}
		for _, s := range []string{at, rt, id} {
			if strings.Contains(msg, s) {
				t.Errorf("error for %q shows a secret: %s", tt.body, msg)
			}
		}
		if !strings.HasPrefix(err.Error(), "machine: ") {
			t.Errorf("error %q lacks the machine: prefix", err)
		}
	}
}

func TestOAuthErrorPredicates(t *testing.T) {
	tests := []struct {
		e                      OAuthError
		transient, invalidGrnt bool
	}{
		{OAuthError{Status: 400, Code: "invalid_grant"}, false, true},
		{OAuthError{Status: 200, Code: "invalid_grant"}, false, true},
		{OAuthError{Status: 503, Description: "http 503"}, true, false},
		{OAuthError{Status: 500, Code: "invalid_grant"}, true, true},
		{OAuthError{Status: 429}, true, false},
		{OAuthError{Status: 400, Code: "temporarily_unavailable"}, true, false},
		{OAuthError{Status: 200, Code: "server_error"}, true, false},
		{OAuthError{Status: 401, Code: "invalid_client"}, false, false},
		{OAuthError{Status: 400, Code: "Invalid_Grant"}, false, false}, // codes are case-sensitive
	}
	for _, tt := range tests {
		if got := tt.e.Transient(); got != tt.transient {
			t.Errorf("%+v Transient() = %v, want %v", tt.e, got, tt.transient)
		}
		if got := tt.e.InvalidGrant(); got != tt.invalidGrnt {
			t.Errorf("%+v InvalidGrant() = %v, want %v", tt.e, got, tt.invalidGrnt)
		}
		if got := IsRetryable(&tt.e); got != tt.transient {
			t.Errorf("%+v IsRetryable = %v, want %v", tt.e, got, tt.transient)
		}
	}
}

func TestParseErrorMessages(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&OAuthError{Status: 400, Code: "invalid_grant", Description: "PKCE verification failed."},
			`machine: oauth error invalid_grant (http 400): "PKCE verification failed."`},
		{&OAuthError{Status: 502, Description: "http 502"}, `machine: oauth error (http 502): "http 502"`},
		{&OAuthError{Status: 400, Code: "x", Description: "line\nbreak"}, `machine: oauth error x (http 400): "line\nbreak"`},
		{&MalformedError{Document: "token response", Field: "expires_in", Reason: "negative"}, "machine: malformed token response: expires_in: negative"},
		{&MalformedError{Document: "token response", Reason: "body is not valid json"}, "machine: malformed token response: body is not valid json"},
		{&ChallengeError{Reason: "unterminated quoted string at offset 3"}, "machine: malformed www-authenticate: unterminated quoted string at offset 3"},
		{&InsecureURLError{URL: "http://h/p", Reason: "r"}, `machine: unusable url "http://h/p": r`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// Design §4.10: a TokenResponse printed by mistake shows no token.
func TestTokenResponseStringRedacts(t *testing.T) {
	tr := TokenResponse{AccessToken: "AT-Secret-1", RefreshToken: "RT-Secret-2", IDToken: "ID-Secret-3", TokenType: "Bearer", Scope: "a b", ExpiresIn: 60, HasExpiresIn: true}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, tr)
		for _, s := range []string{tr.AccessToken, tr.RefreshToken, tr.IDToken} {
			if strings.Contains(out, s) {
				t.Errorf("%s shows %q: %s", format, s, out)
			}
		}
		if !strings.Contains(out, "[redacted]") || !strings.Contains(out, "Bearer") {
			t.Errorf("%s: %s", format, out)
		}
	}
}
