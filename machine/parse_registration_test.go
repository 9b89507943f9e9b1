package machine

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRegistrationResponse(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		ct, body string
		want     RegisteredClient
	}{
		{
			name: "B-7591-03 201 with a secret", status: 201, ct: jsonCT,
			body: `{"client_id":"c1","client_secret":"s3cr3t","token_endpoint_auth_method":"client_secret_basic",
				"client_id_issued_at":1700000000,"client_secret_expires_at":0,"redirect_uris":["http://127.0.0.1:8090/cb"],
				"grant_types":["authorization_code","refresh_token"],"client_name":"x","registration_access_token":"rat"}`,
			want: RegisteredClient{ClientID: "c1", ClientSecret: "s3cr3t", TokenEndpointAuthMethod: "client_secret_basic",
				ClientIDIssuedAt: 1700000000, RedirectURIs: []string{"http://127.0.0.1:8090/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"}},
		},
		{
			name: "E-38 200 accepted", status: 200, ct: "application/json; charset=utf-8",
			body: `{"client_id":"c1"}`,
			want: RegisteredClient{ClientID: "c1"},
		},
		{
			name: "Q-12 method none drops a returned secret", status: 201, ct: jsonCT,
			body: `{"client_id":"c1","client_secret":"leaked","client_secret_expires_at":99,"token_endpoint_auth_method":"none"}`,
			want: RegisteredClient{ClientID: "c1", TokenEndpointAuthMethod: "none"},
		},
		{
			name: "B-7591-04 secret expiry kept", status: 201, ct: jsonCT,
			body: `{"client_id":"c1","client_secret":"s","client_secret_expires_at":1800000000,"token_endpoint_auth_method":"client_secret_post"}`,
			want: RegisteredClient{ClientID: "c1", ClientSecret: "s", ClientSecretExpiresAt: 1800000000, TokenEndpointAuthMethod: "client_secret_post"},
		},
		{
			name: "Q-25 nulls are absent", status: 201, ct: jsonCT,
			body: `{"client_id":"c1","client_secret":null,"client_id_issued_at":null,"redirect_uris":null}`,
			want: RegisteredClient{ClientID: "c1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRegistrationResponse(tt.status, tt.ct, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseRegistrationResponse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRegistrationResponseErrors(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		ct, body  string
		wantOAuth *OAuthError
		wantField string // for MalformedError
	}{
		{name: "B-7591-06 invalid_redirect_uri", status: 400, ct: jsonCT,
			body:      `{"error":"invalid_redirect_uri","error_description":"loopback not allowed"}`,
			wantOAuth: &OAuthError{Status: 400, Code: "invalid_redirect_uri", Description: "loopback not allowed"}},
		{name: "E-41 invalid_client_metadata", status: 400, ct: jsonCT,
			body:      `{"error":"invalid_client_metadata"}`,
			wantOAuth: &OAuthError{Status: 400, Code: "invalid_client_metadata"}},
		{name: "error with 201", status: 201, ct: jsonCT,
			body:      `{"client_id":"c","error":"invalid_client_metadata"}`,
			wantOAuth: &OAuthError{Status: 201, Code: "invalid_client_metadata"}},
		{name: "E-38 404 on POST", status: 404, ct: "text/html", body: `<html>not found</html>`,
			wantOAuth: &OAuthError{Status: 404, Description: "http 404"}},
		{name: "E-38 405", status: 405, ct: "", body: ``,
			wantOAuth: &OAuthError{Status: 405, Description: "http 405"}},
		{name: "202 is not a registration", status: 202, ct: jsonCT, body: `{"client_id":"c"}`,
			wantOAuth: &OAuthError{Status: 202, Description: "http 202"}},
		{name: "E-16 no client_id", status: 201, ct: jsonCT, body: `{"client_secret":"s"}`, wantField: "client_id"},
		{name: "empty client_id", status: 201, ct: jsonCT, body: `{"client_id":""}`, wantField: "client_id"},
		{name: "client_id as a number", status: 201, ct: jsonCT, body: `{"client_id":5}`, wantField: "client_id"},
		{name: "E-15 client_secret_expires_at as a string", status: 201, ct: jsonCT, body: `{"client_id":"c","client_secret_expires_at":"0"}`, wantField: "client_secret_expires_at"},
		{name: "negative client_id_issued_at", status: 201, ct: jsonCT, body: `{"client_id":"c","client_id_issued_at":-1}`, wantField: "client_id_issued_at"},
		{name: "redirect_uris as a string", status: 201, ct: jsonCT, body: `{"client_id":"c","redirect_uris":"http://127.0.0.1/cb"}`, wantField: "redirect_uris"},
		{name: "client_secret with a newline", status: 201, ct: jsonCT, body: `{"client_id":"c","client_secret":"a\nb"}`, wantField: "client_secret"},
		{name: "E-13 duplicate client_id", status: 201, ct: jsonCT, body: `{"client_id":"a","client_id":"b"}`, wantField: "client_id"},
		{name: "E-14 Client_Id", status: 201, ct: jsonCT, body: `{"client_id":"a","Client_Id":"b"}`, wantField: "client_id"},
		{name: "E-08 HTML 201", status: 201, ct: "text/html", body: `<html></html>`, wantField: ""},
		{name: "form body is not a registration response", status: 201, ct: "application/x-www-form-urlencoded", body: `client_id=c`, wantField: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRegistrationResponse(tt.status, tt.ct, []byte(tt.body))
			if diff := cmp.Diff(RegisteredClient{}, got); diff != "" {
				t.Errorf("an error returned a client (-want +got):\n%s", diff)
			}
			if tt.wantOAuth != nil {
				var oe *OAuthError
				if !errors.As(err, &oe) {
					t.Fatalf("err = %v, want *OAuthError", err)
				}
				if diff := cmp.Diff(tt.wantOAuth, oe); diff != "" {
					t.Errorf("OAuthError mismatch (-want +got):\n%s", diff)
				}
				return
			}
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want *MalformedError", err)
			}
			want := &MalformedError{Document: "registration response", Field: tt.wantField, Reason: me.Reason}
			if diff := cmp.Diff(want, me); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Design §4.10: registration errors never show the client secret.
func TestParseRegistrationResponseErrorsNeverShowSecret(t *testing.T) {
	const secret = "CS-Secret-77aa88bb99cc"
	bodies := []string{
		`{"error":"invalid_client_metadata","error_description":"secret ` + secret + ` is weak","client_secret":"` + secret + `"}`,
		`{"error":"` + secret + `","client_secret":"` + secret + `"}`,
		`{"client_secret":"` + secret + `"}`,
		`{"client_id":"c","client_secret":"` + secret + `","client_secret_expires_at":"` + secret + `"}`,
		`{"client_id":"c","client_secret":"` + secret + "\t" + `"}`,
		`{"client_id":"c","client_secret":"` + secret + `","client_secret":"` + secret + `"}`,
		`{"error":"x","error_description":"rat ` + secret + `","registration_access_token":"` + secret + `"}`,
	}
	for _, body := range bodies {
		_, err := ParseRegistrationResponse(201, jsonCT, []byte(body))
		if err == nil {
			t.Errorf("accepted %s", body)
			continue
		}
		msg := err.Error()
		var oe *OAuthError
		if errors.As(err, &oe) {
			msg += oe.Code + oe.Description + oe.URI
		}
		if strings.Contains(msg, secret) {
			t.Errorf("error for %s shows the secret: %s", body, msg)
		}
	}
}

// Design §4.10: a RegisteredClient printed by mistake shows no secret.
func TestRegisteredClientStringRedacts(t *testing.T) {
	c := RegisteredClient{ClientID: "c1", ClientSecret: "CS-Secret-1", TokenEndpointAuthMethod: "client_secret_basic"}
	for _, format := range []string{"%v", "%+v", "%#v"} {
		if out := fmt.Sprintf(format, c); strings.Contains(out, c.ClientSecret) || !strings.Contains(out, "c1") {
			t.Errorf("%s: %s", format, out)
		}
	}
}
