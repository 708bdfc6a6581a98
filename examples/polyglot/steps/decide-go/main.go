// The polyglot example's last step, in Go: decides what happens to the order
// from its risk and the reviews the classify step asked for (actions).
package main

import (
	"fmt"
	"os"

	"weft.example/weft"
)

func init() { weft.Handle(decide) }

func decide(ctx *weft.Context, input map[string]any) (any, error) {
	risk, ok := input["risk"].(float64)
	if !ok {
		return nil, weft.InvalidInput("`risk` must be a number")
	}
	reviews, _ := input["reviews"].([]any)
	decision := "approve"
	if risk >= 0.5 || len(reviews) > 1 {
		decision = "hold"
	}
	fmt.Fprintf(os.Stderr, "decide: risk %.3f, %d review request(s): %s\n", risk, len(reviews), decision)
	return map[string]any{
		"decision": decision,
		"checksum": input["checksum"],
		"reviews":  reviews,
		"attempt":  ctx.Attempt,
	}, nil
}

func main() {}
