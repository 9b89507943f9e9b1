package machine

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCallbackQuery(t *testing.T) {
	tests := []struct {
		name, query string
		want        CallbackParams
	}{
		{"RFC 6749 §4.1.2 code and state", "code=SplxlOBeZQQYbYS6WxSbIA&state=xyz",
			CallbackParams{Code: "SplxlOBeZQQYbYS6WxSbIA", State: "xyz"}},
		{"RFC 9207 iss", "code=c&state=s&iss=https%3A%2F%2Fas.example.com",
			CallbackParams{Code: "c", State: "s", Iss: "https://as.example.com", HasIss: true}},
		{"A-AUTHZ-07 iss decoded once, never normalised", "code=c&iss=https%3A%2F%2FAS.example.com%3A443%2F%252F",
			CallbackParams{Code: "c", Iss: "https://AS.example.com:443/%2F", HasIss: true}},
		{"form decoding: + is a space, %2B a plus", "code=a%2Bb+c&state=s", CallbackParams{Code: "a+b c", State: "s"}},
		{"RFC 6749 §4.1.2.1 error response", "error=access_denied&error_description=The+user+said+no&error_uri=https%3A%2F%2Fas%2Fe&state=s",
			CallbackParams{Error: "access_denied", ErrorDescription: "The user said no", ErrorURI: "https://as/e", State: "s"}},
		{"unknown parameters ignored (B-6749-10)", "code=c&state=s&session_state=x&scope=a+b", CallbackParams{Code: "c", State: "s"}},
		{"empty pairs tolerated", "&code=c&&state=s&", CallbackParams{Code: "c", State: "s"}},
		{"RFC 6749 §3.1 empty iss is omitted", "code=c&iss=", CallbackParams{Code: "c"}},
		{"no state at all parses (the flow refuses it)", "code=c", CallbackParams{Code: "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCallbackQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseCallbackQuery(%q) mismatch (-want +got):\n%s", tt.query, diff)
			}
		})
	}
}

func TestParseCallbackQueryRefuses(t *testing.T) {
	tests := []struct {
		name, query, field string
	}{
		{"E-43 state repeated", "code=c&state=a&state=b", "state"},
		{"E-44 code repeated", "code=a&code=b&state=s", "code"},
		{"E-45 iss repeated", "code=c&iss=https%3A%2F%2Fa&iss=https%3A%2F%2Fb", "iss"},
		{"repeated even when empty", "code=c&state=&state=s", "state"},
		{"repeated after decoding", "code=c&st%61te=a&state=b", "state"},
		{"RFC 6749 §3.1 unknown parameter repeated, not named", "code=c&x=1&x=2", "(unknown member)"},
		{"E-44 neither code nor error", "state=s", "code"},
		{"E-44 empty code", "code=&state=s", "code"},
		{"empty query", "", "code"},
		{"E-44 both code and error", "code=c&error=access_denied&state=s", "code"},
		{"semicolon separator", "code=c;state=s", ""},
		{"bad escape", "code=%zz&state=s", ""},
		{"E-44 huge query", "code=c&error_description=" + strings.Repeat("a", 16<<10), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCallbackQuery(tt.query)
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("got %+v, %v; want *MalformedError", got, err)
			}
			want := &MalformedError{Document: "authorization response", Field: tt.field, Reason: me.Reason}
			if diff := cmp.Diff(want, me); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Design §4.10: callback errors never show the code or the state.
func TestParseCallbackQueryErrorsNeverShowSecrets(t *testing.T) {
	const code, state = "Code-Secret-1a2b3c4d", "State-Secret-5e6f7a8b"
	queries := []string{
		"code=" + code + "&code=" + code + "&state=" + state,
		"code=" + code + "&state=" + state + "&state=" + state,
		"code=" + code + "&" + code + "=1&" + code + "=2&state=" + state,
		"code=" + code + "&state=" + state + "&error=" + state,
		"code=" + code + "%zz&state=" + state,
		"code=" + code + ";state=" + state,
		"state=" + state + "&x=" + code,
		"code=" + code + "&state=" + state + "&pad=" + strings.Repeat("a", 16<<10),
	}
	for _, q := range queries {
		_, err := ParseCallbackQuery(q)
		if err == nil {
			t.Errorf("accepted %.80q", q)
			continue
		}
		for _, s := range []string{code, state} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error for %.80q shows a secret: %v", q, err)
			}
		}
	}
}

// Design §4.10: CallbackParams printed by mistake show no code or state.
func TestCallbackParamsStringRedacts(t *testing.T) {
	p := CallbackParams{Code: "Code-Secret-1", State: "State-Secret-2", Iss: "https://as", HasIss: true}
	for _, format := range []string{"%v", "%+v", "%#v"} {
		out := fmt.Sprintf(format, p)
		if strings.Contains(out, p.Code) || strings.Contains(out, p.State) || !strings.Contains(out, "https://as") {
			t.Errorf("%s: %s", format, out)
		}
	}
}
