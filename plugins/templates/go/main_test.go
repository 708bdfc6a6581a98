package main

import (
	"errors"
	"testing"

	"weft.example/weft"
)

func TestGreetsByName(t *testing.T) {
	out, err := greet(&weft.Context{Attempt: 1}, map[string]any{"name": "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(map[string]string)["greeting"]; got != "Hello, Ada!" {
		t.Fatalf("greeting = %q", got)
	}
}

func TestRefusesAMissingName(t *testing.T) {
	_, err := greet(&weft.Context{Attempt: 1}, map[string]any{})
	var e *weft.Error
	if !errors.As(err, &e) || e.Kind != weft.KindInvalidInput {
		t.Fatalf("err = %v, want an invalid-input error", err)
	}
}
