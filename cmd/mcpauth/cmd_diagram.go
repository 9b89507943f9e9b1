package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/mcpauth/mcpauth/states"
)

func diagramCommand() *command {
	return &command{
		name:    "diagram",
		summary: "print the machine's state diagram (Mermaid)",
		about: `
Prints every state and transition of the authorization machine as a Mermaid stateDiagram-v2,
rendered from the one transition table (states.Table) the machine checks every step against.
'mcpauth demo --mermaid' prints only the part of it a real flow takes.`,
		examples: []string{
			"mcpauth diagram",
			"mcpauth diagram --markdown > docs/state-machine.md",
			"mcpauth diagram | mmdc -i - -o machine.svg",
		},
		timeout: 0,
		bind: func(fs *flag.FlagSet) action {
			markdown := fs.Bool("markdown", false, "print the whole Markdown page (docs/state-machine.md), not just the diagram")
			return func(_ context.Context, inv *invocation) error {
				page := states.Diagram()
				if *markdown {
					fmt.Fprint(inv.env.stdout, page)
					return nil
				}
				fmt.Fprint(inv.env.stdout, mermaidBlock(page))
				return nil
			}
		},
	}
}
