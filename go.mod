module github.com/mcpauth/mcpauth

go 1.25.0

require github.com/looplab/fsm v1.0.3

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/modelcontextprotocol/go-sdk v1.8.0 // indirect
	pgregory.net/rapid v1.3.0 // indirect
)
