package main

import (
	"errors"

	"github.com/mcpauth/mcpauth/machine"
)

// reasonOf is the reason an URL was refused, without repeating the URL.
func reasonOf(err error) string {
	var ie *machine.InsecureURLError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return trim(err.Error())
}

// serverArg is the <mcp-url> argument, checked: an absolute http(s) URL,
// https unless the host is a loopback host.
func serverArg(inv *invocation) (string, error) {
	server := inv.args[0]
	if err := machine.CheckSecureURL(server); err != nil {
		f := usageError("%s is not a usable MCP server URL: %s", server, reasonOf(err))
		f.next = "pass the MCP endpoint's URL, e.g. https://mcp.example.com/mcp (plain http only for localhost and 127.0.0.1)"
		return "", f
	}
	return server, nil
}
