//go:build wasip1

package weft

// The canonical ABI of the compute-step world, by hand: Go has no
// wit-bindgen that runs without fetching modules, and the contract is small.
// The host passes strings as (pointer, length) into memory it got from
// cabi_realloc; run returns a pointer to its result record, which stays
// valid (pinned) until the host calls the post-return function.

import (
	"encoding/json"
	"errors"
	"runtime/debug"
	"strings"
	"unsafe"
)

// adapterArena is memory for WASI's preview-1 adapter, in static data where
// Go's heap never grows: `weft plugin build` finds it by the marker it starts
// with and gives the adapter an allocator over it. Keep its size at 256 KiB.
var adapterArena = [256 << 10]byte{'w', 'e', 'f', 't', ':', 'a', 'd', 'a', 'p', 't', 'e', 'r', '-', 'm', 'e', 'm'}

// arenaSink reads the arena, so that the linker keeps it, initialized.
var arenaSink byte

func init() { arenaSink = adapterArena[0] }

// pinned keeps everything the host may still read reachable, so that the
// garbage collector (which does not move objects) keeps it where it is.
var pinned []any

// result is the return area of run: result<step-output, step-error>
// flattened to five 32-bit words.
var result [5]uint32

//go:wasmimport weft:step/log@0.1.2 log
func logImport(level uint32, ptr unsafe.Pointer, length uint32)

func logLine(level Level, message string) {
	if len(message) == 0 {
		return
	}
	b := []byte(message)
	logImport(uint32(level), unsafe.Pointer(&b[0]), uint32(len(b)))
}

//go:wasmexport cabi_realloc
func cabiRealloc(oldPtr, oldSize, align, newSize uint32) uint32 {
	if newSize == 0 {
		return align
	}
	words := make([]uint64, (newSize+7)/8) // 8-aligned, which satisfies every align the ABI asks for
	if oldPtr != 0 && oldSize != 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), newSize), bytesAt(oldPtr, min(oldSize, newSize)))
	}
	pinned = append(pinned, words)
	return uint32(uintptr(unsafe.Pointer(&words[0])))
}

func bytesAt(ptr, length uint32) []byte {
	if length == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(ptr))), length)
}

func stringAt(ptr, length uint32) string { return string(bytesAt(ptr, length)) }

// lower pins a copy of s and returns its (pointer, length). Strings cross
// the boundary as UTF-8, so invalid bytes (a Go string may hold any) become
// U+FFFD instead of trapping the host's lift.
func lower(s string) (uint32, uint32) {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) == 0 {
		return 1, 0
	}
	b := []byte(s)
	pinned = append(pinned, b)
	return uint32(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b))
}

//go:wasmexport weft:step/compute@0.1.2#run
func exportRun(runIDPtr, runIDLen, workflowPtr, workflowLen, stepIDPtr, stepIDLen, attempt,
	keyPtr, keyLen, correlationPtr, correlationLen, tenantPtr, tenantLen, inputPtr, inputLen uint32) uint32 {
	ctx := &Context{
		RunID:          stringAt(runIDPtr, runIDLen),
		Workflow:       stringAt(workflowPtr, workflowLen),
		StepID:         stringAt(stepIDPtr, stepIDLen),
		Attempt:        attempt,
		IdempotencyKey: stringAt(keyPtr, keyLen),
		CorrelationID:  stringAt(correlationPtr, correlationLen),
		Tenant:         stringAt(tenantPtr, tenantLen),
	}
	input := bytesAt(inputPtr, inputLen)
	pinned = nil // the host is done with what it passed in
	output, err := call(ctx, input)
	if err != nil {
		kind, message := KindFatal, err.Error()
		var e *Error
		if errors.As(err, &e) {
			kind = e.Kind
		}
		ptr, length := lower(message)
		result = [5]uint32{1, uint32(kind), ptr, length, 0}
	} else {
		ptr, length := lower(output)
		actionsPtr, actionsLen := lowerActions(ctx.actions)
		result = [5]uint32{0, ptr, length, actionsPtr, actionsLen}
	}
	return uint32(uintptr(unsafe.Pointer(&result[0])))
}

//go:wasmexport cabi_post_weft:step/compute@0.1.2#run
func postRun(uint32) { pinned = nil }

// lowerActions lays out list<action>: each action is kind (u8, padded to 4),
// target (pointer, length) and payload (pointer, length).
func lowerActions(actions []action) (uint32, uint32) {
	if len(actions) == 0 {
		return 4, 0
	}
	words := make([]uint32, 5*len(actions))
	for i, a := range actions {
		tp, tl := lower(a.target)
		pp, pl := lower(a.payload)
		copy(words[5*i:], []uint32{uint32(a.kind), tp, tl, pp, pl})
	}
	pinned = append(pinned, words)
	return uint32(uintptr(unsafe.Pointer(&words[0]))), uint32(len(actions))
}

// call decodes the input, runs the handler and encodes its output; a panic
// becomes a fatal error that carries its value and stack.
func call(ctx *Context, input []byte) (output string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = Fatal("panic: %v\n%s", p, debug.Stack())
		}
	}()
	if handler == nil {
		return "", Fatal("no step registered: call weft.Handle from an init function")
	}
	var value map[string]any
	if err := json.Unmarshal(input, &value); err != nil {
		return "", InvalidInput("the input is not a JSON object: %v", err)
	}
	out, err := handler(ctx, value)
	if err != nil {
		return "", err
	}
	text, err := json.Marshal(out)
	if err != nil {
		return "", Fatal("the output cannot be encoded as JSON: %v", err)
	}
	return string(text), nil
}

