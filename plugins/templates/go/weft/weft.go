// Package weft is the Go side of the weft:step contract (wit/step.wit): a
// step is a function from the attempt's context and its JSON input to a JSON
// output, or an error. Register it with Handle from an init function.
//
// abi.go holds the canonical-ABI glue that exports the function to the host;
// nothing else here touches memory directly.
package weft

import (
	"encoding/json"
	"fmt"
)

// Context is the identity of the running attempt, and the place to emit
// actions for other nodes.
type Context struct {
	RunID          string
	Workflow       string
	StepID         string
	Attempt        uint32
	IdempotencyKey string
	CorrelationID  string
	Tenant         string
	actions        []action
}

// ActionKind says what kind of work an emitted action asks for.
type ActionKind uint8

// The kinds of work an action can ask for (the ModelAction pattern).
const (
	Compute ActionKind = iota
	Effect
	Reduce
	Orchestrate
	Custom
)

type action struct {
	kind    ActionKind
	target  string
	payload string
}

// Emit asks the orchestrator to hand payload (encoded as a JSON object) to
// the node target.
func (c *Context) Emit(kind ActionKind, target string, payload any) error {
	if kind > Custom {
		return Fatal("action kind %d is not one of weft.Compute, Effect, Reduce, Orchestrate or Custom", kind)
	}
	text, err := json.Marshal(payload)
	if err != nil {
		return Fatal("action payload is not serializable: %v", err)
	}
	c.actions = append(c.actions, action{kind, target, string(text)})
	return nil
}

// ErrorKind says whether the host may retry a failure.
type ErrorKind uint8

// The kinds of failure a step reports, in the contract's order.
const (
	// KindRetryable is a transient failure: the host may retry.
	KindRetryable ErrorKind = iota
	// KindFatal is permanent: the host never retries.
	KindFatal
	// KindInvalidInput means the input breaks the step's contract.
	KindInvalidInput
)

// Error is a failure a step reports; any other error counts as fatal.
type Error struct {
	Kind    ErrorKind
	Message string
}

func (e *Error) Error() string { return e.Message }

// Retryable is a transient failure (a dependency was down).
func Retryable(format string, args ...any) error {
	return &Error{KindRetryable, fmt.Sprintf(format, args...)}
}

// Fatal is a permanent failure.
func Fatal(format string, args ...any) error { return &Error{KindFatal, fmt.Sprintf(format, args...)} }

// InvalidInput says the input breaks the step's contract.
func InvalidInput(format string, args ...any) error {
	return &Error{KindInvalidInput, fmt.Sprintf(format, args...)}
}

// Handler is a step: it gets the node's mapped input, a JSON object, and
// returns anything encoding/json can encode.
type Handler func(ctx *Context, input map[string]any) (any, error)

var handler Handler

// Handle registers the step. Call it from an init function.
func Handle(h Handler) { handler = h }

// Level is the severity of a log line.
type Level uint8

// Log levels, in the contract's order.
const (
	Trace Level = iota
	Debug
	Info
	Warn
	LevelError
)

// Log records one line in the step's log (so does anything printed to
// stdout or stderr).
func Log(level Level, message string) { logLine(level, message) }
