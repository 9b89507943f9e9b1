package httpdriver

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"

	"github.com/mcpauth/mcpauth/machine"
)

// Stderr is where OpenBrowser prints the URL when no browser opens.
var Stderr io.Writer = os.Stderr

// OpenBrowser opens authURL in the system browser, without a shell (the
// URL is one argument, never parsed by sh or cmd.exe: A-SEC-05), after
// checking it is https or loopback http (A-SEC-04). When no browser can be
// started it prints the URL for the user to open.
func OpenBrowser(authURL string) error {
	if err := machine.CheckSecureURL(authURL); err != nil {
		return err
	}
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", authURL)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", authURL)
	default:
		cmd = exec.Command("xdg-open", authURL)
	}
	if err := cmd.Start(); err != nil {
		return PrintURL(authURL)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

// PrintURL asks the user to open authURL themselves.
func PrintURL(authURL string) error {
	if err := machine.CheckSecureURL(authURL); err != nil {
		return err
	}
	_, err := fmt.Fprintf(Stderr, "Open this URL in a browser to sign in:\n\n  %s\n\n", authURL)
	return err
}
