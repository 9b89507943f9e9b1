package machine

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeJSONObjectRefuses(t *testing.T) {
	known := []string{"issuer", "resource"}
	tests := []struct {
		name, body string
		wantField  string
	}{
		{"E-11 truncated", `{"issuer":"https://a"`, ""},
		{"E-11 trailing garbage", `{}{}`, ""},
		{"E-11 trailing text", `{"issuer":"x"} x`, ""},
		{"E-11 BOM", "\ufeff{}", ""},
		{"E-11 NaN", `{"n":NaN}`, ""},
		{"E-11 Infinity", `{"n":Infinity}`, ""},
		{"E-11 invalid utf-8", "{\"issuer\":\"\xff\"}", ""},
		{"E-11 single quotes", `{'issuer':'x'}`, ""},
		{"E-12 null", `null`, ""},
		{"E-12 array", `[{"issuer":"x"}]`, ""},
		{"E-12 string", `"str"`, ""},
		{"E-12 number", `1`, ""},
		{"E-12 empty", ``, ""},
		{"E-12 whitespace", " \n", ""},
		{"E-13 duplicate known member", `{"issuer":"https://good","issuer":"https://evil"}`, "issuer"},
		{"E-13 duplicate after unescaping (RFC 8414 §4)", `{"issuer":"https://good","iss\u0075er":"https://evil"}`, "issuer"},
		{"E-13 duplicate unknown member is not named", `{"x-secret":"1","x-secret":"2"}`, "(unknown member)"},
		{"E-14 case variant alone", `{"Issuer":"https://evil"}`, "issuer"},
		{"E-14 case variant next to the real one", `{"issuer":"https://good","ISSUER":"https://evil"}`, "issuer"},
		{"E-14 case variant of another known member", `{"RESOURCE":"x"}`, "resource"},
		{"depth 33", strings.Repeat("[", 32) + strings.Repeat("]", 32), ""},
		{"depth 33 inside object", `{"a":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, ""},
		{"body over 1 MiB", `{"a":"` + strings.Repeat("x", 1<<20) + `"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeJSONObject("test document", []byte(tt.body), known)
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("decodeJSONObject(%.60q) err = %v, want *MalformedError", tt.body, err)
			}
			if me.Field != tt.wantField || me.Document != "test document" {
				t.Errorf("error %+v, want field %q", me, tt.wantField)
			}
		})
	}
}

