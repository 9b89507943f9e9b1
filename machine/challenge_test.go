package machine

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []Challenge
	}{
		{
			name:   "sentry header, quoted params (Q-16)",
			values: []string{`Bearer realm="OAuth", resource_metadata="https://mcp.sentry.dev/.well-known/oauth-protected-resource/mcp"`},
			want: []Challenge{{Scheme: "bearer", Params: map[string]string{
				"realm": "OAuth", "resource_metadata": "https://mcp.sentry.dev/.well-known/oauth-protected-resource/mcp",
			}}},
		},
		{
			name:   "E-27 several challenges in one value",
			values: []string{`Basic realm="a", Bearer resource_metadata="https://r/.well-known/oauth-protected-resource", scope="x y"`},
			want: []Challenge{
				{Scheme: "basic", Params: map[string]string{"realm": "a"}},
				{Scheme: "bearer", Params: map[string]string{"resource_metadata": "https://r/.well-known/oauth-protected-resource", "scope": "x y"}},
			},
		},
		{
			name:   "B-9110-01 challenges across values",
			values: []string{`Negotiate`, `DPoP algs="ES256 PS256", error="invalid_token"`, `Bearer`},
			want: []Challenge{
				{Scheme: "negotiate"},
				{Scheme: "dpop", Params: map[string]string{"algs": "ES256 PS256", "error": "invalid_token"}},
				{Scheme: "bearer"},
			},
		},
		{
			name:   "E-28 escaped quote and escaped backslash before the closing quote",
			values: []string{`Bearer error_description="say \"hi\"", realm="a\\", scope="s"`},
			want: []Challenge{{Scheme: "bearer", Params: map[string]string{
				"error_description": `say "hi"`, "realm": `a\`, "scope": "s",
			}}},
		},
		{
			name:   "E-28 commas and = inside quotes are data",
			values: []string{`Bearer error_description="a, b=c, Basic d", scope="read"`},
			want:   []Challenge{{Scheme: "bearer", Params: map[string]string{"error_description": "a, b=c, Basic d", "scope": "read"}}},
		},
		{
			name:   "E-31 a parameter smuggled into a description is not a parameter",
			values: []string{`Bearer error="insufficient_scope", error_description="see scope=admin"`},
			want:   []Challenge{{Scheme: "bearer", Params: map[string]string{"error": "insufficient_scope", "error_description": "see scope=admin"}}},
		},
		{
			name:   "E-28 token values, empty quoted value, BWS and HTAB around =",
			values: []string{"Bearer error=invalid_token ,scope = \"\",\trealm\t=\tx"},
			want:   []Challenge{{Scheme: "bearer", Params: map[string]string{"error": "invalid_token", "scope": "", "realm": "x"}}},
		},
		{
			name:   "B-9110-04 empty list elements",
			values: []string{` , ,Bearer realm="a", , scope="b",, ,Basic realm="c" ,`},
			want: []Challenge{
				{Scheme: "bearer", Params: map[string]string{"realm": "a", "scope": "b"}},
				{Scheme: "basic", Params: map[string]string{"realm": "c"}},
			},
		},
		{
			name:   "E-29 scheme and parameter names are case-insensitive, values are not",
			values: []string{`BEARER Resource_Metadata="https://A/B", SCOPE=Read`},
			want:   []Challenge{{Scheme: "bearer", Params: map[string]string{"resource_metadata": "https://A/B", "scope": "Read"}}},
		},
		{
			name:   "E-29 token68",
			values: []string{`Bearer abc123==, Basic YWxhZGRpbjpvcGVuc2VzYW1l`},
			want: []Challenge{
				{Scheme: "bearer", Token68: "abc123=="},
				{Scheme: "basic", Token68: "YWxhZGRpbjpvcGVuc2VzYW1l"},
			},
		},
		{
			name:   "token68 then a challenge with params",
			values: []string{`Basic dXNlcg==, Bearer realm="x"`},
			want: []Challenge{
				{Scheme: "basic", Token68: "dXNlcg=="},
				{Scheme: "bearer", Params: map[string]string{"realm": "x"}},
			},
		},
		{
			name:   "RFC 9110 §11.6.1 example",
			values: []string{`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`},
			want: []Challenge{
				{Scheme: "newauth", Params: map[string]string{"realm": "apps", "type": "1", "title": `Login to "apps"`}},
				{Scheme: "basic", Params: map[string]string{"realm": "simple"}},
			},
		},
		{
			name:   "obs-text in a quoted string is kept (localized description, Q-16)",
			values: []string{"Bearer error_description=\"jeton expir\xc3\xa9\""},
			want:   []Challenge{{Scheme: "bearer", Params: map[string]string{"error_description": "jeton expiré"}}},
		},
		{
			name:   "grammar: a lone name= is a token68, not an empty parameter",
			values: []string{`Bearer realm=`},
			want:   []Challenge{{Scheme: "bearer", Token68: "realm="}},
		},
		{
			name:   "grammar: a bare token after a comma starts a new challenge",
			values: []string{`Bearer realm="x", scope`},
			want:   []Challenge{{Scheme: "bearer", Params: map[string]string{"realm": "x"}}, {Scheme: "scope"}},
		},
		{
			name:   "no header at all",
			values: nil,
			want:   nil,
		},
		{
			name:   "empty values",
			values: []string{"", " , "},
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseChallenges(tt.values)
			if err != nil {
				t.Fatalf("ParseChallenges(%q): %v", tt.values, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseChallenges(%q) mismatch (-want +got):\n%s", tt.values, diff)
			}
		})
	}
}

func TestParseChallengesErrors(t *testing.T) {
	many := func(n int, item string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = item
		}
		return strings.Join(parts, ", ")
	}
	manyParams := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = "p" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "=v"
		}
		return "Bearer " + strings.Join(parts, ", ")
	}
	tests := []struct {
		name   string
		values []string
	}{
		{"E-28 unterminated quote", []string{`Bearer realm="abc`}},
		{"E-28 unterminated quote after escape", []string{`Bearer realm="abc\`}},
		{"E-26 duplicate resource_metadata (getsentry/sentry-mcp#939)", []string{`Bearer resource_metadata="https://a", resource_metadata="https://b"`}},
		{"E-26 duplicate differing only by case", []string{`Bearer scope="a", SCOPE="b"`}},
		{"parameter without value before comma", []string{`Bearer realm=, scope="x"`}},
		{"junk after a quoted value", []string{`Bearer realm="x" junk`}},
		{"control character in a quoted string", []string{"Bearer realm=\"a\x01b\""}},
		{"newline in a value (no obs-fold in a parsed value)", []string{"Bearer realm=\"a\nb\""}},
		{"auth-scheme missing", []string{`="x"`}},
		{"scheme followed by a quote", []string{`Bearer"x"`}},
		{"65 challenges", []string{many(65, "Bearer")}},
		{"65 challenges across values", []string{many(40, "Basic"), many(25, "Bearer")}},
		{"65 params", []string{manyParams(65)}},
		{"header over 16 KiB", []string{`Bearer realm="` + strings.Repeat("a", 16<<10) + `"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseChallenges(tt.values)
			var ce *ChallengeError
			if !errors.As(err, &ce) {
				t.Fatalf("ParseChallenges(%.80q) = %v, %v; want *ChallengeError", tt.values, got, err)
			}
			if !strings.HasPrefix(err.Error(), "machine: ") {
				t.Errorf("error %q lacks the machine: prefix", err)
			}
		})
	}
	// The bounds are inclusive: exactly 64 challenges and 64 params parse.
	if cs, err := ParseChallenges([]string{many(64, "Bearer")}); err != nil || len(cs) != 64 {
		t.Errorf("64 challenges: got %d, %v", len(cs), err)
	}
	if cs, err := ParseChallenges([]string{manyParams(64)}); err != nil || len(cs) != 1 || len(cs[0].Params) != 64 {
		t.Errorf("64 params: got %v, %v", cs, err)
	}
}

func TestBearerChallenge(t *testing.T) {
	basic := Challenge{Scheme: "basic", Params: map[string]string{"realm": "a"}}
	bearer := Challenge{Scheme: "bearer", Params: map[string]string{"scope": "x"}}
	dpop := Challenge{Scheme: "dpop", Params: map[string]string{"algs": "ES256"}}
	tests := []struct {
		name   string
		in     []Challenge
		want   Challenge
		wantOK bool
	}{
		{"E-27 bearer after basic", []Challenge{basic, bearer}, bearer, true},
		{"B-9728-12 dpop counts as bearer", []Challenge{basic, dpop}, dpop, true},
		{"first of dpop and bearer", []Challenge{dpop, bearer}, dpop, true},
		{"E-18 basic only", []Challenge{basic}, Challenge{}, false},
		{"none", nil, Challenge{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := BearerChallenge(tt.in)
			if ok != tt.wantOK {
				t.Errorf("ok = %v, want %v", ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("BearerChallenge mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
