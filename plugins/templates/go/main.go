// {{name}}: a Weft compute step in Go. Greets input["name"].
//
// Build it with `weft plugin build`: Go (GOOS=wasip1) compiles it to a WASI
// preview-1 module and Weft turns that into a component.
package main

import (
	"fmt"
	"strings"

	"weft.example/weft"
)

func init() { weft.Handle(greet) }

func greet(ctx *weft.Context, input map[string]any) (any, error) {
	name, ok := input["name"].(string)
	if !ok || strings.TrimSpace(name) == "" {
		return nil, weft.InvalidInput("`name` must be a non-empty string")
	}
	fmt.Printf("greeting %s\n", name)
	// To hand work to another node: ctx.Emit(weft.Compute, "announce", map[string]any{...})
	return map[string]string{"greeting": "Hello, " + name + "!"}, nil
}

// main is not called: the host calls the exported step.
func main() {}
