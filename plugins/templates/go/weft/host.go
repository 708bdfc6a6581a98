//go:build !wasip1

package weft

import (
	"fmt"
	"os"
)

// On the host (go test), a log line goes to stderr: there is no Weft host
// to take it.
func logLine(level Level, message string) { fmt.Fprintf(os.Stderr, "log[%d]: %s\n", level, message) }