func TestDecodeJSONObjectAccepts(t *testing.T) {
	tests := []struct {
		name, body string
		want       map[string]string
	}{
		{"unknown members kept and ignored", `{"issuer":"x","Other":1,"other":2}`, map[string]string{"issuer": `"x"`, "Other": "1", "other": "2"}},
		{"whitespace around", " \r\n\t{ \"issuer\" : \"x\" }\n", map[string]string{"issuer": `"x"`}},
		{"depth 32", `{"a":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`,
			map[string]string{"a": strings.Repeat("[", 31) + strings.Repeat("]", 31)}},
		{"brackets in strings do not count", `{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"["}`, map[string]string{"a": `"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"["`}},
		{"empty object", `{}`, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := decodeJSONObject("d", []byte(tt.body), []string{"issuer"})
			if err != nil {
				t.Fatal(err)
			}
			got := make(map[string]string)
			for k, v := range o.members {
				got[k] = string(v)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("members mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJSONTypedHelpers(t *testing.T) {
	body := `{"s":"v","n":null,"num":3600,"neg":-5,"float":3600.0,"exp":36e2,"sn":"3600",
		"b":true,"bs":"true","list":["a","b"],"lists":"S256","listmixed":["a",1],"listnull":["a",null],
		"empty":[],"obj":{}}`
	o, err := decodeJSONObject("d", []byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		Val any
		OK  bool
		Err bool
	}
	str := func(name string) result { v, ok, err := o.str(name); return result{v, ok, err != nil} }
	strs := func(name string) result { v, ok, err := o.strs(name); return result{v, ok, err != nil} }
	boolean := func(name string) result { v, ok, err := o.boolean(name); return result{v, ok, err != nil} }
	integer := func(name string) result { v, ok, err := o.integer(name); return result{v, ok, err != nil} }
	tests := []struct {
		name      string
		got, want result
	}{
		{"string", str("s"), result{"v", true, false}},
		{"Q-25 null is absent", str("n"), result{"", false, false}},
		{"absent", str("missing"), result{"", false, false}},
		{"E-15 number is not a string", str("num"), result{"", false, true}},
		{"E-15 array is not a string", str("list"), result{"", false, true}},
		{"list", strs("list"), result{[]string{"a", "b"}, true, false}},
		{"empty list", strs("empty"), result{[]string{}, true, false}},
		{"Q-25 null list is absent", strs("n"), result{[]string(nil), false, false}},
		{"E-15 string is not a list (S256)", strs("lists"), result{[]string(nil), false, true}},
		{"E-15 mixed list", strs("listmixed"), result{[]string(nil), false, true}},
		{"E-15 null element", strs("listnull"), result{[]string(nil), false, true}},
		{"E-15 object is not a list", strs("obj"), result{[]string(nil), false, true}},
		{"bool", boolean("b"), result{true, true, false}},
		{"E-39 \"true\" is not a bool", boolean("bs"), result{false, false, true}},
		{"Q-25 null bool is absent", boolean("n"), result{false, false, false}},
		{"integer", integer("num"), result{int64(3600), true, false}},
		{"negative integer reads (callers bound it)", integer("neg"), result{int64(-5), true, false}},
		{"E-15 3600.0 is not an integer", integer("float"), result{int64(0), false, true}},
		{"E-15 36e2 is not an integer", integer("exp"), result{int64(0), false, true}},
		{"E-15 \"3600\" is not an integer", integer("sn"), result{int64(0), false, true}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.got); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestJSONBounds(t *testing.T) {
	long := strings.Repeat("a", maxJSONText+1)
	many := `[` + strings.Repeat(`"s",`, maxJSONList) + `"s"]`
	o, err := decodeJSONObject("d", []byte(`{"long":"`+long+`","many":`+many+`,"elem":["`+long+`"]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.str("long"); err == nil {
		t.Error("E-17 over-long string accepted")
	}
	if _, _, err := o.strs("many"); err == nil {
		t.Error("E-17 over-long list accepted")
	}
	if _, _, err := o.strs("elem"); err == nil {
		t.Error("E-17 over-long list element accepted")
	}
}

func TestClassifyBody(t *testing.T) {
	tests := []struct {
		ct, body  string
		allowForm bool
		want      bodyKind
	}{
		{"application/json", `{}`, true, bodyJSON},
		{"application/json; charset=utf-8", `{}`, true, bodyJSON}, // Q-30 Entra, CyberArk
		{"Application/JSON", `{}`, true, bodyJSON},
		{"application/json, application/json", `{}`, true, bodyJSON}, // Q-30 GitHub PRM
		{"text/html, application/json", `{}`, true, bodyJSON},
		{"application/problem+json", `{}`, true, bodyJSON},
		{"application/x-www-form-urlencoded; charset=utf-8", `a=b`, true, bodyForm},
		{"application/x-www-form-urlencoded", `a=b`, false, bodyOther},
		{"", `{"error":"invalid_grant"}`, true, bodyJSON}, // CyberArk: no Content-Type
		{"", " \n{}", true, bodyJSON},
		{"text/plain", `{}`, true, bodyJSON},
		{"", `a=b`, true, bodyOther},
		{"text/html", `{}`, true, bodyOther}, // E-08: never HTML
		{"text/html", `<html>`, true, bodyOther},
		{"application/xml", `<OAuth/>`, true, bodyOther}, // Q-17 GitHub XML
		{"application/jsonx", `{}`, true, bodyOther},
		{"text/json+x", `{}`, true, bodyOther},
	}
	for _, tt := range tests {
		if got := classifyBody(tt.ct, []byte(tt.body), tt.allowForm); got != tt.want {
			t.Errorf("classifyBody(%q, %q, %v) = %v, want %v", tt.ct, tt.body, tt.allowForm, got, tt.want)
		}
	}
}

func TestDecodeFormObject(t *testing.T) {
	o, err := decodeFormObject("d", []byte("access_token=a%2Bb+c&scope=repo%2Cgist&&token_type=bearer\r\n"), []string{"access_token"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for k := range o.members {
		got[k], _, _ = o.str(k)
	}
	want := map[string]string{"access_token": "a+b c", "scope": "repo,gist", "token_type": "bearer"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("form members mismatch (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"a=1&a=2", "ACCESS_TOKEN=x", "a=%zz", "a=%ff"} {
		if _, err := decodeFormObject("d", []byte(bad), []string{"access_token"}); !errors.As(err, new(*MalformedError)) {
			t.Errorf("decodeFormObject(%q) err = %v, want *MalformedError", bad, err)
		}
	}
}
