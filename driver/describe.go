package driver

import (
	"fmt"
	"strings"

	"github.com/mcpauth/mcpauth/effects"
)

// Describe renders an effect on one line without secrets. Traces, live logs
// and the replayer's comparison all use it.
func Describe(e effects.Effect) string {
	switch e := e.(type) {
	case fmt.Stringer:
		s := e.String()
		if strings.HasPrefix(s, typeName(e)+"{") {
			return s
		}
		return typeName(e) + "{" + s + "}"
	case effects.Fail:
		return fmt.Sprintf("Fail{Request:%d Err:%v}", e.Request, e.Err)
	}
	return fmt.Sprintf("%s%+v", typeName(e), e)
}

func typeName(v any) string {
	t := fmt.Sprintf("%T", v)
	return t[strings.LastIndexByte(t, '.')+1:]
}
